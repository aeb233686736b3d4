// The `rewind` command as an operator runs it: JSON output for tooling, one clear error line
// and a non-zero exit for bad input, and nothing started by a bad request.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { listAudit } from '../src/audit/audit-log';
import { RewindClient } from '../src/client/client';
import { CROSS_SECTION_ID_PATTERN } from '../src/domain/cross-section';
import { createTestEnv, eventually, readTree, runCli, type TestEnv } from './support/harness';

let env: TestEnv;
let cli: (args: string[]) => ReturnType<typeof runCli>;
let crossSectionId: string;

beforeAll(async () => {
  env = await createTestEnv({ environments: { production: { config: {}, models: { dependsOn: ['config'] } } } });
  // The project store the workers write to: the CLI's own door records its actions there too.
  const store = { DATABASE_URL: await env.projectStoreUrl() };
  cli = (args) => runCli(['--manifest', env.manifestFile, ...args], { env: store });
  writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'release: v1\n');
  writeFileSync(path.join(env.componentPath('production', 'models'), 'm.pkl'), 'pickle-v1');
});
afterAll(() => env.teardown());

const json = (text: string) => JSON.parse(text) as Record<string, unknown>;

describe('rewind CLI', () => {
  it('prints its version', async () => {
    const { version } = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(await runCli(['--version'])).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it('snapshot create --wait --json prints the cross-section id; list and show find it', async () => {
    const created = await cli([
      'snapshot',
      'create',
      '--env',
      'production',
      '--version',
      'v1',
      '--reason',
      'before deploy',
      '--wait',
      '--json',
    ]);
    expect(created.code).toBe(0);
    crossSectionId = json(created.stdout).crossSectionId as string;
    expect(crossSectionId).toMatch(CROSS_SECTION_ID_PATTERN);

    const listed = await cli(['snapshot', 'list', '--env', 'production', '--json']);
    expect((JSON.parse(listed.stdout) as { id: string; version: string }[])[0]).toMatchObject({
      id: crossSectionId,
      version: 'v1',
    });
    const shown = await cli(['snapshot', 'show', crossSectionId]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`${crossSectionId}  production`);
    expect(shown.stdout).toMatch(/config\s+snapshot [0-9a-f]{8}\s+1 file, 0 dirs, 0 links/);
  });

  it('runs a rollback from start to report', async () => {
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'release: v2\n');
    const started = await cli([
      'rollback',
      'start',
      '--env',
      'production',
      '--to-version',
      'v1',
      '--as',
      'alice',
      '--reason',
      'errors up',
      '--json',
    ]);
    expect(started.code).toBe(0);
    const start = json(started.stdout);
    expect(start).toMatchObject({ state: 'awaiting-approval', phase: 'approval' });
    const id = start.workflowId as string;
    expect(id).toMatch(/^rollback-production-\d{8}-\d{6}-[0-9a-f]{4}$/);

    const status = json((await cli(['rollback', 'status', id, '--json'])).stdout);
    expect(status).toMatchObject({
      phase: 'approval',
      state: 'awaiting-approval',
      requester: 'alice',
      reason: 'errors up',
    });

    const self = await cli(['rollback', 'approve', id, '--as', 'alice', '--json']);
    expect(self.code).toBe(1);
    expect(json(self.stdout)).toMatchObject({
      accepted: false,
      reason: 'alice requested this rollback and cannot approve it in production',
    });
    const stranger = await cli(['rollback', 'approve', id, '--as', 'mallory']);
    expect(stranger).toMatchObject({ code: 1, stdout: '' });
    expect(stranger.stderr).toBe('refused: mallory is not an approver (approvers: alice, bob, carol)\n');

    const approved = await cli(['rollback', 'approve', id, '--as', 'bob']);
    expect(approved.code).toBe(0);
    expect(approved.stdout).toContain('approved by bob');

    const watched = await cli(['rollback', 'status', id, '--watch', '--json']);
    expect(watched.code).toBe(0);
    expect(json(watched.stdout)).toMatchObject({ phase: 'complete', state: 'completed', execution: 'COMPLETED' });
    expect(readTree(env.componentPath('production', 'config'))['app.yaml']?.content).toBe(
      Buffer.from('release: v1\n').toString('base64'),
    );

    // The CLI's door (Temporal directly) is audited, the actor as claimed and said to be so.
    const rows = await listAudit(await env.projectStore(), { runId: id });
    expect(rows.filter((r) => r.door === 'cli').map((r) => [r.actor, r.action, r.outcome])).toEqual([
      ['alice', 'rollback.start', 'accepted'],
      ['alice', 'rollback.approve', 'refused'],
      ['mallory', 'rollback.approve', 'refused'],
      ['bob', 'rollback.approve', 'accepted'],
    ]);
    const bob = rows.find((r) => r.actor === 'bob')!;
    expect(bob).toMatchObject({
      environment: 'production',
      detail: { identity: expect.stringMatching(/not authenticated/) },
    });
    expect(bob.evidence?.plan).toMatch(/^[0-9a-f]{64}$/);

    const report = await cli(['rollback', 'report', id]);
    expect(report.stdout).toContain(`# Rollback report: ${id}`);
    expect(report.stdout).toContain('- change `app.yaml`');

    const listed = JSON.parse((await cli(['rollback', 'list', '--env', 'production', '--json'])).stdout) as Record<
      string,
      unknown
    >[];
    expect(listed[0]).toMatchObject({
      workflowId: id,
      environment: 'production',
      state: 'completed',
      target: 'version:v1',
      requester: 'alice',
    });
    // The human list has headers, the requester and the age of each run.
    const table = (await cli(['rollback', 'list', '--env', 'production'])).stdout.split('\n');
    expect(table[0]).toMatch(/^ID\s+STATE\s+PHASE\s+REQUESTER\s+AGE\s+TARGET$/);
    expect(table[1]).toMatch(
      new RegExp(`^${id}\\s+completed\\s+complete\\s+alice\\s+\\d+(\\.\\d)?(ms|s|m)\\S* ago\\s+version:v1$`),
    );
  });

  it('status --watch stays open through the approval wait, saying who may approve, until the run ends', async () => {
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'release: v9\n');
    const started = await cli([
      'rollback',
      'start',
      '--env',
      'production',
      '--to-version',
      'v1',
      '--as',
      'alice',
      '--json',
    ]);
    const id = json(started.stdout).workflowId as string;
    let seen = '';
    const watching = runCli(['--manifest', env.manifestFile, 'rollback', 'status', id, '--watch'], {
      onStderr: (text) => (seen = text),
    });
    await eventually(
      () => seen.includes('waiting for approval by') || undefined,
      'the watch to show the approval wait',
    );
    expect((await cli(['rollback', 'approve', id, '--as', 'bob'])).code).toBe(0);
    const watched = await watching;
    expect(watched.code).toBe(0);
    expect(watched.stdout).toContain('state: completed');
    expect(watched.stderr).toMatch(
      /phase approval, state awaiting-approval; waiting for approval by bob, carol \(0 of 1, until /,
    );
  });

  it('cancels a rollback that awaits approval; nothing changes', async () => {
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'release: v3\n');
    const before = readTree(path.join(env.dir, 'envs', 'production'));
    const { workflowId } = json(
      (await cli(['rollback', 'start', '--env', 'production', '--to-version', 'v1', '--json'])).stdout,
    ) as { workflowId: string };
    const cancelled = await cli([
      'rollback',
      'cancel',
      workflowId,
      '--as',
      'carol',
      '--reason',
      'wrong target',
      '--json',
    ]);
    expect(cancelled.code).toBe(0);
    expect(json(cancelled.stdout)).toMatchObject({
      workflowId,
      cancelRequested: true,
      accepted: true,
      phase: 'approval',
    });
    const watched = await cli(['rollback', 'status', workflowId, '--watch', '--json']);
    // A run that ended other than completed makes `status` exit non-zero: 6 for cancelled.
    expect(watched.code).toBe(6);
    const status = json(watched.stdout);
    expect(status).toMatchObject({
      state: 'cancelled',
      execution: 'CANCELLED',
      cause: 'cancelled by carol during approval: wrong target; nothing was changed',
      cancellation: { user: 'carol', reason: 'wrong target', phase: 'approval' },
    });
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(before);
  });

  it('starts one run for a request id sent twice, and refuses the id for a different request', async () => {
    const args = [
      'rollback',
      'start',
      '--env',
      'production',
      '--to-version',
      'v1',
      '--request-id',
      'incident-42',
      '--no-wait',
      '--json',
    ];
    const id = 'rollback-production-req-incident-42';
    const first = await cli(args);
    expect(first.stderr).toBe('');
    expect(json(first.stdout)).toEqual({ workflowId: id, existing: false, phase: 'decide', state: 'running' });
    const { runId } = await env.temporal.workflow.getHandle(id).describe();
    const again = await cli(args);
    expect(again.code).toBe(0);
    expect(json(again.stdout)).toEqual({ workflowId: id, existing: true });
    expect((await env.temporal.workflow.getHandle(id).describe()).runId).toBe(runId);
    const other = await cli([
      'rollback',
      'start',
      '--env',
      'production',
      '--to-version',
      'v2',
      '--request-id',
      'incident-42',
      '--no-wait',
    ]);
    expect(other.code).toBe(1);
    expect(other.stderr).toBe(
      'error: request id incident-42 already names rollback-production-req-incident-42, which rolls production back to version v1; this request asks for version v2. Use another request id\n',
    );
    const bad = await cli([
      'rollback',
      'start',
      '--env',
      'production',
      '--to-version',
      'v1',
      '--request-id',
      'has spaces',
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('error: requestId: must be 1 to 80 characters of A-Z, a-z, 0-9 and . _ : -\n');
    await cli(['rollback', 'cancel', id, '--as', 'bob']);
    expect((await env.finalStatus(id)).status.state).toBe('cancelled');
  });

  it('tells exactly one of several clients racing on one request id that it started the run', async () => {
    // Each client on a connection of its own, as separate API processes or CLIs would be.
    const connections = await Promise.all(
      Array.from({ length: 6 }, () => Connection.connect({ address: process.env.TEMPORAL_ADDRESS! })),
    );
    try {
      const clients = connections.map((c) => new RewindClient(new Client({ connection: c }), env.loaded.manifest));
      const request = {
        environment: 'production',
        target: { kind: 'version', version: 'v1' },
        requester: 'alice',
      };
      const answers = await Promise.all(clients.map((c) => c.startRollback(request, { requestId: 'race-7' })));
      expect(new Set(answers.map((a) => a.workflowId))).toEqual(new Set(['rollback-production-req-race-7']));
      expect(answers.filter((a) => !a.existing)).toHaveLength(1);
      await env.client.cancel('rollback-production-req-race-7', { user: 'bob' });
      await env.finalStatus('rollback-production-req-race-7');
    } finally {
      await Promise.all(connections.map((c) => c.close()));
    }
  });

  it('prints the plan of a dry run, exits 0 and lists the run as a dry run', async () => {
    const dry = await cli(['rollback', 'start', '--env', 'production', '--to-snapshot', crossSectionId, '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('[dry run]');
    expect(dry.stdout).toMatch(/Plan \(safety cross-section xs-/);
    expect(dry.stdout).not.toContain('Steps:');
    const listed = JSON.parse((await cli(['rollback', 'list', '--json'])).stdout) as {
      dryRun: boolean;
      state: string;
    }[];
    expect(listed[0]).toMatchObject({ dryRun: true, state: 'completed' });
  });

  it('says so when the audit log cannot be written, and the action stands', async () => {
    // No DATABASE_URL, and no control worker serves the embedded store here.
    const dry = await runCli(
      [
        '--manifest',
        env.manifestFile,
        'rollback',
        'start',
        '--env',
        'production',
        '--to-snapshot',
        crossSectionId,
        '--dry-run',
        '--json',
      ],
      { env: { DATABASE_URL: '' } },
    );
    expect(dry.code).toBe(0);
    const { workflowId } = json(dry.stdout);
    expect(dry.stderr).toBe(
      `warning: rollback.start of ${String(workflowId)} happened, but the audit log could not be written: no process serves the project store (PGlite ${path.join(path.dirname(env.manifestFile), 'data', 'store')}): start the control worker (rewind start, or rewind worker), or set DATABASE_URL\n`,
    );
    expect((await env.client.rollbackView(String(workflowId))).status.dryRun).toBe(true);
  });

  it.each([
    [
      ['rollback', 'start', '--env', 'production'],
      'error: give exactly one of --to-version V, --to-snapshot ID or --to-time ISO',
    ],
    [
      ['rollback', 'start', '--env', 'production', '--to-time', 'yesterday noon'],
      'error: --to-time: "yesterday noon" is not an ISO time with a zone, like 2026-11-28T13:05:00Z',
    ],
    [
      ['rollback', 'start', '--env', 'production', '--to-time', '2999-01-01T00:00:00Z'],
      'error: --to-time: 2999-01-01T00:00:00Z is in the future',
    ],
    [
      ['rollback', 'start', '--env', 'production', '--to-version', 'v1', '--strategy', 'undo'],
      'error: --strategy undo applies to postgres components, and this rollback has none',
    ],
    [
      ['rollback', 'start', '--env', 'production', '--to-version', 'v1', '--to-snapshot', 'xs-20261128-000000-abcd'],
      'error: give exactly one of',
    ],
    [
      ['rollback', 'start', '--env', 'production', '--to-snapshot', 'yesterday'],
      'error: --to-snapshot: "yesterday" is not a cross-section id (like xs-20261128-130641-a1b2)',
    ],
    [
      ['rollback', 'start', '--env', 'staging', '--to-version', 'v1'],
      'error: unknown environment "staging" (the manifest declares: production)',
    ],
    [
      ['rollback', 'start', '--env', 'production', '--to-version', 'v1', '--components', 'config,nope'],
      'error: environment "production" has no component "nope" (it has: config, models)',
    ],
    [
      ['rollback', 'start', '--env', 'production', '--to-version', 'v1', '--trigger', 'pager'],
      "error: option '--trigger <trigger>' argument 'pager' is invalid",
    ],
    [['rollback', 'status', 'rollback-production-nope'], 'error: no rollback with id rollback-production-nope'],
    [
      ['snapshot', 'create', '--env', 'production', '--components', 'nope'],
      'error: environment "production" has no component "nope"',
    ],
    [
      ['snapshot', 'show', 'xs-20261128-000000-0000', '--env', 'production'],
      'error: no cross-section xs-20261128-000000-0000 in production',
    ],
    [
      ['snapshot', 'show', 'xs-20261128-000000-0000'],
      'error: no cross-section xs-20261128-000000-0000 (rewind snapshot list',
    ],
    [['snapshot', 'show', 'latest'], 'error: "latest" is not a cross-section id (like xs-20261128-130641-a1b2)'],
    [['rollback', 'frobnicate'], "error: unknown command 'frobnicate'"],
  ])('rejects bad input %j with one clear line and starts nothing', async (args, message) => {
    const before = (await env.client.listRollbacks('production', 100)).length;
    const result = await cli(args);
    expect(result.code).not.toBe(0);
    expect(result.stderr.split('\n')[0]).toContain(message);
    expect((await env.client.listRollbacks('production', 100)).length).toBe(before);
  });

  it('refuses a target that does not exist before starting a run', async () => {
    const before = (await env.client.listRollbacks('production', 100)).length;
    const result = await cli(['rollback', 'start', '--env', 'production', '--to-version', 'v404']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'error: no cross-section of production matches version v404 (rewind snapshot list --env production)\n',
    );
    expect((await env.client.listRollbacks('production', 100)).length).toBe(before);
  });

  it('refuses to cancel a run that has ended', async () => {
    const [done] = await env.client.listRollbacks('production', 1);
    const result = await cli(['rollback', 'cancel', done!.workflowId]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^error: rollback-production-\S+ already ended \((completed|cancelled)\); there is nothing to cancel\n$/,
    );
    // The refusal is in the audit log, through the CLI's door.
    const rows = await listAudit(await env.projectStore(), { runId: done!.workflowId });
    expect(rows.filter((r) => r.door === 'cli' && r.action === 'rollback.cancel').at(-1)).toMatchObject({
      outcome: 'refused',
      reason: expect.stringMatching(/already ended/),
    });
  });

  it('shows the reason a worker gives, not just that the run failed', async () => {
    // The operator's manifest declares a component the worker's does not know.
    const stale = path.join(env.dir, 'stale.yaml');
    const extra = path.join(env.dir, 'envs', 'production', 'extra');
    mkdirSync(extra, { recursive: true });
    writeFileSync(
      stale,
      readFileSync(env.manifestFile, 'utf8').replace(
        '      models:',
        `      extra:\n        kind: files\n        path: ${extra}\n      models:`,
      ),
    );
    const result = await runCli([
      '--manifest',
      stale,
      'snapshot',
      'create',
      '--env',
      'production',
      '--components',
      'extra',
      '--wait',
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^error: the manifest changed since the workers started \(they run [0-9a-f]{12}, this request was made with [0-9a-f]{12}\); restart the control worker and the agents/,
    );
  });

  it('rejects empty values with the flag named', async () => {
    const result = await cli(['rollback', 'start', '--env', 'production', '--to-version', 'v1', '--as', '']);
    expect(result.code).toBe(1);
    expect(result.stderr.split('\n')[0]).toBe(
      "error: option '--as <user>' argument '' is invalid. --as must not be empty",
    );
  });

  it('a reading command does not create a project store that does not exist, and says where it looked', async () => {
    const dataDir = path.join(env.dir, 'fresh-data');
    const manifest = parse(readFileSync(env.manifestFile, 'utf8')) as Record<string, unknown>;
    const file = path.join(env.dir, 'fresh-data-rewind.yaml');
    writeFileSync(file, stringify({ ...manifest, dataDir }));
    for (const args of [
      ['drift', 'list'],
      ['drift', 'rules', 'test', 'latest'],
      ['audit', 'list'],
    ]) {
      const result = await runCli(['--manifest', file, ...args], { env: { DATABASE_URL: '' } });
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `error: no project store yet (PGlite ${path.join(dataDir, 'store')}): nothing has been recorded there. The control worker creates it (rewind start, or rewind worker); if the store is a PostgreSQL server, set DATABASE_URL\n`,
      );
    }
    expect(existsSync(dataDir)).toBe(false);
  });

  it('says where it looked when Temporal is unreachable', async () => {
    const result = await runCli(['--manifest', env.manifestFile, 'rollback', 'list'], {
      env: { TEMPORAL_ADDRESS: '127.0.0.1:1' },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^error: cannot reach Temporal at 127\.0\.0\.1:1 .*start it with `npm start`, or pass --address \(or set TEMPORAL_ADDRESS\)/,
    );
  });

  it('refuses a Temporal address that is not host:port, at once and saying so', async () => {
    for (const address of ['notaport', '127.0.0.1:99999', 'http://127.0.0.1:7233']) {
      const result = await runCli(['--manifest', env.manifestFile, '--address', address, 'rollback', 'list']);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `error: the Temporal address "${address}" is not host:port (e.g. 127.0.0.1:7233); check --address or TEMPORAL_ADDRESS\n`,
      );
    }
  });

  it('takes the Temporal address from --address before TEMPORAL_ADDRESS', async () => {
    const wrong = await runCli(['--manifest', env.manifestFile, '--address', '127.0.0.1:1', 'rollback', 'list']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^error: cannot reach Temporal at 127\.0\.0\.1:1 /);
    const right = await runCli(
      ['--manifest', env.manifestFile, '--address', process.env.TEMPORAL_ADDRESS!, 'rollback', 'list', '--json'],
      { env: { TEMPORAL_ADDRESS: '127.0.0.1:1' } },
    );
    expect(right.code).toBe(0);
    expect(Array.isArray(JSON.parse(right.stdout))).toBe(true);
  });

  it('documents every command with --help', async () => {
    const help = await runCli(['rollback', 'start', '--help']);
    expect(help.code).toBe(0);
    for (const flag of ['--to-version', '--to-snapshot', '--components', '--dry-run', '--as'])
      expect(help.stdout).toContain(flag);
  });
});
