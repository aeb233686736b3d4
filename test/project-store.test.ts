// The project store: the same migrations on embedded PGlite and on the PostgreSQL server, and
// one embedded store shared between processes through its owner.
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { previousDifferences } from '../src/activities/drift';
import { openProjectStore } from '../src/store/project-store';
import { STORE_MIGRATIONS } from '../src/store/migrations';
import { createDatabase, dropDatabase } from './support/postgres';
import { tempDir } from './support/temp';

const root = tempDir('rewind-store-');
const makeTempDir = (name: string) => mkdtemp(path.join(root, `${name}-`));

const TABLES = [
  'audit_log',
  'drift_alerts',
  'drift_findings',
  'drift_scans',
  'drills',
  'repository_checks',
  'rewind_store_migrations',
  'rollback_runs',
  'slack_messages',
];

async function tablesOf(store: Awaited<ReturnType<typeof openProjectStore>>): Promise<string[]> {
  const rows = await store.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
  );
  return rows.map((r) => r.name);
}

describe('project store', () => {
  test('the migrations build the same tables on PGlite and on the PostgreSQL server, once', async () => {
    const dataDir = await makeTempDir('store');
    const url = await createDatabase('rewind_store');
    try {
      const embedded = await openProjectStore({ dataDir });
      const server = await openProjectStore({ databaseUrl: url, dataDir });
      try {
        expect(await tablesOf(embedded)).toEqual(TABLES);
        expect(await tablesOf(server)).toEqual(TABLES);
        for (const store of [embedded, server]) {
          const applied = await store.query<{ version: number }>('SELECT version FROM rewind_store_migrations');
          expect(applied.map((r) => r.version)).toEqual(STORE_MIGRATIONS.map((m) => m.version));
        }
      } finally {
        await embedded.close();
        await server.close();
      }
      // Reopening applies nothing twice and keeps what was written.
      const again = await openProjectStore({ dataDir });
      try {
        expect((await again.query('SELECT count(*)::int AS n FROM rewind_store_migrations'))[0]).toEqual({
          n: STORE_MIGRATIONS.length,
        });
      } finally {
        await again.close();
      }
    } finally {
      await dropDatabase(url);
    }
  });

  test("a scan's first questions read the pair's latest completed scan of each component, on both engines", async () => {
    const dataDir = await makeTempDir('previous');
    const url = await createDatabase('rewind_store');
    try {
      const embedded = await openProjectStore({ dataDir });
      const server = await openProjectStore({ databaseUrl: url, dataDir });
      try {
        for (const store of [embedded, server]) {
          const scan = async (id: string, components: string[], status: string, findings: [string, string][]) => {
            await store.query(
              // Finished as closeScan finishes them: the latest is the one that finished last.
              `INSERT INTO drift_scans (id, from_env, to_env, workflow_id, trigger, components, status, started_at, finished_at)
               VALUES ($1, 'production', 'regression', 'wf', 'manual', $2, $3, now() + ($4 || ' seconds')::interval,
                       now() + ($4 || ' seconds')::interval + interval '1 minute')`,
              [id, JSON.stringify(components), status, id.slice(1)],
            );
            for (const [component, subject] of findings)
              await store.query(
                `INSERT INTO drift_findings (scan_id, key, component, aspect, subject, change, detail, severity, state)
                 VALUES ($1, $2, $3, 'schema', $4, 'changed', 'x', 'warning', $5)`,
                [id, `${component}/${subject}`, component, subject, subject.startsWith('gone') ? 'resolved' : 'new'],
              );
          };
          await scan('s1', ['db', 'files'], 'completed', [
            ['db', 'table old'],
            ['files', 'a.yaml'],
          ]);
          await scan('s2', ['db'], 'completed', [
            ['db', 'index newer'],
            ['db', 'gone index'],
          ]);
          await scan('s3', ['db', 'files'], 'failed', [['db', 'table failed scan']]);
          const previous = await previousDifferences(store, { from: 'production', to: 'regression' }, [
            'db',
            'files',
            'app',
          ]);
          // db from s2 (the latest completed scan of it, its resolved finding left out); files from s1.
          expect(Object.fromEntries(previous)).toEqual({
            db: [{ aspect: 'schema', subject: 'index newer' }],
            files: [{ aspect: 'schema', subject: 'a.yaml' }],
          });
        }
      } finally {
        await embedded.close();
        await server.close();
      }
    } finally {
      await dropDatabase(url);
    }
  });

  test('a second opener reads and writes through the owner that serves the embedded store', async () => {
    const dataDir = await makeTempDir('store');
    const owner = await openProjectStore({ dataDir, serve: true });
    try {
      await owner.query(
        `INSERT INTO drift_scans (id, from_env, to_env, workflow_id, trigger) VALUES ('s1', 'production', 'regression', 'w', 'manual')`,
      );
      const other = await openProjectStore({ dataDir, lockWaitMs: 1000 });
      try {
        expect(other.where).toContain('served by its owner');
        expect(await other.query('SELECT id, status FROM drift_scans')).toEqual([{ id: 's1', status: 'running' }]);
      } finally {
        await other.close();
      }
    } finally {
      await owner.close();
    }
  });

  test('a user of a served store survives its owner stopping in the middle of a transaction, and works again once it serves', async () => {
    const dataDir = await makeTempDir('store');
    let owner = await openProjectStore({ dataDir, serve: true });
    const other = await openProjectStore({ dataDir, lockWaitMs: 1000 });
    try {
      // The owner stops (the control worker restarting) while the other holds a connection in a
      // transaction: that transaction fails; the process does not end on the connection's error.
      await expect(
        other.transaction(async (tx) => {
          await tx.query('SELECT 1');
          await owner.close();
          await tx.query('SELECT 1');
        }),
      ).rejects.toThrow();
      owner = await openProjectStore({ dataDir, serve: true });
      await owner.query(
        `INSERT INTO drift_scans (id, from_env, to_env, workflow_id, trigger) VALUES ('s2', 'production', 'regression', 'w', 'manual')`,
      );
      const rows = await other.transaction((tx) => tx.query('SELECT id FROM drift_scans'));
      expect(rows).toEqual([{ id: 's2' }]);
    } finally {
      await other.close();
      await owner.close();
    }
  });

  test('an embedded store held by a process that is gone is taken over; one held by a live one that does not serve is refused', async () => {
    const dataDir = await makeTempDir('store');
    await writeFile(path.join(dataDir, 'store.lock'), '999999999');
    const store = await openProjectStore({ dataDir });
    await store.close();
    await writeFile(path.join(dataDir, 'store.lock'), String(process.ppid));
    await expect(openProjectStore({ dataDir, lockWaitMs: 200 })).rejects.toThrow(
      /held by process \d+, which does not serve it/,
    );
  });

  test('an unreachable server store is a clear error', async () => {
    const dataDir = await makeTempDir('store');
    await expect(openProjectStore({ databaseUrl: 'postgres://postgres@127.0.0.1:1/none', dataDir })).rejects.toThrow(
      /cannot reach the project store \(PostgreSQL postgres@127.0.0.1:1\/none\)/,
    );
  });
});
