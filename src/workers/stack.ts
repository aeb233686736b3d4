// `rewind start`: the whole system on one machine. The Temporal dev server (SQLite under the
// data folder, Web UI), the control worker and one agent per environment, each its own process,
// as they would be on separate hosts. Ctrl-C stops them all, workers first.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { applySchedules } from '../client/schedules';
import { temporal } from '@temporalio/proto';
import { componentFolders } from '../components/registry';
import { loadManifest, type LoadedManifest } from '../manifest/load';
import { envTaskQueue, type Manifest } from '../manifest/schema';
import { hostsAmong, hostTaskQueue } from '../domain/hosts';
import {
  PortInUseError,
  refuseBusyPort,
  startDevServer,
  stopProcess,
  type DevServer,
} from '../platform/temporal-dev-server';
import { listenAddress } from '../manifest/fields';
import { resolveTool } from '../platform/tools';
import { openSnapshotStore } from '../snapshots/open';
import { writeDemo } from './demo';

export interface StackOptions {
  manifestFile: string;
  /** Write the demo manifest when `manifestFile` does not exist. */
  writeDemoIfMissing: boolean;
  ip: string;
  port: number;
  uiPort: number;
  headless: boolean;
  json: boolean;
}

interface ChildSpec {
  name: string;
  args: string[];
  child?: ChildProcess;
  restarts: number[];
}

export async function runStack(options: StackOptions): Promise<void> {
  const say = (text: string) => {
    if (!options.json) process.stdout.write(`${text}\n`);
  };
  resolveTool('temporal');
  resolveTool('restic');

  if (!existsSync(options.manifestFile)) {
    if (!options.writeDemoIfMissing) throw new Error(`manifest ${options.manifestFile} does not exist`);
    await writeDemo(options.manifestFile);
    say(
      `wrote a demo manifest to ${options.manifestFile} (production and regression, config and pickle files under .data/demo)`,
    );
  }
  const loaded = loadManifest(options.manifestFile, { checkPaths: 'all' });
  const { manifest } = loaded;
  // Created here, once, before the agents start.
  await openSnapshotStore(manifest).restic.ensureInitialized();
  const logDir = path.join(manifest.dataDir, 'logs');
  mkdirSync(logDir, { recursive: true });

  const dbFile = path.join(manifest.dataDir, 'temporal.db');
  const pidFile = path.join(manifest.dataDir, 'temporal.pid');
  const leftover = await stopLeftoverDevServer(pidFile, dbFile);
  if (leftover)
    process.stderr.write(`stopped the Temporal dev server an earlier rewind start left running (pid ${leftover})\n`);
  // The API and the metrics endpoints too: a child that cannot bind would be restarted forever.
  for (const [listen, key] of listenersOf(manifest)) {
    const { host, port } = listenAddress(listen, key);
    try {
      await refuseBusyPort(host, port, `${key} in the manifest`);
    } catch (err) {
      if (err instanceof PortInUseError)
        throw new Error(`cannot start the ${key === 'api.listen' ? 'API' : key}: ${err.message}`);
      throw err;
    }
  }
  say(`starting the Temporal dev server on ${options.ip}:${options.port} …`);
  let server: DevServer;
  try {
    server = await startDevServer({
      ip: options.ip,
      port: options.port,
      uiPort: options.uiPort,
      headless: options.headless,
      dbFile,
      namespaces: [manifest.temporal.namespace],
      logFile: path.join(logDir, 'temporal.log'),
    });
  } catch (err) {
    if (err instanceof PortInUseError) throw new Error(`could not start the Temporal dev server: ${err.message}`);
    const ports = options.headless ? `port ${options.port}` : `port ${options.port} or ${options.uiPort}`;
    const detail = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(
      `could not start the Temporal dev server (is ${ports} taken? is rewind already running?): ${detail}`,
    );
  }

  // The workers, agents and API stop with this process however it ends (their IPC channel);
  // the dev server cannot watch one, so the next `rewind start` finds it by this file.
  if (server.process.pid !== undefined) writeFileSync(pidFile, `${server.process.pid}\n`);
  const childEnv = { ...process.env, TEMPORAL_ADDRESS: server.address, REWIND_MANIFEST: loaded.file };
  const specs: ChildSpec[] = [
    { name: 'worker', args: ['worker'], restarts: [] },
    ...Object.keys(manifest.environments).map((env) => ({
      name: `agent-${env}`,
      args: ['agent', '--env', env],
      restarts: [],
    })),
    // On one machine, every host's agent runs here too.
    ...Object.entries(manifest.environments).flatMap(([env, e]) =>
      hostsAmong(Object.keys(e.components)).map((host) => ({
        name: `agent-${env}-${host}`,
        args: ['agent', '--env', env, '--host', host],
        restarts: [],
      })),
    ),
    { name: 'api', args: ['api'], restarts: [] },
  ];
  let stopping = false;

  const launch = (spec: ChildSpec) => {
    const log = createWriteStream(path.join(logDir, `${spec.name}.log`), { flags: 'a' });
    // execArgv carries loaders (e.g. tsx when run from sources) to the children.
    const child = spawn(process.execPath, [...process.execArgv, require.resolve('../client/cli'), ...spec.args], {
      env: childEnv,
      // The IPC channel is only a lifeline: the child stops when it closes (src/client/cli.ts).
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    spec.child = child;
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    // Logs go to the file; the console gets warnings, errors and anything a process prints raw.
    child.stdout?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        const entry = parseLogLine(line);
        if (!entry || entry.level >= 40)
          process.stderr.write(`[${spec.name}] ${entry ? `${entry.levelName}: ${entry.msg}` : line}\n`);
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean))
        process.stderr.write(`[${spec.name}] ${line}\n`);
    });
    child.once('exit', (code, signal) => {
      log.end();
      if (stopping) return;
      const now = Date.now();
      spec.restarts = [...spec.restarts.filter((t) => now - t < 60_000), now];
      if (spec.restarts.length > 5) {
        process.stderr.write(
          `[${spec.name}] exited (${signal ?? code}) 5 times within a minute; not restarting it. See ${logDir}/${spec.name}.log\n`,
        );
        return;
      }
      process.stderr.write(`[${spec.name}] exited (${signal ?? code}); restarting it\n`);
      setTimeout(() => {
        if (!stopping) launch(spec);
      }, 1_000);
    });
  };
  specs.forEach(launch);

  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    say('\nstopping workers and agents …');
    await Promise.all(specs.map((s) => (s.child ? stopProcess(s.child, 15_000) : Promise.resolve())));
    say('stopping the Temporal dev server …');
    await server.stop();
    rmSync(pidFile, { force: true });
    say('stopped.');
  };
  const stopped = new Promise<void>((resolve) => {
    const onSignal = () => void stopAll().then(resolve);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });

  try {
    await waitForPollers(server.address, manifest.temporal.namespace, [
      manifest.temporal.taskQueue,
      ...Object.keys(manifest.environments).map((env) => envTaskQueue(manifest, env)),
      ...Object.entries(manifest.environments).flatMap(([env, e]) =>
        hostsAmong(Object.keys(e.components)).map((host) => hostTaskQueue(envTaskQueue(manifest, env), host)),
      ),
    ]);
  } catch (err) {
    await stopAll();
    throw err;
  }
  const schedules = await applyDriftSchedules(server.address, loaded);

  if (options.json) {
    process.stdout.write(
      JSON.stringify({
        temporalAddress: server.address,
        webUi: server.uiUrl ?? null,
        manifest: loaded.file,
        logs: logDir,
        environments: Object.keys(manifest.environments),
        driftSchedules: schedules,
        api: `http://${manifest.api.listen}`,
        metrics: metricsUrls(manifest),
      }) + '\n',
    );
  } else {
    say(banner(loaded, server, logDir, schedules));
  }
  await stopped;
}

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/** A log line of a child (ECS JSON, src/platform/logger.ts) as the console shows it. */
function parseLogLine(line: string): { level: number; levelName: string; msg: string } | undefined {
  try {
    const entry = JSON.parse(line) as {
      'log.level'?: string;
      message?: string;
      workflowId?: string;
      activityType?: string;
      error?: { message?: string };
    };
    const level = LEVELS[entry['log.level'] ?? ''];
    if (level === undefined) return undefined;
    const levelName = level >= 50 ? 'error' : level >= 40 ? 'warning' : 'info';
    const context = [entry.workflowId, entry.activityType].filter(Boolean).join(' ');
    const msg = [entry.message ?? line, context && `(${context})`, entry.error?.message && `: ${entry.error.message}`]
      .filter(Boolean)
      .join(' ');
    return { level, levelName, msg };
  } catch {
    return undefined;
  }
}

async function waitForPollers(address: string, namespace: string, queues: string[], timeoutMs = 90_000): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const deadline = Date.now() + timeoutMs;
    for (const queue of queues) {
      for (;;) {
        const response = await connection.workflowService.describeTaskQueue({
          namespace,
          taskQueue: { name: queue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
          taskQueueType: queue.includes('-env-')
            ? temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
            : temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        });
        if ((response.pollers ?? []).length > 0) break;
        if (Date.now() > deadline) throw new Error(`no worker polls task queue ${queue} yet; see the logs`);
        await sleep(300);
      }
    }
  } finally {
    await connection.close();
  }
}

/**
 * The manifest's drift pairs get their hourly Schedules here, as `rewind schedules apply` would
 * make them; a failure is reported, not fatal: rollbacks do not need them.
 */
async function applyDriftSchedules(address: string, loaded: LoadedManifest): Promise<string[]> {
  const connection = await Connection.connect({ address });
  try {
    const client = new Client({ connection, namespace: loaded.manifest.temporal.namespace });
    const changes = await applySchedules(client, loaded.manifest);
    return changes
      .filter((c) => c.change !== 'deleted' && c.kind === 'drift')
      .map((c) => `${c.from} → ${c.to} every ${c.every}`);
  } catch (err) {
    process.stderr.write(
      `warning: could not apply the drift scan schedules: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    return [];
  } finally {
    await connection.close();
  }
}

/** What the stack's children listen on, with the manifest key that sets each. */
function listenersOf(manifest: Manifest): [string, string][] {
  return [
    [manifest.api.listen, 'api.listen'],
    ...(manifest.metrics.worker ? [[manifest.metrics.worker, 'metrics.worker'] as [string, string]] : []),
    ...Object.entries(manifest.metrics.agents).map(([env, at]): [string, string] => [at, `metrics.agents.${env}`]),
  ];
}

function banner(loaded: LoadedManifest, server: DevServer, logDir: string, schedules: string[]): string {
  const envs = Object.keys(loaded.manifest.environments);
  const env = envs.includes('production') ? 'production' : envs[0]!;
  // The demo's config file, or any component folder's app.yaml, makes a change to try.
  const changeMe = Object.values(loaded.manifest.environments[env]!.components)
    .flatMap((c) => componentFolders(c).map((f) => path.join(f.dir, 'app.yaml')))
    .find((file) => existsSync(file));
  const relative = (p: string) => path.relative(process.cwd(), p) || '.';
  const ui = loaded.manifest.temporal.namespace;
  return [
    '',
    'rewind is running.',
    `  Temporal:   ${server.address}${server.uiUrl ? `   Web UI: ${server.uiUrl}` : ''}`,
    `  Manifest:   ${relative(loaded.file)}   environments: ${envs.join(', ')}`,
    `  Logs:       ${relative(logDir)}/`,
    ...(schedules.length ? [`  Drift:      scans ${schedules.join(', ')} (rewind drift scan --wait for one now)`] : []),
    `  API:        http://${loaded.manifest.api.listen}   (tokens: rewind tokens create --principal NAME)`,
    `  Metrics:    ${Object.values(metricsUrls(loaded.manifest)).join('  ')}`,
    '',
    'Try, in another shell (the README walks through it):',
    // Another address than the CLI's default: the commands must be told.
    ...(server.address !== 'localhost:7233' && server.address !== '127.0.0.1:7233'
      ? [`  export TEMPORAL_ADDRESS=${server.address}`]
      : []),
    `  npx rewind snapshot create --env ${env} --version v1 --wait`,
    ...(changeMe ? [`  echo "changed: true" >> ${relative(changeMe)}`] : []),
    `  npx rewind rollback start --env ${env} --to-version v1 --as alice`,
    '  npx rewind rollback approve <workflow id> --as bob',
    '  npx rewind rollback status <workflow id> --watch',
    ...(server.uiUrl ? [`Then find the run in the Web UI: ${server.uiUrl}/namespaces/${ui}/workflows`] : []),
    '',
    'Press Ctrl-C to stop.',
  ].join('\n');
}

/**
 * The dev server an earlier `rewind start` of this data folder left running when it was killed
 * outright (SIGKILL, a closed terminal): stopped, so that two servers never share one SQLite
 * file. Only a process that is still that server (its command line names this file) is touched.
 * Returns its pid when it stopped one. Linux only (/proc); elsewhere a busy port is reported as before.
 */
async function stopLeftoverDevServer(pidFile: string, dbFile: string): Promise<number | undefined> {
  let pid: number;
  let command: string;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
    command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined; // no file, or the process is gone
  }
  if (!Number.isInteger(pid) || pid <= 1 || !command.includes('start-dev') || !command.includes(dbFile))
    return undefined;
  // The `rewind start` that launched it stays its parent for as long as it lives (a killed one's
  // server is handed to init): a server whose parent is a running start belongs to a stack that
  // is up, and stopping it would take that stack's Temporal away from under it.
  const owner = parentOf(pid);
  if (owner !== undefined && owner !== process.pid && isRewindStart(owner))
    throw new Error(
      `rewind is already running in this folder (rewind start, pid ${owner}, with its Temporal dev server, pid ${pid}); stop it (Ctrl-C) before starting it again, or use another folder (another dataDir)`,
    );
  const alive = () => existsSync(`/proc/${pid}`) && !/^\S+ \(.*\) Z/.test(readStat(pid));
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && alive(); i++) await sleep(100);
  if (alive()) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 50 && alive(); i++) await sleep(100);
  rmSync(pidFile, { force: true });
  return pid;
}

function parentOf(pid: number): number | undefined {
  // The command may hold spaces and parentheses: the fields after its closing one are fixed.
  const ppid = Number(readStat(pid).split(') ').at(-1)?.split(' ')[1]);
  return Number.isInteger(ppid) && ppid > 1 ? ppid : undefined;
}

/** `node …/cli.js start …`, `node …/cli.ts start …` (tsx) or an installed `rewind start …`. */
function isRewindStart(pid: number): boolean {
  let args: string[];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return false;
  }
  const cli = args.findIndex((a) => /(^|\/)(cli\.[jt]s|rewind)$/.test(a));
  return cli >= 0 && args.slice(cli + 1).includes('start');
}

function readStat(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return '';
  }
}

/** Where each process of the stack serves /metrics, by process. */
function metricsUrls(manifest: Manifest): Record<string, string> {
  return {
    api: `http://${manifest.api.listen}/metrics`,
    ...(manifest.metrics.worker ? { worker: `http://${manifest.metrics.worker}/metrics` } : {}),
    ...Object.fromEntries(
      Object.entries(manifest.metrics.agents).map(([env, at]) => [`agent ${env}`, `http://${at}/metrics`]),
    ),
  };
}
