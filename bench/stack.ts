// What both benchmarks share: a Temporal dev server, rewind's worker and agent as separate
// processes (as in production), and a rollback approved at once.
//
// REWIND_BENCH_LOGS=DIR keeps the worker's and the agent's logs there; REWIND_BENCH_NODE_ARGS
// passes node flags to them (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { RewindClient } from '../src/client/client';
import type { RollbackRequest, RollbackStatus } from '../src/domain/rollback';
import type { Manifest } from '../src/manifest/schema';
import { ensureSearchAttributes } from '../src/platform/temporal';
import { startDevServer } from '../src/platform/temporal-dev-server';
import type { SnapshotStore } from '../src/snapshots/store';

const CLI = path.resolve(__dirname, '..', 'src', 'client', 'cli.js');

export const say = (text: string) => process.stderr.write(`${text}\n`);
export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export interface BenchStack {
  client: RewindClient;
  /** The Temporal dev server's address, for rewind processes the bench starts itself. */
  address: string;
  /** Starts `rewind <args>` as its own process; the bench fails if it exits before `stop`. */
  launch(args: string[]): ChildProcess;
  stop(): Promise<void>;
}

export async function startBenchStack(args: {
  manifest: Manifest;
  manifestFile: string;
  env: NodeJS.ProcessEnv;
  store?: SnapshotStore;
}): Promise<BenchStack> {
  const server = await startDevServer({ headless: true });
  const connection = await Connection.connect({ address: server.address });
  await ensureSearchAttributes(connection, 'default');
  const env = { ...process.env, ...args.env, TEMPORAL_ADDRESS: server.address, REWIND_MANIFEST: args.manifestFile };
  const children: ChildProcess[] = [];
  let stopping = false;
  // However the bench ends, no worker or agent outlives it to load the next run's machine.
  const killAll = () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  process.once('exit', killAll);
  return {
    client: new RewindClient(new Client({ connection }), args.manifest, args.store),
    address: server.address,
    launch(cli: string[]) {
      const logs = process.env.REWIND_BENCH_LOGS;
      const out = logs ? openSync(path.join(logs, `${cli.join('-')}.log`), 'a') : 'ignore';
      const nodeArgs = (process.env.REWIND_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
      const child = spawn(process.execPath, [...nodeArgs, CLI, ...cli], { env, stdio: ['ignore', out, 'inherit'] });
      children.push(child);
      child.once('exit', (code, signal) => {
        if (!stopping) {
          say(`rewind ${cli.join(' ')} exited (${signal ?? code}) during the benchmark`);
          killAll();
          process.exit(1);
        }
      });
      return child;
    },
    async stop() {
      stopping = true;
      for (const child of children) child.kill('SIGTERM');
      await Promise.all(
        children.map((c) => new Promise((resolve) => (c.exitCode !== null ? resolve(null) : c.once('exit', resolve)))),
      );
      await connection.close();
      await server.stop();
    },
  };
}

/** Starts a rollback, approves it as soon as it asks, and returns its final status (completed, or throws). */
export async function rollbackApprovedAtOnce(
  client: RewindClient,
  request: Pick<RollbackRequest, 'environment' | 'target'> & { acceptDataLoss?: boolean },
): Promise<RollbackStatus> {
  const { workflowId } = await client.startRollback({ ...request, requester: 'alice' });
  await client.waitForRollback(workflowId, (s) => s.state === 'awaiting-approval', {
    timeoutMs: 3_600_000,
    intervalMs: 50,
  });
  await client.decide(workflowId, 'approve', { user: 'bob' });
  const { status } = await client.waitForRollback(workflowId, () => false, { timeoutMs: 3_600_000, intervalMs: 1_000 });
  if (status.state !== 'completed')
    throw new Error(`rollback ${workflowId} ended ${status.state}: ${status.cause ?? ''}`);
  return status;
}
