// Re-syncing regression from production: the allowed differences stay, everything else is
// brought in line, a fresh scan proves it; approval unless every finding is auto-fixable; a
// failing step compensates from the safety snapshot.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTestEnv, readTree, runCli, type TestEnv } from './support/harness';
import { createDatabase, dropDatabase, sql } from './support/postgres';

let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv({
    environments: {
      production: { config: { format: 'config' }, models: { format: 'pickle' } },
      regression: { config: { format: 'config' }, models: { format: 'pickle' } },
    },
    drift: {
      rules: [
        { name: 'per-environment hosts', component: 'config', subject: '*.yaml:database.host', allow: true },
        { name: 'local overrides', component: 'config', subject: 'local.env', allow: true },
        { name: 'models follow production', component: 'models', severity: 'warning', autoFix: true },
      ],
    },
    faults: { regression: 'after-restore:models=fail' },
  });
});

afterAll(() => env?.teardown());

const file = (environment: string, component: string, name: string) =>
  path.join(env.componentPath(environment, component), name);

function appYaml(host: string, max: number): string {
  return `# the app's settings\ndatabase:\n  host: ${host}   # per environment\n  pool:\n    max: ${max}\nfeatures: [a, b]\n`;
}

describe('sync regression from production', () => {
  test('brings config in line but keeps the allowed host and the local file; asks for approval; a fresh scan finds only the allowed differences', async () => {
    writeFileSync(file('production', 'config', 'app.yaml'), appYaml('prod-db', 10));
    writeFileSync(file('regression', 'config', 'app.yaml'), appYaml('regr-db', 50));
    writeFileSync(file('production', 'config', 'feature.json'), '{"beta": false}\n');
    writeFileSync(file('regression', 'config', 'feature.json'), '{"beta": true}\n');
    writeFileSync(file('regression', 'config', 'local.env'), 'DEBUG=1\n');
    writeFileSync(file('regression', 'config', 'stray.txt'), 'left over\n');
    writeFileSync(file('production', 'config', 'secrets.env'), 'API_TOKEN=PLANTED-prod-token\n');
    writeFileSync(file('regression', 'config', 'secrets.env'), 'API_TOKEN=PLANTED-regr-token\n');

    const started = await env.client.startSync({ components: ['config'], requestedBy: 'alice' });
    const waiting = await env.client.waitForSync(started.workflowId);
    expect(waiting).toMatchObject({ state: 'awaiting-approval', needsApproval: true });
    expect(waiting.plan).toEqual([
      {
        component: 'config',
        findings: 4,
        autoFixable: false,
        keep: { paths: ['local.env'], keys: { 'app.yaml': ['database.host'] } },
        overwrites:
          "regression's files that differ are overwritten with production's, and files only regression has are removed; what the rules allow to differ is kept",
        changes: [
          'changed app.yaml:database.pool.max',
          'changed feature.json:beta',
          "changed secrets.env:API_TOKEN (a secret: regression's value is overwritten)",
          'added stray.txt',
        ],
        moreChanges: 0,
      },
    ]);
    // The approver sees the same, and no secret's value.
    const shown = await runCli(['sync', 'status', started.workflowId], { env: { REWIND_MANIFEST: env.manifestFile } });
    expect(shown.stdout).toContain(
      [
        "    regression's files that differ are overwritten with production's, and files only regression has are removed; what the rules allow to differ is kept",
        '    - changed app.yaml:database.pool.max',
        '    - changed feature.json:beta',
        "    - changed secrets.env:API_TOKEN (a secret: regression's value is overwritten)",
        '    - added stray.txt',
        `  awaiting approval: rewind sync approve ${started.workflowId} --as USER`,
      ].join('\n'),
    );
    expect(shown.stdout).not.toContain('PLANTED');
    // Nothing changed yet.
    expect(readFileSync(file('regression', 'config', 'app.yaml'), 'utf8')).toBe(appYaml('regr-db', 50));

    const approved = await runCli(['sync', 'approve', started.workflowId, '--as', 'bob'], {
      env: { REWIND_MANIFEST: env.manifestFile },
    });
    expect(approved.stdout).toBe(`approved ${started.workflowId}\n`);
    const done = await env.client.syncResult(started.workflowId);
    expect(done).toMatchObject({ state: 'completed', approvedBy: 'bob' });
    // Production's values, regression's host (comment and all), regression's local file; the stray file gone.
    expect(readFileSync(file('regression', 'config', 'app.yaml'), 'utf8')).toBe(appYaml('regr-db', 10));
    expect(readFileSync(file('regression', 'config', 'feature.json'), 'utf8')).toBe('{"beta": false}\n');
    expect(readFileSync(file('regression', 'config', 'local.env'), 'utf8')).toBe('DEBUG=1\n');
    expect(readFileSync(file('regression', 'config', 'secrets.env'), 'utf8')).toBe('API_TOKEN=PLANTED-prod-token\n');
    expect(Object.keys(readTree(env.componentPath('regression', 'config'))).sort()).toEqual([
      'app.yaml',
      'feature.json',
      'local.env',
      'secrets.env',
    ]);
    expect(done.scanAfter).toMatchObject({ status: 'completed', counts: { critical: 0, warning: 0, info: 0 } });
    expect(done.scanAfter!.allowed).toBe(2);
    // The scans the sync ran are recorded as the sync's, by whom it asked.
    for (const scanId of [done.scanBefore!, done.scanAfter!.scanId]) {
      const report = await runCli(['drift', 'report', scanId, '--format', 'json'], {
        env: { REWIND_MANIFEST: env.manifestFile, DATABASE_URL: await env.projectStoreUrl() },
      });
      expect(JSON.parse(report.stdout).scan).toMatchObject({ id: scanId, trigger: 'sync', requestedBy: 'alice' });
    }

    // Deciding on a sync that has ended says so, in a sync's words.
    const late = await runCli(['sync', 'approve', started.workflowId, '--as', 'carol'], {
      env: { REWIND_MANIFEST: env.manifestFile },
    });
    expect(late.code).toBe(1);
    expect(late.stderr).toBe('refused: the sync already ended (completed)\n');
  });

  test('a rejected sync changes nothing and its components say they did not run', async () => {
    writeFileSync(file('production', 'config', 'feature.json'), '{"beta": false}\n');
    writeFileSync(file('regression', 'config', 'feature.json'), '{"beta": "maybe"}\n');
    const started = await env.client.startSync({ components: ['config'], requestedBy: 'alice' });
    await env.client.waitForSync(started.workflowId);
    const cliEnv = { REWIND_MANIFEST: env.manifestFile };
    const rejected = await runCli(['sync', 'reject', started.workflowId, '--as', 'bob'], { env: cliEnv });
    expect(rejected.stdout).toBe(`rejected ${started.workflowId}\n`);
    const status = await runCli(['--json', 'sync', 'status', started.workflowId], { env: cliEnv });
    expect(JSON.parse(status.stdout)).toMatchObject({
      state: 'rejected',
      rejectedBy: 'bob',
      components: { config: { state: 'not run' } },
    });
    expect(readFileSync(file('regression', 'config', 'feature.json'), 'utf8')).toBe('{"beta": "maybe"}\n');
  });

  test('an id that names no sync is refused with what it is', async () => {
    const cliEnv = { REWIND_MANIFEST: env.manifestFile };
    const unknown = await runCli(['sync', 'status', 'sync-regression-nope'], { env: cliEnv });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('no sync with id sync-regression-nope');
    const decide = await runCli(['sync', 'approve', 'sync-regression-nope', '--as', 'bob'], { env: cliEnv });
    expect(decide.code).not.toBe(0);
    expect(decide.stderr).toContain('no rollback or sync with id sync-regression-nope');
  });

  test('auto-fixable findings sync without approval; a step that fails compensates and leaves regression as it was', async () => {
    writeFileSync(file('production', 'models', 'a.pkl'), Buffer.from([0x80, 4, 0x4b, 1, 0x2e]));
    writeFileSync(file('regression', 'models', 'a.pkl'), Buffer.from([0x80, 4, 0x4b, 2, 0x2e]));
    const before = readTree(env.componentPath('regression', 'models'));
    // The fault hook fails the models step after it has written production's bytes.
    const started = await env.client.startSync({ components: ['models'], requestedBy: 'alice' });
    const result = await env.client.syncResult(started.workflowId);
    expect(result).toMatchObject({ needsApproval: false, state: 'compensated', phase: 'complete' });
    expect(result.cause).toMatch(/InjectedFault|injected/i);
    expect(result.components.models).toMatchObject({ state: 'compensated' });
    expect(readTree(env.componentPath('regression', 'models'))).toEqual(before);
    // `sync status` of an ended sync exits as `sync --wait` does: 2 for compensated.
    const status = await runCli(['sync', 'status', started.workflowId], { env: { REWIND_MANIFEST: env.manifestFile } });
    expect(status.stdout).toContain('compensated');
    expect(status.code).toBe(2);
  });

  test('a component its scan could not read is not synced: the sync fails before planning, naming it', async () => {
    // Regression's database was dropped: its side cannot be read, the config can.
    const [prodDb, goneDb] = [await createDatabase('rewind_sync'), await createDatabase('rewind_sync_gone')];
    await dropDatabase(goneDb);
    const partial = await createTestEnv({
      environments: {
        production: { config: { format: 'config' }, db: { kind: 'postgres', url: prodDb } },
        regression: { config: { format: 'config' }, db: { kind: 'postgres', url: goneDb } },
      },
    });
    try {
      writeFileSync(path.join(partial.componentPath('production', 'config'), 'app.yaml'), 'k: 1\n');
      writeFileSync(path.join(partial.componentPath('regression', 'config'), 'app.yaml'), 'k: 2\n');
      const before = readTree(partial.componentPath('regression', 'config'));
      const started = await partial.client.startSync({ components: ['config', 'db'], requestedBy: 'alice' });
      const result = await partial.client.syncResult(started.workflowId);
      expect(result).toMatchObject({ state: 'failed', phase: 'complete' });
      expect(result.cause).toMatch(/^the scan before the sync could not compare db \(rewind drift report \S+\)$/);
      expect(result.plan).toBeUndefined();
      expect(readTree(partial.componentPath('regression', 'config'))).toEqual(before);
    } finally {
      await partial.teardown();
      await dropDatabase(prodDb);
    }
  });

  test("a database is replaced whole: the plan says what regression loses, and after it regression holds production's rows", async () => {
    const schema = `CREATE TABLE orders (id int PRIMARY KEY, total int);
      INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 30) g;`;
    const [prodDb, regrDb] = [await createDatabase('rewind_sync'), await createDatabase('rewind_sync')];
    await sql(prodDb, schema);
    await sql(regrDb, `${schema} UPDATE orders SET total = 0 WHERE id = 7; ALTER TABLE orders ADD COLUMN note text;`);
    const dbEnv = await createTestEnv({
      environments: {
        production: { db: { kind: 'postgres', url: prodDb } },
        regression: { db: { kind: 'postgres', url: regrDb } },
      },
    });
    try {
      const started = await dbEnv.client.startSync({ components: ['db'], requestedBy: 'alice' });
      const waiting = await dbEnv.client.waitForSync(started.workflowId);
      expect(waiting).toMatchObject({ state: 'awaiting-approval' });
      expect(waiting.plan![0]).toMatchObject({
        component: 'db',
        overwrites:
          "regression's database is replaced whole with production's snapshot: every row and object regression wrote or changed is lost (the safety snapshot taken first keeps them)",
        changes: expect.arrayContaining(['added column public.orders.note']),
      });
      // Nothing changed before approval.
      expect(await sql(regrDb, 'SELECT total FROM orders WHERE id = 7')).toEqual([{ total: 0 }]);
      const decided = await dbEnv.client.decide(started.workflowId, 'approve', { user: 'bob' });
      expect(decided.accepted).toBe(true);
      const done = await dbEnv.client.syncResult(started.workflowId);
      expect(done).toMatchObject({ state: 'completed', scanAfter: { counts: { critical: 0, warning: 0, info: 0 } } });
      expect(await sql(regrDb, 'SELECT total FROM orders WHERE id = 7')).toEqual([{ total: 70 }]);
      const columns = await sql<{ column_name: string }>(
        regrDb,
        `SELECT column_name FROM information_schema.columns WHERE table_name = 'orders' ORDER BY ordinal_position`,
      );
      expect(columns.map((c) => c.column_name)).toEqual(['id', 'total']);
    } finally {
      await dbEnv.teardown();
      await Promise.all([prodDb, regrDb].map((u) => dropDatabase(u)));
    }
  });

  test('sync list: the syncs of this install, newest first, with where each ended; --env filters, a bad one is refused', async () => {
    const cliEnv = { REWIND_MANIFEST: env.manifestFile };
    type Listed = { workflowId: string; state?: string; requestedBy?: string; components?: string[] };
    let listed: Listed[] = [];
    // Visibility lags the runs by a moment: bounded wait for the three syncs above.
    for (let i = 0; i < 50 && listed.length < 3; i++) {
      listed = JSON.parse((await runCli(['--json', 'sync', 'list'], { env: cliEnv })).stdout) as Listed[];
      if (listed.length < 3) await new Promise((r) => setTimeout(r, 200));
    }
    expect(listed.map((l) => `${l.state} ${l.requestedBy} ${l.components?.join(',')}`)).toEqual([
      'compensated alice models',
      'rejected alice config',
      'completed alice config',
    ]);
    const text = await runCli(['sync', 'list', '--limit', '1'], { env: cliEnv });
    expect(text.stdout).toMatch(/^ID +PAIR +STATE +PHASE +REQUESTER +AGE +COMPONENTS\n/);
    expect(text.stdout).toMatch(
      new RegExp(
        `\\n${listed[0]!.workflowId} +production → regression +compensated +complete +alice +\\S+ ago +models\\n$`,
      ),
    );
    const filtered = JSON.parse(
      (await runCli(['--json', 'sync', 'list', '--env', 'production'], { env: cliEnv })).stdout,
    );
    expect(filtered).toEqual([]);
    const many = await runCli(['sync', 'list', '--limit', '5000'], { env: cliEnv });
    expect(many.code).toBe(1);
    expect(many.stderr).toBe('error: --limit: "5000" is more than 200\n');
    const bad = await runCli(['sync', 'list', '--env', 'staging'], { env: cliEnv });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown environment "staging"');
  });

  test('bad input starts nothing: no components, a component only one side has, an unknown environment, production as the target', async () => {
    const cliEnv = { REWIND_MANIFEST: env.manifestFile };
    const none = await runCli(['sync'], { env: cliEnv });
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('--components is required');
    await expect(env.client.startSync({ components: ['nope'], requestedBy: 'a' })).rejects.toThrow(
      /unknown component "nope"/,
    );
    await expect(env.client.startSync({ to: 'staging', components: ['config'], requestedBy: 'a' })).rejects.toThrow(
      /unknown environment "staging"/,
    );
    // Production is what regression is compared against: no sync overwrites it, by either spelling.
    const toProduction = await runCli(['sync', '--to', 'production', '--components', 'config'], { env: cliEnv });
    expect(toProduction.code).toBe(1);
    expect(toProduction.stderr).toContain(
      'a sync writes only to an environment that tracks another, and drift pairs compare others against production (production → regression): sync --from production --to regression brings regression in line; to change production, roll it back (rewind rollback start --env production …)',
    );
    await expect(
      env.client.startSync({ from: 'regression', to: 'production', components: ['config'], requestedBy: 'a' }),
    ).rejects.toThrow(/drift pairs compare others against production/);
    for await (const _ of env.temporal.workflow.list({ query: `WorkflowId STARTS_WITH 'sync-production-'` }))
      throw new Error('a sync into production started');
  });
});
