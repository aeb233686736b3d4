// Point-in-time recovery on a private cluster the test creates: WAL archived into rewind's
// folder, a base backup with the snapshot, and a rollback to a moment between two writes.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestEnv, runCli, type TestEnv } from './support/harness';
import { createPrivateCluster, type PrivateCluster } from './support/private-cluster';
import { sql } from './support/postgres';

describe('point-in-time recovery', () => {
  let cluster: PrivateCluster;
  let env: TestEnv;
  let url: string;
  let pitrRoot: string;

  beforeAll(async () => {
    cluster = await createPrivateCluster();
    await sql(cluster.url(), 'CREATE DATABASE app');
    url = cluster.url('app');
    // The cluster's OS user writes the archive and the base backups: it must reach them.
    pitrRoot = mkdtempSync(path.join(os.tmpdir(), 'rewind-pitr-'));
    chmodSync(pitrRoot, 0o755);
    env = await createTestEnv({
      environments: {
        production: {
          db: {
            kind: 'postgres',
            url,
            strategy: 'restore',
            pitr: {
              dataDir: cluster.dataDir,
              archiveDir: path.join(pitrRoot, 'wal'),
              baseBackupDir: path.join(pitrRoot, 'base'),
            },
          },
        },
      },
    });
  });
  afterAll(async () => {
    await env?.teardown();
    cluster?.remove();
    rmSync(pitrRoot, { recursive: true, force: true });
  });

  it('turns WAL archiving on with `rewind db pitr-enable`', async () => {
    const result = await runCli([
      '--manifest',
      env.manifestFile,
      'db',
      'pitr-enable',
      '--env',
      'production',
      '--component',
      'db',
      '--json',
    ]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ restarted: true });
    expect(await sql(url, 'SHOW archive_mode')).toEqual([{ archive_mode: 'on' }]);
  });

  it('recovers to a moment between two writes: exactly the first is there', async () => {
    await sql(url, 'CREATE TABLE events (id int PRIMARY KEY, note text)');
    await env.snapshot('production', { version: 'base' });
    await sql(url, "INSERT INTO events VALUES (1, 'first')");
    await sleep(1_100);
    const between = (await sql<{ now: Date }>(url, 'SELECT now() AS now'))[0]!.now.toISOString();
    await sleep(1_100);
    await sql(url, "INSERT INTO events VALUES (2, 'second')");

    const id = await env.startRollback({ environment: 'production', target: { kind: 'time', time: between } });
    const { status } = await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    const plan = status.plan!.components[0]!;
    expect(plan.strategy).toBe('pitr');
    expect(plan.impact!.find((i) => i.strategy === 'pitr')).toMatchObject({
      available: true,
      destructive: true,
      losses: [`every write to the whole cluster (all its databases) after ${between}`],
    });
    await env.client.decide(id, 'approve', { user: 'bob', acceptDataLoss: true });
    const done = await env.finalStatus(id, 240_000);
    expect(done.status.cause).toBeUndefined();
    expect(done.status.state).toBe('completed');
    expect(done.status.steps.db!.outcome!.details).toMatchObject({ strategy: 'pitr' });
    expect(done.status.steps.db!.verify).toBe('passed');
    expect(await sql(url, 'SELECT id, note FROM events ORDER BY id')).toEqual([{ id: 1, note: 'first' }]);
    expect(await sql(url, 'SELECT pg_is_in_recovery() AS r')).toEqual([{ r: false }]);
  });

  it('says clearly when the password is wrong, and never prints it', async () => {
    const manifest = path.join(pitrRoot, 'wrong-password.yaml');
    writeFileSync(
      manifest,
      `repository: { path: ./repo }\napprovers: [a]\nenvironments:\n  production:\n    components:\n      db: { kind: postgres, urlEnv: APP_DB_URL, migrations: ${path.join(__dirname, 'fixtures', 'flyway')} }\n`,
    );
    const result = await runCli(['--manifest', manifest, 'db', 'info', '--env', 'production', '--component', 'db'], {
      env: { APP_DB_URL: cluster.url('app', 'not-the-password') },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `error: PostgreSQL refused the credentials for postgres@127.0.0.1:${cluster.port}/app: password authentication failed for user "postgres"\n`,
    );
    expect(result.stderr + result.stdout).not.toContain('not-the-password');
  });
});
