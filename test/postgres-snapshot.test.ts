// The postgres driver on the real PostgreSQL and real restic: snapshots are dumps in the
// repository, a dump restore brings every row back through a scratch database and a swap, and
// undo keeps the rows written since while returning the schema.
import { chmodSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createAgentActivities, type VerifyOutcome } from '../src/activities/agent';
import type { RestoreOutcome } from '../src/domain/rollback';
import type { ComponentSnapshot } from '../src/domain/cross-section';
import { parseManifest } from '../src/manifest/load';
import { createLogger } from '../src/platform/logger';
import { processMetricsRegistry } from '../src/metrics/registry';
import { renderMetrics } from '../src/metrics/server';
import { withPostgres } from '../src/components/postgres/connect';
import { parseDatabaseFingerprint, schemaSignature } from '../src/components/postgres/fingerprint';
import { readMigrations } from '../src/components/postgres/flyway';
import { Migrator } from '../src/components/postgres/migrator';
import { openSnapshotStore } from '../src/snapshots/open';
import { createDatabase, dropDatabase, sql } from './support/postgres';
import { tempDir } from './support/temp';

const dir = tempDir('rewind-pg-');
const migrations = path.join(dir, 'migrations');
cpSync(path.join(__dirname, 'fixtures', 'flyway'), migrations, { recursive: true });

let url: string;
beforeEach(async () => {
  url = await createDatabase();
});
afterEach(() => dropDatabase(url));

function agent(extraEnv: NodeJS.ProcessEnv = {}) {
  const { manifest } = parseManifest(
    `repository: { path: ./repo, passwordEnv: PG_TEST_REPO_PASSWORD }
dataDir: ./data
approvers: [a]
environments:
  production:
    components:
      db: { kind: postgres, urlEnv: APP_DB_URL, migrations: ./migrations, sample: { tables: [customers], rows: 10 } }
`,
    path.join(dir, 'rewind.yaml'),
  );
  const env = {
    ...process.env,
    APP_DB_URL: url,
    PG_TEST_REPO_PASSWORD: 'pw',
    REWIND_SAMPLE_KEY: 'sample-key',
    ...extraEnv,
  };
  const store = openSnapshotStore(manifest, env);
  return {
    store,
    activities: createAgentActivities({
      environment: 'production',
      manifest,
      store,
      logger: createLogger('test', 'silent'),
      env,
    }),
  };
}

const migrate = (target?: string) =>
  withPostgres(url, async (client) =>
    new Migrator(client, {
      schema: 'public',
      table: 'flyway_schema_history',
      migrations: await readMigrations(migrations),
    }).migrate(target),
  );
const rows = (table: string) => sql(url, `SELECT * FROM ${table} ORDER BY id`);
const signature = () => withPostgres(url, schemaSignature);

let sequence = 0;
async function snapshot(
  a: ReturnType<typeof agent>,
  origin: 'manual' | 'safety' = 'manual',
): Promise<ComponentSnapshot> {
  await a.store.restic.ensureInitialized();
  return new MockActivityEnvironment().run(a.activities.snapshotComponent, {
    environment: 'production',
    component: 'db',
    crossSectionId: `xs-20261128-000000-${(sequence++).toString(16).padStart(4, '0')}`,
    members: ['db'],
    origin,
  });
}

/** The agent's verify of the database against `snap`. */
const verify = (a: ReturnType<typeof agent>, snap: ComponentSnapshot): Promise<VerifyOutcome> =>
  new MockActivityEnvironment().run(a.activities.verifyComponent, {
    environment: 'production',
    component: 'db',
    expected: snap.fingerprint,
    listingSnapshotId: snap.listingSnapshotId,
  });

describe('postgres snapshots and restores', () => {
  it('stores a dump with the schema signature and the migration version, and restores every row through a swap', async () => {
    await migrate('2');
    await sql(
      url,
      "INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com'), ('Grace', 'grace@example.com')",
    );
    await sql(url, 'INSERT INTO orders (customer_id) SELECT id FROM customers');
    const a = agent();
    const snap = await snapshot(a);
    expect(snap.fingerprint).toMatchObject({ entries: 1, details: { kind: 'postgres', migration: '2', tables: 3 } });
    const document = parseDatabaseFingerprint(await a.store.readListingText(snap.listingSnapshotId));
    expect(document.schema).toEqual(await signature());
    expect(Object.keys(document.samples ?? {})).toEqual(['customers']);
    expect(JSON.stringify(document)).not.toContain('ada@example.com');
    const [customers, orders, schema] = [await rows('customers'), await rows('orders'), await signature()];

    // Writes, deletes and a newer schema after the snapshot.
    await sql(url, "UPDATE customers SET name = 'Ada L.' WHERE name = 'Ada'");
    await sql(url, 'DELETE FROM orders WHERE id = (SELECT min(id) FROM orders)');
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Alan', 'alan@example.com')");
    await migrate('3');

    const request = {
      environment: 'production',
      component: 'db',
      snapshotId: snap.snapshotId,
      listingSnapshotId: snap.listingSnapshotId,
      fingerprint: snap.fingerprint,
      purpose: 'rollback' as const,
      strategy: 'restore' as const,
      idempotencyKey: 'wf-1/rollback/db',
    };
    const outcome: RestoreOutcome = await new MockActivityEnvironment().run(a.activities.restoreComponent, request);
    expect(outcome).toMatchObject({
      alreadyAtTarget: false,
      details: { kind: 'postgres', strategy: 'restore', swapWindowMs: expect.any(Number) as number },
    });
    expect(await rows('customers')).toEqual(customers);
    expect(await rows('orders')).toEqual(orders);
    expect(await signature()).toEqual(schema);
    expect((await sql(url, 'SELECT max(version) AS v FROM flyway_schema_history'))[0]).toEqual({ v: '2' });
    // No scratch or old copies are left behind.
    const leftovers = await sql(url, "SELECT datname FROM pg_database WHERE datname LIKE '%__rewind_%'");
    expect(leftovers).toEqual([]);

    // The same step again (a retry after a crash) recognises its own work.
    expect(await new MockActivityEnvironment({ attempt: 2 }).run(a.activities.restoreComponent, request)).toMatchObject(
      { alreadyAtTarget: true },
    );

    const verified: VerifyOutcome = await verify(a, snap);
    expect(verified.matches).toBe(true);

    // The agent's metrics count the dump and the restore, and the bytes pg_dump wrote.
    const { body } = await renderMetrics([{ registry: processMetricsRegistry() }]);
    expect(body).toMatch(/^rewind_tool_duration_seconds_count\{tool="pg_dump",operation="dump",outcome="ok"\} [1-9]/m);
    expect(body).toMatch(
      /^rewind_tool_duration_seconds_count\{tool="pg_restore",operation="restore",outcome="ok"\} 1$/m,
    );
    expect(body).toMatch(/^rewind_tool_bytes_total\{tool="pg_dump",operation="dump"\} [1-9]\d*$/m);
  });

  it('undoes migrations to the snapshot version, keeping rows written since in the tables that stay', async () => {
    await migrate('2');
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com')");
    const a = agent();
    const snap = await snapshot(a);
    const schema = await signature();
    await migrate('3');
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Katherine', 'kj@example.com')");
    await sql(url, 'INSERT INTO orders (customer_id, total) SELECT id, 12.50 FROM customers');

    const outcome: RestoreOutcome = await new MockActivityEnvironment().run(a.activities.restoreComponent, {
      environment: 'production',
      component: 'db',
      snapshotId: snap.snapshotId,
      listingSnapshotId: snap.listingSnapshotId,
      fingerprint: snap.fingerprint,
      purpose: 'rollback' as const,
      strategy: 'undo' as const,
    });
    expect(outcome.details).toMatchObject({ strategy: 'undo', migrationsUndone: ['3'] });
    expect(await signature()).toEqual(schema);
    expect((await rows('customers')).map((r) => r.name as string)).toEqual(['Ada', 'Katherine']);
    expect((await rows('orders')).length).toBe(2);
    const verified: VerifyOutcome = await verify(a, snap);
    expect(verified.matches).toBe(true);
  });

  it('names the objects that differ when a database does not match its target', async () => {
    await migrate('2');
    const a = agent();
    const snap = await snapshot(a);
    await sql(url, 'ALTER TABLE customers ADD COLUMN phone text');
    const verified: VerifyOutcome = await verify(a, snap);
    expect(verified.matches).toBe(false);
    expect(verified.differences).toEqual([{ op: 'remove', subject: 'column public.customers.phone #4 text' }]);
  });

  it('refuses, before dumping, a pg_dump older than the server, and says what to install', async () => {
    const fakeBin = path.join(dir, 'old-pg-bin');
    mkdirSync(fakeBin, { recursive: true });
    writeFileSync(path.join(fakeBin, 'pg_dump'), '#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n');
    chmodSync(path.join(fakeBin, 'pg_dump'), 0o755);
    const a = agent({ REWIND_PG_BIN: fakeBin });
    await a.store.restic.ensureInitialized();
    const before = (await a.store.restic.snapshots(['rewind'])).length;
    const err = await snapshot(a).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'ComponentUnavailable', nonRetryable: true });
    const server = Math.floor(
      Number((await sql<{ v: string }>(url, "SELECT current_setting('server_version_num') AS v"))[0]!.v) / 10_000,
    );
    expect((err as Error).message).toBe(
      `pg_dump 9 (${fakeBin}) cannot dump a PostgreSQL ${server} server; install the PostgreSQL ${server} client programs or set REWIND_PG_BIN`,
    );
    expect((await a.store.restic.snapshots(['rewind'])).length).toBe(before);
  });

  it("fails without retrying, in pg_dump's words, when the role cannot read a table, and stores nothing", async () => {
    await migrate('2');
    const role = `rewind_reader_${randomBytes(3).toString('hex')}`;
    await sql(url, `CREATE ROLE ${role} LOGIN`);
    try {
      await sql(url, `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
      await sql(url, 'CREATE TABLE payroll (id int PRIMARY KEY, amount int)'); // created after the grant: unreadable
      const readerUrl = new URL(url);
      readerUrl.username = role;
      const a = agent({ APP_DB_URL: readerUrl.toString() });
      await a.store.restic.ensureInitialized();
      const before = (await a.store.restic.snapshots(['rewind'])).length;
      const err = await snapshot(a).catch((e: unknown) => e);
      expect(err).toMatchObject({ type: 'ComponentUnavailable', nonRetryable: true });
      expect((err as Error).message).toMatch(
        /^db: pg_dump failed: pg_dump: error: query failed: ERROR: +permission denied for table payroll/,
      );
      expect((await a.store.restic.snapshots(['rewind'])).length).toBe(before);
    } finally {
      await sql(url, `DROP OWNED BY ${role}`);
      await sql(url, `DROP ROLE ${role}`);
    }
  });
});
