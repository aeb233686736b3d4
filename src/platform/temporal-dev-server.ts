// Runs `temporal server start-dev`: the Temporal server with SQLite persistence and the Web UI,
// used by `rewind start` and by the test suite.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { resolveTool } from './tools';

export interface DevServerOptions {
  binary?: string;
  ip?: string;
  port?: number;
  /** Web UI port; ignored when headless. */
  uiPort?: number;
  headless?: boolean;
  /** SQLite file that keeps workflows across restarts; in memory when unset. */
  dbFile?: string;
  namespaces?: string[];
  /**
   * Where the server writes its output, straight to the file: a server started by `rewind start`
   * must not depend on that process to read its output (through a pipe, a write after the parent
   * was killed ends the server with SIGPIPE). Its log (stderr, JSON lines) goes there, its
   * stdout banner beside it (`temporal.out` for `temporal.log`). Without it, the output is kept
   * in memory.
   */
  logFile?: string;
  startTimeoutMs?: number;
}

export interface DevServer {
  address: string;
  uiUrl?: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function freePort(ip = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, ip, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** A port someone else holds; the message names the port and, where `ss` can tell, the process. */
export class PortInUseError extends Error {
  override name = 'PortInUseError';
}

/**
 * Refuses a port that is already bound. Without this, a dev server that cannot bind dies while
 * the readiness check below happily talks to whatever else answers there (another rewind's
 * server), and the workers would attach to it.
 */
export async function refuseBusyPort(ip: string, port: number, flag: string): Promise<void> {
  const free = await new Promise<boolean>((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, ip, () => probe.close(() => resolve(true)));
  });
  if (free) return;
  const holder = portHolder(port);
  throw new PortInUseError(
    `port ${port} on ${ip} is in use${holder ? ` by ${holder}` : ''}; is rewind already running? Stop it, or choose another ${flag}`,
  );
}

/** "temporal (pid 1234)" from `ss`, or undefined where it cannot tell. */
function portHolder(port: number): string | undefined {
  const result = spawnSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8', timeout: 5_000 });
  const match = /users:\(\("([^"]+)",pid=(\d+)/.exec(result.stdout ?? '');
  return match ? `${match[1]} (pid ${match[2]})` : undefined;
}

export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  const ip = options.ip ?? '127.0.0.1';
  const port = options.port ?? (await freePort(ip));
  const uiPort = options.headless ? undefined : (options.uiPort ?? (await freePort(ip)));
  await refuseBusyPort(ip, port, '--port');
  if (uiPort !== undefined) await refuseBusyPort(ip, uiPort, '--ui-port');
  // JSON lines, as every rewind process writes: the shipped Filebeat input reads the log folder as NDJSON.
  const args = [
    'server',
    'start-dev',
    '--ip',
    ip,
    '--port',
    String(port),
    '--log-level',
    'warn',
    '--log-format',
    'json',
  ];
  if (uiPort !== undefined) args.push('--ui-port', String(uiPort), '--ui-ip', ip);
  else args.push('--headless');
  if (options.dbFile) args.push('--db-filename', options.dbFile);
  for (const ns of options.namespaces ?? []) args.push('--namespace', ns);

  let kept = '';
  let child: ChildProcess;
  let output: () => string;
  if (options.logFile) {
    // Its log (JSON lines) is on stderr; stdout has only a banner (versions, addresses), kept
    // beside it as text so that the log folder's *.log files stay JSON.
    const logFile = options.logFile;
    const bannerFile = logFile.replace(/(\.log)?$/, '.out');
    const [out, err] = [openSync(bannerFile, 'a'), openSync(logFile, 'a')];
    try {
      child = spawn(options.binary ?? resolveTool('temporal'), args, { stdio: ['ignore', out, err] });
    } finally {
      closeSync(out);
      closeSync(err);
    }
    output = () => `${readFileSync(bannerFile, 'utf8')}${readFileSync(logFile, 'utf8')}`;
  } else {
    child = spawn(options.binary ?? resolveTool('temporal'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => {
      if (kept.length < 32 * 1024) kept += chunk.toString('utf8');
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    output = () => kept;
  }
  let exited = false;
  child.once('exit', () => (exited = true));

  const address = `${ip}:${port}`;
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) throw new Error(`temporal server start-dev exited at once:\n${output().slice(-2000)}`);
    try {
      const connection = await Connection.connect({ address, connectTimeout: '1s' });
      await connection.workflowService.getSystemInfo({});
      await connection.close();
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(
          `temporal server start-dev did not answer on ${address} within the deadline: ${String(err)}\n${output().slice(-2000)}`,
        );
      }
      await sleep(250);
    }
  }

  return {
    address,
    ...(uiPort !== undefined ? { uiUrl: `http://${ip === '0.0.0.0' ? 'localhost' : ip}:${uiPort}` } : {}),
    process: child,
    stop: () => stopProcess(child),
  };
}

/** SIGTERM, then SIGKILL if the process has not exited after `graceMs`. */
export async function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
