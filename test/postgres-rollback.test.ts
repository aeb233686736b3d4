// Rollbacks of a database through the real workflow: the plan shows what each strategy loses
// before approval, a destructive plan needs --accept-data-loss, files and database roll back
// in dependency order, and a failed database step puts the files back too.
import type { PostgresRestoreDetails } from '../src/components/postgres/kind';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { renderCrossSection, renderStatus } from '../src/client/render';
import { withPostgres } from '../src/components/postgres/connect';
import { schemaSignature } from '../src/components/postgres/fingerprint';
import { readMigrations } from '../src/components/postgres/flyway';
import { Migrator } from '../src/components/postgres/migrator';
import { createTestEnv, readTree, runCli, type TestEnv } from './support/harness';
import { createDatabase, dropDatabase, PG_ADMIN_URL, sql, urlFor } from './support/postgres';
import { tempDir } from './support/temp';

const migrations = tempDir('rewind-pg-migrations-');
cpSync(path.join(__dirname, 'fixtures', 'flyway'), migrations, { recursive: true });

const migrate = (url: string, target?: string) =>
  withPostgres(url, async (client) =>
    new Migrator(client, {
      schema: 'public',
      table: 'flyway_schema_history',
      migrations: await readMigrations(migrations),
    }).migrate(target),
  );
const rows = (url: string, table: string) => sql(url, `SELECT * FROM ${table} ORDER BY id`);

async function databaseAttributes(name: string) {
  const [db] = await sql<{ acl: string; comment: string | null; connlimit: number }>(
    PG_ADMIN_URL,
    "SELECT datacl::text AS acl, shobj_description(oid, 'pg_database') AS comment, datconnlimit AS connlimit FROM pg_database WHERE datname = $1",
    [name],
  );
  const settings = await sql<{ s: string }>(
    PG_ADMIN_URL,
    `SELECT coalesce(pg_get_userbyid(nullif(s.setrole, 0)) || ':', '') || c AS s
       FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) c WHERE d.datname = $1 ORDER BY 1`,
    [name],
  );
  return { ...db!, settings: settings.map((r) => r.s).sort() };
}

async function approveAndFinish(env: TestEnv, id: string, acceptDataLoss = false) {
  await env.waitFor(id, (s) => s.state === 'awaiting-approval');
  const decision = await env.client.decide(id, 'approve', { user: 'bob', acceptDataLoss });
  expect(decision.accepted).toBe(true);
  return env.finalStatus(id);
}

describe('database rollback strategies', () => {
  let env: TestEnv;
  let url: string;
  beforeAll(async () => {
    url = await createDatabase();
    env = await createTestEnv({
      environments: { production: { db: { kind: 'postgres', url, migrations, strategy: 'restore' } } },
    });
  });
  afterAll(async () => {
    await env.teardown();
    await dropDatabase(url);
  });

  it('shows dropped columns with row counts before approval, and refuses a destructive plan without --accept-data-loss', async () => {
    await migrate(url, '2');
    await sql(
      url,
      "INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com'), ('Grace', 'grace@example.com')",
    );
    await sql(url, 'INSERT INTO orders (customer_id) SELECT id FROM customers');
    const v2 = await env.snapshot('production', { version: 'release-2' });
    expect(v2.components.db!.fingerprint.details).toMatchObject({ kind: 'postgres', migration: '2' });
    const schemaV2 = await withPostgres(url, schemaSignature);
    await migrate(url, '3');
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Katherine', 'kj@example.com')");
    await sql(url, "INSERT INTO orders (customer_id, total) SELECT id, 10 FROM customers WHERE name = 'Katherine'");

    const id = await env.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'release-2' },
      strategy: 'undo',
    });
    const { status } = await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    const plan = status.plan!.components[0]!;
    expect(plan).toMatchObject({ component: 'db', kind: 'postgres', strategy: 'undo', destructive: true });
    expect(plan.targetCheck).toEqual({ readable: true, note: 'nothing to read: undo runs the U scripts' });
    expect(plan.differences).toEqual(
      expect.arrayContaining([
        { op: 'change', subject: 'migration version', detail: '3 → 2' },
        { op: 'remove', subject: 'column public.orders.total #4 numeric(12,2) not null default 0' },
      ]),
    );
    const undo = plan.impact!.find((i) => i.strategy === 'undo')!;
    expect(undo).toMatchObject({
      available: true,
      destructive: true,
      keeps: 'rows written since the target in the tables and columns that stay',
    });
    expect(undo.losses).toEqual([
      'column public.orders.total (3 rows with a value), dropped by U3__add_order_total.sql',
    ]);
    const restore = plan.impact!.find((i) => i.strategy === 'restore')!;
    expect(restore.losses.join('\n')).toContain(
      'public.customers: ~1 inserted, ~0 updated, ~0 deleted since the target are reverted',
    );
    expect(status.plan!.destructive).toBe(true);

    // While the rollback holds production, a migration from the CLI would make its plan wrong.
    const migrating = await runCli([
      '--manifest',
      env.loaded.file,
      'db',
      'migrate',
      '--env',
      'production',
      '--component',
      'db',
    ]);
    expect(migrating.code).toBe(1);
    expect(migrating.stderr).toBe(
      `error: rollback ${id} is in progress on production; changing its database now would make its plan wrong. Wait for it or cancel it, or pass --force\n`,
    );
    expect((await sql(url, "SELECT max(version::int) AS v FROM flyway_schema_history WHERE type = 'SQL'"))[0]).toEqual({
      v: 3,
    });

    const refused = await env.client.decide(id, 'approve', { user: 'bob' });
    expect(refused).toMatchObject({ accepted: false });
    expect(refused.reason).toBe(
      'this plan loses data (db: column public.orders.total (3 rows with a value), dropped by U3__add_order_total.sql); approve with --accept-data-loss to accept that',
    );

    const done = await approveAndFinish(env, id, true);
    expect(done.status.state).toBe('completed');
    expect(done.status.steps.db!.outcome!.details).toMatchObject({ strategy: 'undo', migrationsUndone: ['3'] });
    expect(renderStatus(done)).toMatch(/\n {2}db +done +verify passed {2}undid migration 3\n/);
    expect(await withPostgres(url, schemaSignature)).toEqual(schemaV2);
    // Undo keeps what was written since: Katherine and her order are still there.
    expect((await rows(url, 'customers')).map((r) => r.name as string)).toEqual(['Ada', 'Grace', 'Katherine']);
    expect((await rows(url, 'orders')).length).toBe(3);
  });

  it('restores the dump: every row as it was at the target, compared row by row, and the database keeps its grants and settings', async () => {
    const [customers, orders] = [await rows(url, 'customers'), await rows(url, 'orders')];
    const name = new URL(url).pathname.slice(1);
    // What belongs to the database rather than its contents: a dump holds none of it.
    await sql(url, `ALTER DATABASE "${name}" SET work_mem = '7MB'`);
    await sql(url, `ALTER DATABASE "${name}" SET search_path = "$user", public, "odd,name"`);
    await sql(url, `ALTER ROLE postgres IN DATABASE "${name}" SET statement_timeout = '9s'`);
    await sql(url, `REVOKE ALL ON DATABASE "${name}" FROM PUBLIC`);
    await sql(url, `GRANT CONNECT ON DATABASE "${name}" TO pg_monitor`);
    await sql(url, `COMMENT ON DATABASE "${name}" IS 'orders, customers'`);
    const attributes = () => databaseAttributes(name);
    const before = await attributes();
    const v = await env.snapshot('production', { version: 'release-2b' });
    expect(v.components.db!.fingerprint.details).toMatchObject({ kind: 'postgres', migration: '2' });
    await sql(url, "UPDATE customers SET email = 'changed@example.com' WHERE name = 'Ada'");
    await sql(url, 'DELETE FROM orders');
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Barbara', 'bl@example.com')");

    const id = await env.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'release-2b' },
    });
    const { status } = await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    expect(status.plan!.components[0]).toMatchObject({ strategy: 'restore', destructive: true });
    // The dump was read back whole before approval (defect 4).
    expect(status.plan!.components[0]!.targetCheck).toEqual({
      readable: true,
      note: 'the whole dump read back, every block checked',
    });
    const done = await approveAndFinish(env, id, true);
    expect(done.status.state).toBe('completed');
    expect(done.status.steps.db!.outcome!.details).toMatchObject({ strategy: 'restore' });
    expect(done.status.steps.db!.outcome!.details).toMatchObject({ swapWindowMs: expect.any(Number) as number });
    expect((done.status.steps.db!.outcome!.details as PostgresRestoreDetails).swapWindowMs).toBeLessThan(10_000);
    expect(renderStatus(done)).toMatch(
      /\n {2}db +done +verify passed {2}restored the dump and swapped it in \(unavailable for \d+ ms\)\n/,
    );
    const section = await env.store.crossSections('production');
    expect(renderCrossSection(section.find((x) => x.version === 'release-2b')!)).toMatch(
      /db +snapshot [0-9a-f]{8} {2}database: 3 tables, migration 2, [\d.]+ [KM]iB on disk/,
    );
    expect(await rows(url, 'customers')).toEqual(customers);
    expect(await rows(url, 'orders')).toEqual(orders);
    const after = await attributes();
    expect(after).toEqual({ ...before, settings: [...before.settings, `rewind.restored_by=${id}/rollback/db`].sort() });
    expect(before.acl).toContain('pg_monitor=c/postgres');
    expect(before.settings).toContain('search_path="$user", public, "odd,name"');
  });

  it('fails before approval, naming the missing U script, when undo is impossible', async () => {
    await migrate(url);
    const id = await env.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'release-2b' },
      strategy: 'undo',
    });
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('failed');
    expect(status.cause).toBe(
      'db: the undo strategy is not possible (no U script for version 4); choose another with --strategy',
    );
    expect(status.phases.approval).toBeUndefined();
    expect(
      (await sql(url, 'SELECT max(version::int) AS v FROM flyway_schema_history WHERE type = $1', ['SQL']))[0],
    ).toEqual({ v: 4 });
  });

  it('says undo is not possible when an applied script was edited since, before anyone approves', async () => {
    const v2 = path.join(migrations, 'V2__add_orders.sql');
    const original = readFileSync(v2, 'utf8');
    writeFileSync(v2, `${original}-- edited after it ran\n`);
    try {
      const id = await env.startRollback({
        environment: 'production',
        target: { kind: 'version', version: 'release-2b' },
        strategy: 'undo',
        dryRun: true,
      });
      const { status } = await env.finalStatus(id);
      // A dry run shows the plan, whatever it says.
      expect(status.state).toBe('completed');
      const undo = status.plan!.components[0]!.impact!.find((i) => i.strategy === 'undo')!;
      expect(undo.available).toBe(false);
      expect(undo.unavailable).toMatch(
        /^the migration history does not validate: checksum mismatch for V2__add_orders\.sql: applied -?\d+, on disk -?\d+$/,
      );
    } finally {
      writeFileSync(v2, original);
    }
  });
});

describe('a rollback of files and a database together', () => {
  let env: TestEnv;
  let url: string;
  beforeAll(async () => {
    url = await createDatabase();
    env = await createTestEnv({
      environments: { production: { config: {}, db: { kind: 'postgres', url, migrations, dependsOn: ['config'] } } },
      faults: { production: 'before-restore:db=fail' },
    });
  });
  afterAll(async () => {
    await env.teardown();
    await dropDatabase(url);
  });

  it('restores in dependency order, and a failed database step puts the files back too', async () => {
    const config = env.componentPath('production', 'config');
    writeFileSync(path.join(config, 'app.yaml'), 'release: 1\n');
    await migrate(url, '1');
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com')");
    await env.snapshot('production', { version: 'r1' });
    writeFileSync(path.join(config, 'app.yaml'), 'release: 2\n');
    await migrate(url, '2');
    const files = readTree(config);
    const customers = await rows(url, 'customers');
    const schema = await withPostgres(url, schemaSignature);

    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'r1' } });
    const { status, execution } = await approveAndFinish(env, id, true);
    expect(execution).toBe('FAILED');
    expect(status.state).toBe('compensated');
    expect(status.plan!.order).toEqual([['config'], ['db']]);
    expect(status.cause).toBe('execute failed: injected fault at before-restore of db');
    expect(status.steps.config!.state).toBe('compensated');
    expect(readTree(config)).toEqual(files);
    expect(await rows(url, 'customers')).toEqual(customers);
    expect(await withPostgres(url, schemaSignature)).toEqual(schema);
  });
});

describe('compensation of a database puts back only what the failed step changed', () => {
  // U3 fails half-way: its transaction rolls back, so the database is as it was.
  const broken = tempDir('rewind-pg-broken-');
  cpSync(path.join(__dirname, 'fixtures', 'flyway'), broken, { recursive: true });
  writeFileSync(path.join(broken, 'U3__add_order_total.sql'), 'ALTER TABLE orders DROP COLUMN total;\nSELECT 1/0;\n');
  let env: TestEnv;
  let url: string;
  beforeAll(async () => {
    url = await createDatabase();
    env = await createTestEnv({
      environments: { production: { db: { kind: 'postgres', url, migrations: broken, strategy: 'undo' } } },
    });
  });
  afterAll(async () => {
    await env.teardown();
    await dropDatabase(url);
  });

  it('a U script that fails leaves the database alone, with the writes made while the rollback waited for approval', async () => {
    await migrate(url, '2');
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com')");
    await env.snapshot('production', { version: 'r2' });
    await migrate(url, '3');
    const id = await env.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'r2' },
      acceptDataLoss: true,
    });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    // Production keeps writing while the approver reads the plan.
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Grace', 'grace@example.com')");
    await sql(url, "INSERT INTO orders (customer_id, total) SELECT id, 42 FROM customers WHERE name = 'Grace'");
    const schema = await withPostgres(url, schemaSignature);
    expect((await env.client.decide(id, 'approve', { user: 'bob' })).accepted).toBe(true);
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('compensated');
    expect(status.cause).toMatch(
      /^execute failed: .*U3__add_order_total\.sql failed and was rolled back: division by zero/,
    );
    expect(status.steps.db!.compensation).toBe(
      'the undo step changed nothing; the database keeps every write made since the safety snapshot',
    );
    expect(status.report).toContain('the undo step changed nothing');
    expect((await rows(url, 'customers')).map((r) => r.name as string)).toEqual(['Ada', 'Grace']);
    expect((await rows(url, 'orders')).map((r) => String(r.total))).toEqual(['42.00']);
    expect(await withPostgres(url, schemaSignature)).toEqual(schema);
  });
});

describe('compensation after a swap', () => {
  let env: TestEnv;
  let url: string;
  beforeAll(async () => {
    url = await createDatabase();
    env = await createTestEnv({
      environments: { production: { db: { kind: 'postgres', url, migrations, strategy: 'restore' } } },
      faults: { production: 'after-restore:db=fail' },
    });
  });
  afterAll(async () => {
    await env.teardown();
    await dropDatabase(url);
  });

  it('restores the safety dump when the step had swapped the target in', async () => {
    await migrate(url, '2');
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com')");
    await env.snapshot('production', { version: 'r2' });
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Barbara', 'bl@example.com')");
    const id = await env.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'r2' },
      acceptDataLoss: true,
    });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    expect((await env.client.decide(id, 'approve', { user: 'bob' })).accepted).toBe(true);
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('compensated');
    expect(status.cause).toBe('execute failed: injected fault at after-restore of db');
    expect(status.steps.db!.compensation).toBe('restored from the safety snapshot');
    expect((await rows(url, 'customers')).map((r) => r.name as string)).toEqual(['Ada', 'Barbara']);
  });
});

describe('a database role that cannot restore a dump', () => {
  const role = `rewind_owner_${Math.random().toString(16).slice(2, 8)}`;
  let env: TestEnv;
  let url: string;
  beforeAll(async () => {
    const admin = await createDatabase();
    const name = new URL(admin).pathname.slice(1);
    await sql(PG_ADMIN_URL, `CREATE ROLE ${role} LOGIN NOCREATEDB`);
    await sql(PG_ADMIN_URL, `ALTER DATABASE "${name}" OWNER TO ${role}`);
    const own = new URL(urlFor(name));
    own.username = role;
    url = own.toString();
    env = await createTestEnv({ environments: { production: { db: { kind: 'postgres', url, migrations } } } });
  });
  afterAll(async () => {
    await env.teardown();
    await dropDatabase(url);
    await sql(PG_ADMIN_URL, `DROP ROLE IF EXISTS ${role}`);
  });

  it('gets a plan that says restore is not possible and why, before anyone approves', async () => {
    await migrate(url, '2');
    await env.snapshot('production', { version: 'r2' });
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'r2' } });
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('failed');
    expect(status.cause).toBe(
      `db: the restore strategy is not possible (role ${role} lacks CREATEDB, which restoring a dump needs (to create a copy and swap it in); compensation needs it too); choose another with --strategy`,
    );
    expect(status.phases.approval).toBeUndefined();
  });
});
