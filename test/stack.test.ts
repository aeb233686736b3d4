// `npm start` as a new user meets it: `rewind start` in an empty folder writes the demo,
// brings up the dev server, the worker and the agents, the README walkthrough works against
// it, the run is findable in Temporal by its search attributes, and Ctrl-C stops everything.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Connection, Client } from '@temporalio/client';
import { freePort } from '../src/platform/temporal-dev-server';
import { eventually, REPO_ROOT, runCli } from './support/harness';
import { tempDir } from './support/temp';

describe('rewind start (npm start)', () => {
  const workdir = tempDir('rewind-stack-');
  let stack: ChildProcess;
  let stdout = '';
  let stderr = '';
  let info: { temporalAddress: string; webUi: string; manifest: string; driftSchedules: string[] };

  beforeAll(async () => {
    const [port, uiPort] = [await freePort(), await freePort()];
    const env = { ...process.env };
    delete env.REWIND_MANIFEST;
    delete env.TEMPORAL_ADDRESS;
    delete env.DATABASE_URL; // the demo keeps its drift findings in the embedded store
    stack = spawn(
      process.execPath,
      [
        '--import',
        pathToFileURL(path.join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')).href,
        path.join(REPO_ROOT, 'src/client/cli.ts'),
        'start',
        '--json',
        '--port',
        String(port),
        '--ui-port',
        String(uiPort),
      ],
      { cwd: workdir, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    stack.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    stack.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const line = await eventually(
      () => stdout.split('\n').find((l) => l.startsWith('{')),
      'the stack to be ready',
      120_000,
    );
    info = JSON.parse(line) as typeof info;
  });
  afterAll(() => {
    if (stack.exitCode === null) stack.kill('SIGKILL');
  });

  it('writes a demo with config files in several formats and real pickle files', () => {
    expect(info.manifest).toBe(path.join(workdir, 'rewind.yaml'));
    const config = path.join(workdir, '.data/demo/production/config');
    for (const f of ['app.yaml', 'database.json', 'features.ini', 'logging.toml', '.env'])
      expect(existsSync(path.join(config, f))).toBe(true);
    // Protocol 4 pickles start with PROTO 4 and end with STOP.
    const pickle = readFileSync(path.join(workdir, '.data/demo/production/models/classifier.pkl'));
    expect([pickle[0], pickle[1], pickle[pickle.length - 1]]).toEqual([0x80, 0x04, 0x2e]);
  });

  it('serves the Web UI', async () => {
    const response = await fetch(info.webUi);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('<html');
  });

  it('runs the README walkthrough, and the run is findable by its search attributes', async () => {
    const cli = (args: string[]) =>
      runCli(args, { cwd: workdir, env: { TEMPORAL_ADDRESS: info.temporalAddress, REWIND_MANIFEST: '' } });
    const app = path.join(workdir, '.data/demo/production/config/app.yaml');
    const original = readFileSync(app);

    expect((await cli(['snapshot', 'create', '--env', 'production', '--version', 'v1', '--wait'])).code).toBe(0);
    appendFileSync(app, 'changed: true\n');
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
    expect(started.code).toBe(0);
    expect(started.stderr).toBe('');
    const { workflowId } = JSON.parse(started.stdout) as { workflowId: string };
    const approved = await cli(['rollback', 'approve', workflowId, '--as', 'bob']);
    expect(approved).toMatchObject({ code: 0, stderr: '' });
    const watched = await cli(['rollback', 'status', workflowId, '--watch']);
    expect(watched.stdout).toContain('state: completed');
    expect(readFileSync(app)).toEqual(original);
    const report = await cli(['rollback', 'report', workflowId]);
    expect(report.stdout).toContain('- change `app.yaml`');
    // The CLI's actions are in the audit log, through the store the control worker serves.
    const audit = JSON.parse((await cli(['audit', 'list', '--run', workflowId, '--json'])).stdout) as {
      actor: string;
      door: string;
      action: string;
    }[];
    expect(audit.filter((r) => r.door === 'cli').map((r) => [r.actor, r.action])).toEqual([
      ['alice', 'rollback.start'],
      ['bob', 'rollback.approve'],
    ]);

    const connection = await Connection.connect({ address: info.temporalAddress });
    const client = new Client({ connection });
    const found = await eventually(async () => {
      const ids: string[] = [];
      for await (const run of client.workflow.list({
        query: `RewindEnvironment = 'production' AND RewindState = 'completed' AND RewindTarget = 'version:v1' AND RewindTrigger = 'manual' AND RewindPhase = 'complete'`,
      }))
        ids.push(run.workflowId);
      return ids.includes(workflowId) ? ids : undefined;
    }, 'the run in the visibility store');
    expect(found).toContain(workflowId);
    await connection.close();
  });

  it('scans the demo for drift hourly and on demand; the CLI reads the findings through the worker', async () => {
    expect(info.driftSchedules).toEqual(['production → regression every 1h']);
    const cli = (args: string[]) =>
      runCli(args, {
        cwd: workdir,
        env: { TEMPORAL_ADDRESS: info.temporalAddress, REWIND_MANIFEST: '', DATABASE_URL: '' },
        timeoutMs: 180_000,
      });
    const scanned = await cli(['--json', 'drift', 'scan', '--wait']);
    expect(scanned.stderr).toBe('');
    expect(scanned.code).toBe(0);
    // The demo's only difference is the environment's own name, which its rules allow.
    expect(JSON.parse(scanned.stdout)).toMatchObject({
      from: 'production',
      to: 'regression',
      status: 'completed',
      counts: { critical: 0, warning: 0, info: 0 },
      allowed: 1,
    });
    const report = await cli(['drift', 'report', 'latest']);
    expect(report.stdout).toContain('## Allowed differences (1)');
    expect(report.stdout).toContain('`.env:APP_ENV`: "production" → "regression"');
    // The embedded store lives in the worker; the CLI reached it through the worker's socket.
    expect(existsSync(path.join(workdir, '.data/store/pgdata'))).toBe(true);
  });

  it('stops everything on Ctrl-C', async () => {
    stack.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => stack.once('exit', (c) => resolve(c)));
    expect(code).toBe(0);
    expect(stdout + stderr).not.toMatch(/exited \(.*\); restarting/);
    const [host, port] = info.temporalAddress.split(':');
    await expect(fetch(`http://${host}:${port}`)).rejects.toThrow();
  });
});
