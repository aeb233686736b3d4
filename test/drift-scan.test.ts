// Drift scans end to end: real agents describe their own environment's files and database, the
// real workflow compares them on the suite's Temporal server, findings land in the project store
// (a database of their own on the test PostgreSQL), alerts reach a local Slack stand-in.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import path from 'node:path';
import { resolvePair } from '../src/drift/pairs';
import { scanFindings } from '../src/drift/report';
import { driftScanWorkflowId } from '../src/domain/drift-scan';
import { applySchedules, driftScheduleId, listSchedules, setSchedulePaused } from '../src/client/schedules';
import { RewindClient } from '../src/client/client';
import { createDriftActivities } from '../src/activities/drift';
import { driftNotifier } from '../src/drift/slack';
import { createLogger } from '../src/platform/logger';
import { createTestEnv, runCli, type TestEnv } from './support/harness';
import { createDatabase, dropDatabase, PG_ADMIN_URL, sql } from './support/postgres';
import { startSlackApi, type SlackApi } from './support/slack-api';

const SECRET_FROM = 'PLANTED-prod-secret-7f3a';
const SECRET_TO = 'PLANTED-regr-secret-91c2';

let env: TestEnv;
let slack: SlackApi;
let prodDb: string;
let regrDb: string;

const SCHEMA = `
  CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
  CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers (id), total numeric(10, 2));
  INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 20) g;
  INSERT INTO orders SELECT g, 1 + g % 20, g * 1.5 FROM generate_series(1, 40) g;`;

beforeAll(async () => {
  slack = await startSlackApi();
  [prodDb, regrDb] = await Promise.all([createDatabase('rewind_drift'), createDatabase('rewind_drift')]);
  await sql(prodDb, SCHEMA);
  await sql(regrDb, SCHEMA);
  env = await createTestEnv({
    environments: {
      production: { config: { format: 'config' }, models: { format: 'pickle' }, db: { kind: 'postgres', url: prodDb } },
      regression: { config: { format: 'config' }, models: { format: 'pickle' }, db: { kind: 'postgres', url: regrDb } },
    },
    drift: {
      pairs: [{ from: 'production', to: 'regression', thresholds: { critical: 1, warning: 1, info: 0 } }],
      rules: [{ name: 'per-environment hosts', component: 'config', subject: '*.yaml:database.host', allow: true }],
      slack: { channel: '#drift', apiUrl: slack.url },
    },
    controlEnv: { SLACK_BOT_TOKEN: 'xoxb-test-token' },
    versions: { production: { file: './prod-version.txt' }, regression: { file: './regr-version.txt' } },
  });
});

afterAll(async () => {
  await env?.teardown();
  await slack?.close();
  await Promise.all([prodDb, regrDb].filter(Boolean).map((u) => dropDatabase(u)));
});

function writeConfig(environment: string, file: string, text: string): void {
  writeFileSync(path.join(env.componentPath(environment, 'config'), file), text);
}

function appYaml(host: string, max: number, password: string): string {
  return `database:\n  host: ${host}\n  pool:\n    max: ${max}\n    min: 1\n  password: ${password}\nfeatures: [a, b]\n`;
}

async function scan(options: { components?: string[] } = {}) {
  const started = await env.client.startDriftScan({ trigger: 'manual', requestedBy: 'test', ...options });
  const summary = await env.client.driftScanResult(started.workflowId);
  // The start names the scan its summary and report carry.
  expect(summary.scanId).toBe(started.scanId);
  return { ...started, summary };
}

async function findingsOf(scanId: string) {
  return scanFindings(await env.projectStore(), scanId);
}

const live = (f: { state: string }) => f.state !== 'resolved';

async function countScans(): Promise<number> {
  const rows = await (await env.projectStore()).query<{ n: number }>('SELECT count(*)::int AS n FROM drift_scans');
  return rows[0]!.n;
}

/** Every payload of a history, decoded: what a reader of the history (or the Web UI) can see. */
function decodedPayloads(history: unknown): string {
  const out: string[] = [];
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') {
      const record = value as Record<string, unknown>;
      if (record.metadata && record.data instanceof Uint8Array) out.push(Buffer.from(record.data).toString('utf8'));
      Object.values(record).forEach(walk);
    }
  };
  walk(history);
  return out.join('\n');
}

describe('drift scan, production → regression', () => {
  test('config: exactly the changed dotted keys, the host allowed by rule, secrets redacted everywhere; one alert, none for the same findings, one resolved', async () => {
    writeConfig('production', 'app.yaml', appYaml('prod-db.internal', 10, SECRET_FROM));
    writeConfig('regression', 'app.yaml', appYaml('regr-db.internal', 20, SECRET_TO));
    writeConfig('production', 'same.json', '{"a": {"b": [1, 2]}}');
    writeConfig('regression', 'same.json', '{"a": {"b": [1, 2]}}');

    const first = await scan({ components: ['config'] });
    expect(first.summary).toMatchObject({
      status: 'completed',
      counts: { critical: 0, warning: 2, info: 0 },
      allowed: 1,
    });
    const findings = await findingsOf(first.summary.scanId);
    expect(findings.map((f) => [f.subject, f.change, f.detail, f.allowed ? 'allowed' : f.severity])).toEqual([
      ['app.yaml:database.password', 'changed', '«redacted» changed', 'warning'],
      ['app.yaml:database.pool.max', 'changed', '10 → 20', 'warning'],
      ['app.yaml:database.host', 'changed', '"prod-db.internal" → "regr-db.internal"', 'allowed'],
    ]);
    expect(first.summary.alert.sent).toBe('alert');
    expect(slack.calls.filter((c) => c.method === 'chat.postMessage')).toHaveLength(1);
    const message = slack.calls[0]!;
    expect(message.token).toBe('xoxb-test-token');
    expect(message.body.channel).toBe('#drift');
    expect(message.raw).toContain('database.pool.max');

    // The planted secrets are nowhere: not in the store, the Slack payload or the workflow history.
    const history = decodedPayloads(await env.temporal.workflow.getHandle(first.workflowId).fetchHistory());
    const store = JSON.stringify(await (await env.projectStore()).query('SELECT * FROM drift_findings'));
    for (const text of [history, store, message.raw]) {
      expect(text).not.toContain(SECRET_FROM);
      expect(text).not.toContain(SECRET_TO);
    }
    expect(history).toContain('database.pool.max'); // the search can find what is there

    // A local activity runs at least once: the scan finished again (its workflow task retried
    // after the alert went out) reports the alert it sent, and sends no second one.
    const again = await createDriftActivities({
      manifest: env.loaded.manifest,
      logger: createLogger('drift-scan-test', 'silent'),
      projectStore: () => env.projectStore(),
      ...driftNotifier(env.loaded.manifest, { SLACK_BOT_TOKEN: 'xoxb-test-token' }),
    }).finishDriftScan({ scanId: first.summary.scanId });
    expect(again).toMatchObject({ status: 'completed', alert: { sent: 'alert', reason: first.summary.alert.reason } });
    expect(slack.calls).toHaveLength(1);

    // The same findings an hour later: persisting, no second alert.
    const second = await scan({ components: ['config'] });
    expect(second.summary).toMatchObject({ new: 0, alert: { sent: 'none' } });
    expect((await findingsOf(second.summary.scanId)).filter(live).every((f) => f.state === 'persisting')).toBe(true);
    expect(slack.calls).toHaveLength(1);

    // Regression brought in line (its own host kept): one "resolved" message.
    writeConfig('regression', 'app.yaml', appYaml('regr-db.internal', 10, SECRET_FROM));
    const third = await scan({ components: ['config'] });
    expect(third.summary).toMatchObject({ counts: { critical: 0, warning: 0, info: 0 }, resolved: 2 });
    expect(third.summary.alert.sent).toBe('resolved');
    expect(slack.calls).toHaveLength(2);
    expect(String(slack.calls[1]!.body.text)).toContain('resolved');
    const resolved = (await findingsOf(third.summary.scanId)).filter((f) => f.state === 'resolved');
    expect(resolved.map((f) => f.subject).sort()).toEqual(['app.yaml:database.password', 'app.yaml:database.pool.max']);
  });

  test('pickles: the changed key is named; os.system by REDUCE and by STACK_GLOBAL from memoized strings are critical, and nothing ran', async () => {
    const prod = env.componentPath('production', 'models');
    const regr = env.componentPath('regression', 'models');
    const marker = path.join(env.dir, 'pwned-marker');
    const python = `
import os, pickle, sys
class Model:
    pass
def write(path, value, protocol):
    with open(path, 'wb') as f:
        pickle.dump(value, f, protocol=protocol)
prod, regr, marker = sys.argv[1:4]
for p in (0, 2, 4, 5):
    base = {'weights': [0.1, 0.2], 'meta': {'layers': [1, 2, 3], 'name': 'm'}, 'cls': Model}
    write(f'{prod}/model-p{p}.pkl', base, p)
    changed = dict(base); changed['bias'] = [0.5]; del changed['weights']
    write(f'{regr}/model-p{p}.pkl', changed, p)
class Evil:
    def __reduce__(self):
        return (os.system, ('touch ' + marker,))
write(f'{prod}/evil.pkl', {'model': 1}, 4)
write(f'{regr}/evil.pkl', {'model': 1, 'payload': Evil()}, 4)
# STACK_GLOBAL whose module and name come from the memo (BINGET), not from the stream next to it.
import pickletools
stream = (b'\\x80\\x04\\x95\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00'
          b'\\x8c\\x02os\\x94\\x8c\\x06system\\x94\\x8c\\x04note\\x94\\x30\\x30\\x30'
          b'h\\x00h\\x01\\x93\\x94\\x8c\\x04true\\x85R.')
open(f'{regr}/memo.pkl', 'wb').write(stream)
open(f'{prod}/memo.pkl', 'wb').write(pickle.dumps({'ok': 1}, protocol=4))
`;
    const ran = spawnSync('python3', ['-c', python, prod, regr, marker]);
    expect(ran.stderr.toString()).toBe('');

    const { summary } = await scan({ components: ['models'] });
    expect(summary.status).toBe('completed');
    const findings = (await findingsOf(summary.scanId)).filter(live);
    for (const p of [0, 2, 4, 5]) {
      const of = findings
        .filter((f) => f.subject.startsWith(`model-p${p}.pkl:`))
        .map((f) => `${f.change} ${f.subject}`);
      expect(of).toEqual(
        expect.arrayContaining([`added model-p${p}.pkl:key bias`, `removed model-p${p}.pkl:key weights`]),
      );
    }
    const critical = findings.filter((f) => f.severity === 'critical');
    expect(critical.map((f) => f.subject).sort()).toEqual([
      'evil.pkl:global posix.system',
      'memo.pkl:global os.system',
    ]);
    expect(critical.every((f) => /at byte \d+/.test(f.detail))).toBe(true);
    expect(summary.counts.critical).toBe(2);
    expect(existsSync(marker)).toBe(false);
  });

  test('pickles: a truncated one and a 100 MB one end with a finding, in bounded time', async () => {
    const prod = env.componentPath('production', 'models');
    const regr = env.componentPath('regression', 'models');
    for (const dir of [prod, regr]) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
    }
    const good = spawnSync('python3', [
      '-c',
      "import pickle,sys; sys.stdout.buffer.write(pickle.dumps({'a': list(range(100))}, protocol=4))",
    ]).stdout;
    writeFileSync(path.join(prod, 'cut.pkl'), good);
    writeFileSync(path.join(regr, 'cut.pkl'), good.subarray(0, good.length - 20));
    // 100 MB: a BINBYTES8 header that promises more than the file holds, then zeros.
    const big = Buffer.alloc(100 << 20);
    big.set([0x80, 0x04, 0x8e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00]);
    writeFileSync(path.join(regr, 'huge.pkl'), big);
    const started = Date.now();
    const { summary } = await scan({ components: ['models'] });
    expect(Date.now() - started).toBeLessThan(60_000);
    const findings = (await findingsOf(summary.scanId)).filter(live);
    expect(findings.find((f) => f.subject === 'cut.pkl:stream')?.detail).toMatch(/could not be read to the end/);
    expect(findings.find((f) => f.subject === 'huge.pkl:stream')?.detail).toMatch(/read/);
  });

  test('databases: a differing column, index, function, trigger and sampled rows are exactly the findings', async () => {
    await sql(
      regrDb,
      `ALTER TABLE customers ALTER COLUMN name TYPE varchar(200);
       CREATE INDEX orders_total ON orders (total);
       UPDATE orders SET total = 999 WHERE id IN (3, 30);
       DELETE FROM orders WHERE id = 5;`,
    );
    await sql(prodDb, `CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;`);
    await sql(
      regrDb,
      `CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.total := 0; RETURN NEW; END $$;
                       CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();`,
    );
    const { summary } = await scan({ components: ['db'] });
    expect(summary.status).toBe('completed');
    const findings = (await findingsOf(summary.scanId))
      .filter(live)
      .map((f) => `${f.change} ${f.subject}`)
      .sort();
    expect(findings).toEqual(
      [
        'added index public.orders_total',
        'added trigger public.orders.orders_touch',
        'changed column public.customers.name',
        'changed function public.touch()',
        'changed row public.orders (id)=(3)',
        'changed row public.orders (id)=(30)',
        'changed table public.orders',
        'removed row public.orders (id)=(5)',
      ].sort(),
    );
    // The report lists rows in key order, numbers as numbers.
    expect(
      (await findingsOf(summary.scanId)).filter((f) => f.subject.startsWith('row ')).map((f) => f.subject),
    ).toEqual(['row public.orders (id)=(3)', 'row public.orders (id)=(5)', 'row public.orders (id)=(30)']);

    // Scanned again, the first question asks at once for the objects that differed: the same
    // findings, now persisting.
    const again = await scan({ components: ['db'] });
    const persisting = (await findingsOf(again.summary.scanId)).filter(live);
    expect(persisting.map((f) => `${f.change} ${f.subject}`).sort()).toEqual(findings);
    expect(persisting.every((f) => f.state === 'persisting')).toBe(true);
    const history = await env.client.client.workflow.getHandle(again.workflowId).fetchHistory();
    const firstQuestion = history.events!.find((e) => e.activityTaskScheduledEventAttributes)!
      .activityTaskScheduledEventAttributes!.input!.payloads!;
    expect(decodedPayloads(firstQuestion)).toMatch(
      /"question":\{"kind":"postgres","part":"digest","buckets":\[\d+(,\d+)*\]\}/,
    );
  });

  test('application versions: read from each environment, a difference is a finding; scans of chosen components skip them', async () => {
    writeFileSync(path.join(env.dir, 'prod-version.txt'), '1.4.2\n');
    writeFileSync(path.join(env.dir, 'regr-version.txt'), '1.4.1\n');
    const { summary } = await scan();
    const version = (await findingsOf(summary.scanId)).filter((f) => f.component === '(app version)');
    expect(version.map((f) => [f.subject, f.change, f.detail, f.aspect])).toEqual([
      ['version', 'changed', '1.4.2 → 1.4.1', 'version'],
    ]);
    rmSync(path.join(env.dir, 'regr-version.txt'));
    // The unreadable file is the finding; the version difference is not called resolved, since
    // the versions could not be compared.
    const unreadable = (await findingsOf((await scan()).summary.scanId)).filter((f) => f.component === '(app version)');
    expect(unreadable).toEqual([
      expect.objectContaining({
        subject: 'version (regression)',
        aspect: 'unreadable',
        severity: 'warning',
        state: 'new',
      }),
    ]);
    const chosen = (await findingsOf((await scan({ components: ['config'] })).summary.scanId)).filter(
      (f) => f.component === '(app version)',
    );
    expect(chosen).toEqual([]);
  });

  test('bad input starts nothing: an unknown component, an unknown environment', async () => {
    await expect(env.client.startDriftScan({ components: ['modles'] })).rejects.toThrow(
      /unknown component "modles": neither production nor regression has it .*did you mean "models"/,
    );
    await expect(env.client.startDriftScan({ from: 'prod' })).rejects.toThrow(
      /unknown environment "prod" .*did you mean "production"\?/,
    );
    // One side named: the other is its partner in the drift pair, whichever side it is on there.
    expect(resolvePair(env.client.manifest, { from: 'regression' })).toEqual({ from: 'regression', to: 'production' });
    expect(resolvePair(env.client.manifest, { to: 'production' })).toEqual({ from: 'regression', to: 'production' });
    expect(resolvePair(env.client.manifest, { to: 'regression' })).toEqual({ from: 'production', to: 'regression' });
    const runs = env.temporal.workflow.list({
      query: `WorkflowId = '${driftScanWorkflowId(env.client.manifest.temporal.taskQueue, 'prod', 'regression')}'`,
    });
    for await (const _ of runs) throw new Error('a scan started');
  });

  test('a malformed rules section is refused with its key, before anything starts', async () => {
    const manifest = parse(readFileSync(env.manifestFile, 'utf8')) as { drift: { rules: unknown[] } };
    manifest.drift.rules = [
      { component: 'config', subject: '*.yaml:x' },
      { component: 'confg', allow: true },
      { component: 'models', severity: 'urgent' },
    ];
    const bad = path.join(env.dir, 'bad-rules.yaml');
    writeFileSync(bad, stringify(manifest));
    const before = await countScans();
    const run = await runCli(['drift', 'scan', '--wait'], { env: { REWIND_MANIFEST: bad } });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('drift.rules.0: set exactly one of allow: true or severity');
    expect(run.stderr).toMatch(
      /drift\.rules\.1\.component: no environment has a component "confg".*did you mean "config"/,
    );
    expect(run.stderr).toMatch(/drift\.rules\.2\.severity: .*critical.*warning.*info/);
    expect(await countScans()).toBe(before);
  });

  test('an unreachable database fails the scan with a clear error and records no findings', async () => {
    const broken = await createDatabase('rewind_drift_gone');
    await dropDatabase(broken);
    // The regression agent reads the URL from the manifest: point a fresh env at a dropped database.
    const gone = await createTestEnv({
      environments: {
        production: { db: { kind: 'postgres', url: prodDb } },
        regression: { db: { kind: 'postgres', url: broken } },
      },
    });
    try {
      const started = await gone.client.startDriftScan({});
      const summary = await gone.client.driftScanResult(started.workflowId);
      expect(summary.status).toBe('failed');
      expect(summary.error).toMatch(/db: .*does not exist/);
      const rows = await (await gone.projectStore()).query('SELECT * FROM drift_findings');
      expect(rows).toEqual([]);
    } finally {
      await gone.teardown();
    }
  });

  test('a scan whose history outgrows drift.historyBytes continues as a new run and finds every difference', async () => {
    // 80 × 10 folders of 3 files, one file changed in each folder of 40 of the 80: several
    // waves of questions, each answer some KB, against a history budget of 64 KB.
    const big = await createTestEnv({
      environments: { production: { tree: {} }, regression: { tree: {} } },
      drift: { historyBytes: 64 * 1024 },
    });
    try {
      const changed: string[] = [];
      for (const environment of ['production', 'regression']) {
        const root = big.componentPath(environment, 'tree');
        for (let d = 0; d < 80; d++)
          for (let e = 0; e < 10; e++) {
            mkdirSync(path.join(root, `d${d}`, `e${e}`), { recursive: true });
            for (let f = 0; f < 3; f++) {
              const differs = environment === 'regression' && d % 2 === 0 && f === 1;
              if (differs) changed.push(`d${d}/e${e}/f${f}.txt`);
              writeFileSync(path.join(root, `d${d}`, `e${e}`, `f${f}.txt`), `${d}/${e}/${f}${differs ? '!' : ''}\n`);
            }
          }
      }
      const started = await big.client.startDriftScan({});
      const summary = await big.client.driftScanResult(started.workflowId);
      expect(summary.status).toBe('completed');
      expect(summary.runs).toBeGreaterThan(1);
      const findings = await scanFindings(await big.projectStore(), summary.scanId);
      expect(findings.map((f) => f.subject).sort()).toEqual(changed.sort());
      // One scan, one row, however many runs it took.
      const scans = await (await big.projectStore()).query<{ id: string }>('SELECT id FROM drift_scans');
      expect(scans.map((s) => s.id)).toEqual([summary.scanId]);
    } finally {
      await big.teardown();
    }
  });

  test('schedules: apply creates one per pair, applying again changes nothing, pause and unpause show in the list', async () => {
    const manifest = env.loaded.manifest;
    const id = driftScheduleId(manifest, 'production', 'regression');
    const maintenance = (task: string) => `${manifest.temporal.taskQueue}-maint-${task}`;
    try {
      // The pair's scan, and the repository's prune and check (on by default, daily).
      expect(await applySchedules(env.temporal, manifest)).toEqual([
        {
          scheduleId: id,
          kind: 'drift',
          what: 'drift scan production → regression',
          from: 'production',
          to: 'regression',
          every: '1h',
          everyMs: 3_600_000,
          change: 'created',
        },
        {
          scheduleId: maintenance('drill-partial'),
          kind: 'drill',
          what: 'partial rollback drill of regression',
          every: '30d',
          everyMs: 30 * 86_400_000,
          change: 'created',
        },
        {
          scheduleId: maintenance('drill-full'),
          kind: 'drill',
          what: 'full rollback drill of regression',
          every: '90d',
          everyMs: 90 * 86_400_000,
          change: 'created',
        },
        {
          scheduleId: maintenance('prune'),
          kind: 'prune',
          what: 'forget by the retention tiers, then prune the repository',
          every: '1d',
          everyMs: 86_400_000,
          change: 'created',
        },
        {
          scheduleId: maintenance('check'),
          kind: 'check',
          what: 'restic check of the repository',
          every: '1d',
          everyMs: 86_400_000,
          change: 'created',
        },
      ]);
      expect(new Set((await applySchedules(env.temporal, manifest)).map((c) => c.change))).toEqual(
        new Set(['unchanged']),
      );
      const cliEnv = { REWIND_MANIFEST: env.manifestFile };
      const paused = await runCli(
        ['schedules', 'pause', 'production-regression', '--note', 'maintenance', '--as', 'bob'],
        { env: cliEnv },
      );
      expect(paused.stdout).toBe(`${id}: paused by bob: maintenance\n`);
      // Paused again by someone else: bob's reason stays, and is what they are told.
      const again = await runCli(['schedules', 'pause', 'production-regression', '--as', 'carol'], { env: cliEnv });
      expect(again.stdout).toBe(`${id}: already paused, unchanged (paused by bob: maintenance)\n`);
      const listed = JSON.parse((await runCli(['--json', 'schedules', 'list'], { env: cliEnv })).stdout) as unknown[];
      expect(listed).toEqual([
        expect.objectContaining({
          scheduleId: id,
          kind: 'drift',
          from: 'production',
          to: 'regression',
          every: '1h',
          everyMs: 3_600_000,
          paused: true,
        }),
        expect.objectContaining({
          scheduleId: maintenance('check'),
          kind: 'check',
          everyMs: 86_400_000,
          paused: false,
        }),
        expect.objectContaining({ scheduleId: maintenance('drill-full'), kind: 'drill', everyMs: 90 * 86_400_000 }),
        expect.objectContaining({ scheduleId: maintenance('drill-partial'), kind: 'drill', everyMs: 30 * 86_400_000 }),
        expect.objectContaining({
          scheduleId: maintenance('prune'),
          kind: 'prune',
          everyMs: 86_400_000,
          paused: false,
        }),
      ]);
      // Paused, it has no next run to show.
      expect(listed[0]).not.toHaveProperty('nextRun');
      expect(await setSchedulePaused(env.temporal, manifest, id, false, 'back')).toEqual({
        scheduleId: id,
        changed: true,
        note: 'back',
      });
      expect(await setSchedulePaused(env.temporal, manifest, id, false, 'back again')).toMatchObject({
        changed: false,
      });
      const [view] = await listSchedules(env.temporal, manifest);
      expect(view).toMatchObject({ paused: false });
      expect(Date.parse(view!.nextRun!)).toBeGreaterThan(Date.now());
      const unknown = await runCli(['schedules', 'pause', 'staging-regression'], { env: cliEnv });
      expect(unknown.stderr).toBe(
        'error: no schedule "staging-regression" (there are: production-regression, check, drill-full, drill-partial, prune)\n',
      );
      // A manifest without prune and check: apply deletes their schedules.
      const off = {
        ...manifest,
        snapshots: {
          ...manifest.snapshots,
          prune: { every: '0s' },
          check: { ...manifest.snapshots.check, every: '0s' },
        },
      };
      expect((await applySchedules(env.temporal, off)).map((c) => [c.kind, c.change])).toEqual([
        ['drift', 'unchanged'],
        ['drill', 'unchanged'],
        ['drill', 'unchanged'],
        ['check', 'deleted'],
        ['prune', 'deleted'],
      ]);
    } finally {
      for (const scheduleId of [id, ...['prune', 'check', 'drill-partial', 'drill-full'].map(maintenance)])
        await env.temporal.schedule
          .getHandle(scheduleId)
          .delete()
          .catch(() => undefined);
    }
  });

  test("a component's findings are new, persisting or resolved against the last scan of that component, not of others", async () => {
    writeConfig('production', 'partial.yaml', 'k: 1\n');
    writeConfig('regression', 'partial.yaml', 'k: 2\n');
    const subject = 'partial.yaml:k';
    const stateOf = async (scanId: string) =>
      (await findingsOf(scanId)).filter((f) => f.subject === subject).map((f) => `${f.component} ${f.state}`);

    const first = await scan({ components: ['config'] });
    expect(await stateOf(first.summary.scanId)).toEqual(['config new']);
    // A scan of another component in between neither resolves nor renews it.
    const other = await scan({ components: ['db'] });
    expect(await stateOf(other.summary.scanId)).toEqual([]);
    const again = await scan({ components: ['config'] });
    expect(await stateOf(again.summary.scanId)).toEqual(['config persisting']);

    // Regression's copy stops parsing: compared line by line, and the key's finding is not
    // called resolved (it could not be seen). Once it parses again the finding is back.
    writeConfig('regression', 'partial.yaml', 'k: 2\n  : [\n');
    const broken = await findingsOf((await scan({ components: ['config'] })).summary.scanId);
    expect(
      broken.filter((f) => f.subject.startsWith('partial.yaml')).map((f) => `${f.subject} ${f.aspect} ${f.state}`),
    ).toEqual(['partial.yaml unparseable new', 'partial.yaml:line 1 line new', 'partial.yaml:line 2 line new']);
    writeConfig('regression', 'partial.yaml', 'k: 2\n');
    const parses = await scan({ components: ['config'] });
    expect(await stateOf(parses.summary.scanId)).toEqual(['config new']);

    writeConfig('regression', 'partial.yaml', 'k: 1\n');
    const fixed = await scan({ components: ['config'] });
    expect(await stateOf(fixed.summary.scanId)).toEqual(['config resolved']);

    // A folder on one side only: the findings inside it are not seen, so not resolved either.
    for (const [environment, value] of [
      ['production', 1],
      ['regression', 2],
    ] as const) {
      mkdirSync(path.join(env.componentPath(environment, 'config'), 'conf.d'), { recursive: true });
      writeConfig(environment, 'conf.d/x.yaml', `a: ${value}\n`);
    }
    const inside = async (scanId: string) =>
      (await findingsOf(scanId)).filter((f) => f.subject.startsWith('conf.d')).map((f) => `${f.subject} ${f.state}`);
    expect(await inside((await scan({ components: ['config'] })).summary.scanId)).toEqual(['conf.d/x.yaml:a new']);
    rmSync(path.join(env.componentPath('regression', 'config'), 'conf.d'), { recursive: true });
    expect(await inside((await scan({ components: ['config'] })).summary.scanId)).toEqual(['conf.d/ new']);
    rmSync(path.join(env.componentPath('production', 'config'), 'conf.d'), { recursive: true });
  });

  test('a scan of chosen components does not call the pair resolved while a component it did not compare still drifts', async () => {
    // A pickle that names posix.system in regression only (critical), and one config key.
    const evil = path.join(env.componentPath('regression', 'models'), 'partial-evil.pkl');
    writeFileSync(evil, Buffer.from('\x80\x02cposix\nsystem\n.', 'latin1'));
    writeConfig('production', 'partial-alert.yaml', 'k: 1\n');
    writeConfig('regression', 'partial-alert.yaml', 'k: 2\n');
    const full = await scan();
    expect(full.summary.counts.critical).toBeGreaterThan(0);

    // The config key fixed; a scan of config alone finds nothing, but models still drift.
    writeConfig('regression', 'partial-alert.yaml', 'k: 1\n');
    const sent = slack.calls.length;
    const partial = await scan({ components: ['config'] });
    expect(partial.summary.counts).toEqual({ critical: 0, warning: 0, info: 0 });
    expect(partial.summary.alert).toMatchObject({ sent: 'none' });
    expect(slack.calls.slice(sent)).toEqual([]);

    rmSync(evil);
    rmSync(path.join(env.componentPath('production', 'config'), 'partial-alert.yaml'));
    rmSync(path.join(env.componentPath('regression', 'config'), 'partial-alert.yaml'));
  });

  test('a database that cannot be read is an unreadable finding: the other findings stand, its earlier ones are not resolved, the CLI exits 1', async () => {
    await sql(regrDb, 'ALTER TABLE customers ADD COLUMN unread_probe int');
    const column = 'column public.customers.unread_probe';
    const seen = await scan({ components: ['config', 'db'] });
    expect((await findingsOf(seen.summary.scanId)).filter((f) => f.subject === column).map(live)).toEqual([true]);

    // Regression's database goes away (renamed); a config key differs too.
    writeConfig('production', 'unread.yaml', 'k: 1\n');
    writeConfig('regression', 'unread.yaml', 'k: 2\n');
    const name = decodeURIComponent(new URL(regrDb).pathname.slice(1));
    await sql(PG_ADMIN_URL, `ALTER DATABASE "${name}" RENAME TO "${name}_away"`);
    try {
      const down = await scan({ components: ['config', 'db'] });
      expect(down.summary).toMatchObject({ status: 'completed', unreadable: ['db'] });
      const findings = await findingsOf(down.summary.scanId);
      const db = findings.filter((f) => f.component === 'db' && ['db', column].includes(f.subject));
      // One finding for the database, with the reason; its column finding neither found nor resolved.
      expect(db.map((f) => `${f.subject} ${f.aspect} ${f.severity} ${f.state}`)).toEqual(['db unreadable warning new']);
      expect(db[0]!.detail).toMatch(/^not compared: .*does not exist/);
      expect(findings.find((f) => f.subject === 'unread.yaml:k')).toMatchObject({ aspect: 'key', state: 'new' });
      expect(down.summary.counts.warning).toBeGreaterThanOrEqual(2);
      // The pair still drifts in the database as far as anyone knows: no "resolved" message.
      expect(down.summary.alert.sent).not.toBe('resolved');
      const [alerted] = await (
        await env.projectStore()
      ).query<{ findings: Record<string, string> | string }>('SELECT findings FROM drift_alerts WHERE scan_id = $1', [
        down.summary.scanId,
      ]);
      // The config key is new: an alert went out, and the state it names holds the column.
      expect(down.summary.alert.sent).toBe('alert');
      const state = alerted!.findings;
      const keys = Object.keys(typeof state === 'string' ? (JSON.parse(state) as Record<string, string>) : state);
      const [columnKey] = await (
        await env.projectStore()
      ).query<{ key: string }>('SELECT key FROM drift_findings WHERE scan_id = $1 AND subject = $2', [
        seen.summary.scanId,
        column,
      ]);
      expect(keys).toContain(columnKey!.key);

      // The CLI says what it could not compare, and exits 1.
      const run = await runCli(['--json', 'drift', 'scan', '--components', 'config,db', '--wait'], {
        env: { REWIND_MANIFEST: env.manifestFile, DATABASE_URL: await env.projectStoreUrl() },
        timeoutMs: 120_000,
      });
      expect(run.code).toBe(1);
      expect(JSON.parse(run.stdout)).toMatchObject({ status: 'completed', unreadable: ['db'] });
      const text = await runCli(['drift', 'scan', '--components', 'db,config', '--wait'], {
        env: { REWIND_MANIFEST: env.manifestFile, DATABASE_URL: await env.projectStoreUrl() },
        timeoutMs: 120_000,
      });
      expect(text.code).toBe(1);
      expect(text.stdout).toContain('not compared: db (could not be read');
    } finally {
      // Put back whatever happens, so that a failure here does not fail the tests after it.
      await sql(PG_ADMIN_URL, `ALTER DATABASE "${name}_away" RENAME TO "${name}"`);
      await sql(regrDb, 'ALTER TABLE customers DROP COLUMN IF EXISTS unread_probe');
      for (const environment of ['production', 'regression'])
        rmSync(path.join(env.componentPath(environment, 'config'), 'unread.yaml'), { force: true });
    }
    // Back: compared with the last scan that read the database, the column (dropped meanwhile)
    // is resolved; the scans that could not read it said nothing of it.
    const back = await scan({ components: ['config', 'db'] });
    expect(back.summary.unreadable).toBeUndefined();
    const after = await findingsOf(back.summary.scanId);
    const probed = (f: { component: string; subject: string }) =>
      f.component === 'db' && ['db', column].includes(f.subject);
    expect(after.filter(probed).map((f) => `${f.subject} ${f.state}`)).toEqual([`${column} resolved`]);
  });

  test('a scan asked with another manifest than the workers run is refused, naming both', async () => {
    const edited = new RewindClient(env.client.client, {
      ...env.client.manifest,
      drift: { ...env.client.manifest.drift, defaultSeverity: 'info' },
    });
    const before = await countScans();
    const started = await edited.startDriftScan({ components: ['config'], trigger: 'manual' });

    await expect(edited.driftScanResult(started.workflowId)).rejects.toThrow();
    const failure = await env.client.client.workflow
      .getHandle(started.workflowId)
      .result()
      .catch((err: unknown) => String((err as { cause?: unknown }).cause ?? err));
    expect(String(failure)).toContain(
      `the manifest changed since the workers started (they run ${env.client.manifestDigest.slice(0, 12)}, this request was made with ${edited.manifestDigest.slice(0, 12)})`,
    );
    expect(await countScans()).toBe(before);

    // The CLI says so at once, without --wait too, and names no scan that will never have a report.
    const manifest = parse(readFileSync(env.manifestFile, 'utf8')) as { drift: Record<string, unknown> };
    manifest.drift.defaultSeverity = 'info';
    const editedFile = path.join(env.dir, 'edited-rewind.yaml');
    writeFileSync(editedFile, stringify(manifest));
    const run = await runCli(['drift', 'scan', '--components', 'config'], {
      env: { REWIND_MANIFEST: editedFile, DATABASE_URL: await env.projectStoreUrl() },
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('the manifest changed since the workers started');
    expect(run.stdout).not.toContain('started scan');
    expect(await countScans()).toBe(before);
  });

  test('the CLI: scan --wait --json, list, report in Markdown and JSON, rules test', async () => {
    writeConfig('production', 'app.yaml', appYaml('prod-db.internal', 10, SECRET_FROM));
    writeConfig('regression', 'app.yaml', appYaml('regr-db.internal', 30, SECRET_FROM));
    const cliEnv = { REWIND_MANIFEST: env.manifestFile, DATABASE_URL: await env.projectStoreUrl() };
    const run = await runCli(['--json', 'drift', 'scan', '--components', 'config', '--wait'], {
      env: cliEnv,
      timeoutMs: 120_000,
    });
    expect(run.stderr).toBe('');
    const result = JSON.parse(run.stdout) as { scanId: string; counts: Record<string, number> };
    expect(run.code).toBe(0);
    expect(result.counts.warning).toBe(1);

    const listed = await runCli(['drift', 'list'], { env: cliEnv });
    expect(listed.stdout.split('\n')[0]).toMatch(
      /^SCAN +PAIR +STATUS +TRIGGER +STARTED \(UTC\) +COMPONENTS +FINDINGS$/,
    );
    // The scan's row says what it compared (only config) and what it found.
    expect(listed.stdout.split('\n').find((l) => l.startsWith(result.scanId))).toMatch(
      / manual +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +config +0 critical, 1 warning, 0 info$/,
    );
    const report = await runCli(['drift', 'report', result.scanId], { env: cliEnv });
    expect(report.stdout).toContain('- changed **config** `app.yaml:database.pool.max`: 10 → 30');
    expect(report.stdout).toContain('## Allowed differences (1)');
    const asJson = JSON.parse(
      (await runCli(['drift', 'report', result.scanId, '--format', 'json'], { env: cliEnv })).stdout,
    ) as {
      findings: { subject: string }[];
    };
    expect(asJson.findings.map((f) => f.subject)).toContain('app.yaml:database.pool.max');
    const missing = await runCli(['drift', 'report', 'nope'], { env: cliEnv });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('error: no drift scan "nope" (rewind drift list shows them; `latest` is the newest)\n');
    const empty = await runCli(['drift', 'report', ''], { env: cliEnv });
    expect([empty.code, empty.stderr]).toEqual([
      1,
      'error: give a scan id (see rewind drift list), a prefix of one, or latest\n',
    ]);
    const twoFormats = await runCli(['--json', 'drift', 'report', 'latest', '--format', 'markdown'], { env: cliEnv });
    expect([twoFormats.code, twoFormats.stdout]).toEqual([1, '']);
    expect(twoFormats.stderr).toContain('--json and --format markdown ask for two formats: give one');
    // The random end of an id names its scan; a beginning that several share is refused with them.
    const bySuffix = await runCli(['--json', 'drift', 'report', result.scanId.slice(-6)], { env: cliEnv });
    expect((JSON.parse(bySuffix.stdout) as { scan: { id: string } }).scan.id).toBe(result.scanId);
    await scan({ components: ['config'] }); // a second scan of the same year
    const ambiguous = await runCli(['drift', 'report', result.scanId.slice(0, 4)], { env: cliEnv });
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(
      new RegExp(
        `^error: "${result.scanId.slice(0, 4)}" matches (\\d+|at least 5) scans \\(.*${result.scanId}.*\\): give more of the id\n$`,
      ),
    );
    const unknownEnv = await runCli(['drift', 'list', '--from', 'prodution'], { env: cliEnv });
    expect(unknownEnv.code).toBe(1);
    expect(unknownEnv.stderr).toBe(
      'error: --from: unknown environment "prodution" (the manifest has: production, regression); did you mean "production"?\n',
    );

    const tested = await runCli(['drift', 'rules', 'test', result.scanId], { env: cliEnv });
    expect(tested.code).toBe(0);
    expect(tested.stdout).toMatch(/allowed +config app\.yaml:database\.host by rule #1 per-environment hosts/);
    expect(tested.stdout).toContain('would alert');
    // Nothing is classified differently than when the scan ran: no legend for marks not shown.
    expect(tested.stdout).not.toContain('* = classified differently');
  });
});
