// `npm start` as a new user meets it: `rewind start` in an empty folder writes the demo,
// brings up the dev server, the worker and the agents, the README walkthrough works against
// it, the run is findable in Temporal by its search attributes, and Ctrl-C stops everything.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Connection, Client } from '@temporalio/client';
import { freePort } from '../src/platform/temporal-dev-server';
import { eventually, REPO_ROOT, runCli } from './support/harness';
import { tempDir } from './support/temp';

type StackInfo = {
  temporalAddress: string;
  webUi: string;
  manifest: string;
  driftSchedules: string[];
  metrics: Record<string, string>;
};

/** The pids of processes whose working directory is `dir` (Linux: /proc/<pid>/cwd). */
function processesIn(dir: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readlinkSync(`/proc/${p}/cwd`) === dir;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** `rewind start --json` in `workdir`, once it says it is ready. */
async function launchStack(workdir: string): Promise<{ stack: ChildProcess; info: StackInfo; output: () => string }> {
  const [port, uiPort] = [await freePort(), await freePort()];
  const env = { ...process.env };
  delete env.REWIND_MANIFEST;
  delete env.TEMPORAL_ADDRESS;
  delete env.DATABASE_URL; // the demo keeps its drift findings in the embedded store
  const stack = spawn(
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
  let stdout = '';
  let stderr = '';
  stack.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  stack.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const line = await eventually(
    () => stdout.split('\n').find((l) => l.startsWith('{')),
    'the stack to be ready',
    120_000,
  );
  return { stack, info: JSON.parse(line) as StackInfo, output: () => stdout + stderr };
}

describe('rewind start (npm start)', () => {
  const workdir = realpathSync(tempDir('rewind-stack-'));
  let stack: ChildProcess;
  let output: () => string;
  let info: StackInfo;

  beforeAll(async () => {
    ({ stack, info, output } = await launchStack(workdir));
  });
  afterAll(async () => {
    // Ctrl-C, as the last test does; a stack that does not stop within 20 s is killed, and its
    // children then stop on their own (their IPC channel to it closes).
    if (stack.exitCode !== null || stack.signalCode !== null) return;
    const exited = new Promise((resolve) => stack.once('exit', resolve));
    stack.kill('SIGINT');
    const timer = setTimeout(() => stack.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }, 30_000);

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

    // Each process serves /metrics where the stack says: the worker counts the run from the
    // store, the agent the restic runs it made, the API its requests.
    expect(info.metrics).toEqual({
      api: 'http://127.0.0.1:8787/metrics',
      worker: 'http://127.0.0.1:9471/metrics',
      'agent production': 'http://127.0.0.1:9472/metrics',
      'agent regression': 'http://127.0.0.1:9473/metrics',
    });
    const scrape = async (url: string) => (await fetch(url)).text();
    expect(await scrape(info.metrics.worker!)).toMatch(
      /^rewind_rollbacks_total\{environment="production",trigger="manual",result="completed"\} 1$/m,
    );
    expect(await scrape(info.metrics['agent production']!)).toMatch(
      /^rewind_tool_duration_seconds_count\{tool="restic",operation="restore",outcome="ok"\} [1-9]/m,
    );
    expect(await scrape(info.metrics.api!)).toMatch(/^process_cpu_seconds_total /m);
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

  it('a second rewind start in the same folder is refused and leaves the running stack whole', async () => {
    const commandOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    const server = processesIn(workdir).find((pid) => /temporal server start-dev/.test(commandOf(pid)));
    expect(server).toBeDefined();
    const before = processesIn(workdir).sort();
    const env = { ...process.env, REWIND_MANIFEST: '', TEMPORAL_ADDRESS: '', DATABASE_URL: '' };
    const ports = [String(await freePort()), String(await freePort())];
    const second = await runCli(['start', '--port', ports[0]!, '--ui-port', ports[1]!], {
      cwd: workdir,
      env,
      timeoutMs: 60_000,
    });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`rewind is already running in this folder (rewind start, pid ${stack.pid}`);
    expect(second.stderr).not.toContain('stopped the Temporal dev server');
    // The first stack's dev server, workers and agents are the same processes, and answer.
    expect(processesIn(workdir).sort()).toEqual(before);
    const connection = await Connection.connect({ address: info.temporalAddress });
    try {
      const client = new Client({ connection });
      await expect(client.workflowService.getSystemInfo({})).resolves.toBeDefined();
    } finally {
      await connection.close();
    }
  });

  it('stops everything on Ctrl-C', async () => {
    expect(processesIn(workdir).length).toBeGreaterThanOrEqual(5); // worker, 2 agents, api, dev server
    stack.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => stack.once('exit', (c) => resolve(c)));
    expect(code).toBe(0);
    expect(output()).not.toMatch(/exited \(.*\); restarting/);
    const [host, port] = info.temporalAddress.split(':');
    await expect(fetch(`http://${host}:${port}`)).rejects.toThrow();
    expect(processesIn(workdir)).toEqual([]);
    // Every log it kept, Temporal's too, is JSON lines, as the shipped Filebeat input reads them.
    const logDir = path.join(workdir, '.data', 'logs');
    const logs = readdirSync(logDir).filter((f) => f.endsWith('.log'));
    expect(logs).toEqual(expect.arrayContaining(['temporal.log', 'worker.log', 'api.log']));
    const lines = logs.flatMap((f) =>
      readFileSync(path.join(logDir, f), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => ({ f, line })),
    );
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.filter(({ line }) => !isJson(line))).toEqual([]);
  });

  const killedDir = realpathSync(tempDir('rewind-stack-killed-'));
  it('killed outright (SIGKILL), it leaves no worker, agent or API behind, and the next start stops the dev server it left', async () => {
    const dir = killedDir;
    const killed = await launchStack(dir);
    const commandOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    const server = processesIn(dir).find((pid) => /temporal server start-dev/.test(commandOf(pid)));
    expect(server).toBeDefined();
    // Its output goes straight to its log, not through rewind start: a write after rewind start
    // is gone cannot end it (SIGPIPE), so what it left is there for the next start to stop.
    expect(readlinkSync(`/proc/${server}/fd/1`)).toBe(path.join(dir, '.data', 'logs', 'temporal.out'));
    expect(readlinkSync(`/proc/${server}/fd/2`)).toBe(path.join(dir, '.data', 'logs', 'temporal.log'));
    killed.stack.kill('SIGKILL');
    try {
      // Each child sees its IPC channel close and stops as on SIGTERM; the Temporal dev server (a
      // Go binary with no such channel) is the one process left, killed here.
      const rest = () =>
        processesIn(dir)
          .filter((pid) => pid !== server)
          .map(commandOf);
      const deadline = Date.now() + 30_000;
      while (rest().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(rest()).toEqual([]);
      await expect(fetch('http://127.0.0.1:8787/healthz')).rejects.toThrow();
      // The next `rewind start` of this folder stops the dev server left behind, then starts.
      expect(existsSync(`/proc/${server}`)).toBe(true);
      const again = await launchStack(dir);
      expect(again.output()).toContain(
        `stopped the Temporal dev server an earlier rewind start left running (pid ${server})`,
      );
      expect(existsSync(`/proc/${server}`)).toBe(false);
      again.stack.kill('SIGINT');
      expect(await new Promise((resolve) => again.stack.once('exit', resolve))).toBe(0);
      expect(processesIn(dir)).toEqual([]);
    } finally {
      for (const pid of processesIn(dir)) process.kill(pid, 'SIGKILL');
    }
  }, 180_000);
});

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}
