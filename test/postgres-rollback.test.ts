// Rollbacks of a database through the real workflow: the plan shows what each strategy loses
// before approval, a destructive plan needs --accept-data-loss, files and database roll back
// in dependency order, and a failed database step puts the files back too.
import { cpSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { withPostgres } from '../src/postgres/connect';
import { schemaSignature } from '../src/postgres/fingerprint';
import { readMigrations } from '../src/postgres/flyway';
import { Migrator } from '../src/postgres/migrator';
import { createTestEnv, readTree, type TestEnv } from './support/harness';
import { createDatabase, dropDatabase, sql } from './support/postgres';
import { tempDir } from './support/temp';

const migrations = tempDir('rewind-pg-migrations-');
cpSync(path.join(__dirname, 'fixtures', 'flyway'), migrations, { recursive: true });

const migrate = (url: string, target?: string) =>
  withPostgres(url, async (client) =>
    new Migrator(client, { schema: 'public', table: 'flyway_schema_history', migrations: await readMigrations(migrations) }).migrate(target),
  );
const rows = (url: string, table: string) => sql(url, `SELECT * FROM ${table} ORDER BY id`);

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
    env = await createTestEnv({ environments: { production: { db: { kind: 'postgres', url, migrations, strategy: 'restore' } } } });
  });
  afterAll(async () => {
    await env.teardown();
    await dropDatabase(url);
  });

  it('shows dropped columns with row counts before approval, and refuses a destructive plan without --accept-data-loss', async () => {
    await migrate(url, '2');
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com'), ('Grace', 'grace@example.com')");
    await sql(url, 'INSERT INTO orders (customer_id) SELECT id FROM customers');
    const v2 = await env.snapshot('production', { version: 'release-2' });
    expect(v2.components.db!.fingerprint.migration).toBe('2');
    const schemaV2 = await withPostgres(url, schemaSignature);
    await migrate(url, '3');
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Katherine', 'kj@example.com')");
    await sql(url, "INSERT INTO orders (customer_id, total) SELECT id, 10 FROM customers WHERE name = 'Katherine'");

    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'release-2' }, strategy: 'undo' });
    const { status } = await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    const plan = status.plan!.components[0]!;
    expect(plan).toMatchObject({ component: 'db', kind: 'postgres', strategy: 'undo', destructive: true });
    expect(plan.preview).toEqual(
      expect.arrayContaining([
        { op: 'change', path: 'migration version 3 → 2' },
        { op: 'remove', path: "column public.orders.total #4 numeric(12,2) not null default 0" },
      ]),
    );
    const undo = plan.impact!.find((i) => i.strategy === 'undo')!;
    expect(undo).toMatchObject({ available: true, destructive: true, keeps: 'rows written since the target in the tables and columns that stay' });
    expect(undo.losses).toEqual(['column public.orders.total (3 rows with a value), dropped by U3__add_order_total.sql']);
    const restore = plan.impact!.find((i) => i.strategy === 'restore')!;
    expect(restore.losses.join('\n')).toContain('public.customers: ~1 inserted, ~0 updated, ~0 deleted since the target are reverted');
    expect(status.plan!.destructive).toBe(true);

    const refused = await env.client.decide(id, 'approve', { user: 'bob' });
    expect(refused).toMatchObject({ accepted: false });
    expect(refused.reason).toBe(
      'this plan loses data (column public.orders.total (3 rows with a value), dropped by U3__add_order_total.sql); approve with --accept-data-loss to accept that',
    );

    const done = await approveAndFinish(env, id, true);
    expect(done.status.state).toBe('completed');
    expect(done.status.steps.db!.outcome).toMatchObject({ strategy: 'undo', migrationsUndone: ['3'] });
    expect(await withPostgres(url, schemaSignature)).toEqual(schemaV2);
    // Undo keeps what was written since: Katherine and her order are still there.
    expect((await rows(url, 'customers')).map((r) => r.name as string)).toEqual(['Ada', 'Grace', 'Katherine']);
    expect((await rows(url, 'orders')).length).toBe(3);
  });

  it('restores the dump: every row as it was at the target, compared row by row', async () => {
    const [customers, orders] = [await rows(url, 'customers'), await rows(url, 'orders')];
    const v = await env.snapshot('production', { version: 'release-2b' });
    expect(v.components.db!.fingerprint.migration).toBe('2');
    await sql(url, "UPDATE customers SET email = 'changed@example.com' WHERE name = 'Ada'");
    await sql(url, 'DELETE FROM orders');
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Barbara', 'bl@example.com')");

    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'release-2b' } });
    const { status } = await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    expect(status.plan!.components[0]).toMatchObject({ strategy: 'restore', destructive: true });
    const done = await approveAndFinish(env, id, true);
    expect(done.status.state).toBe('completed');
    expect(done.status.steps.db!.outcome).toMatchObject({ strategy: 'restore' });
    expect(done.status.steps.db!.outcome!.swapWindowMs).toBeLessThan(10_000);
    expect(await rows(url, 'customers')).toEqual(customers);
    expect(await rows(url, 'orders')).toEqual(orders);
  });

  it('fails before approval, naming the missing U script, when undo is impossible', async () => {
    await migrate(url);
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'release-2b' }, strategy: 'undo' });
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('failed');
    expect(status.cause).toBe('db: the undo strategy is not possible (no U script for version 4); choose another with --strategy');
    expect(status.phases.approval).toBeUndefined();
    expect((await sql(url, 'SELECT max(version::int) AS v FROM flyway_schema_history WHERE type = $1', ['SQL']))[0]).toEqual({ v: 4 });
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
