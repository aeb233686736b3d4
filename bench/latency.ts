// npm run bench:latency: time to safety. On the demo that `rewind start` writes (production:
// config and model files), one config file is changed and the environment is rolled back to
// v1 with the approval given at once. Reported per round and as medians:
//   - `rewind rollback start` as an operator runs it (a new process), until it prints the plan
//     awaiting approval;
//   - the run's decide, prepare, execute and verify phases and their sum (all but the human wait);
//   - beside them, in the same run, one raw `restic restore` of that file from the v1 snapshot.
//
//   REWIND_BENCH_ROUNDS=7 REWIND_BENCH_WARMUP=1 npm run bench:latency   (the defaults)
// REWIND_BENCH_TRACE=1 prints when each activity of each run was scheduled, started and completed.
// REWIND_BENCH_LOGS and REWIND_BENCH_NODE_ARGS: see bench/stack.ts.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Phase, RollbackStatus } from '../src/domain/rollback';
import { loadManifest, repositoryPassword } from '../src/manifest/load';
import { resolveTool } from '../src/platform/tools';
import { openSnapshotStore } from '../src/snapshots/open';
import { writeDemo } from '../src/workers/demo';
import { median, say, startBenchStack, type BenchStack } from './stack';

const ROUNDS = Number(process.env.REWIND_BENCH_ROUNDS ?? 7);
/** Rounds run first and left out of the medians: the first rollback after start-up warms caches and the JIT. */
const WARMUP = Number(process.env.REWIND_BENCH_WARMUP ?? 1);
const CLI = path.resolve(__dirname, '..', 'src', 'client', 'cli.js');
const PHASES: Phase[] = ['decide', 'prepare', 'execute', 'verify'];
const GOAL_SUM_MS = 2_000;
const GOAL_START_MS = 1_500;

const ms = (n: number) => `${(n / 1000).toFixed(2)} s`;

function timedRun(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ ms: number; stdout: string; stderr: string }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('close', (code) => {
      const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0)
        reject(new Error(`${path.basename(command)} ${args.join(' ')} failed: ${Buffer.concat(err).toString('utf8')}`));
      else
        resolve({
          ms: elapsed,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        });
    });
  });
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'rewind-latency-'));
  const manifestFile = path.join(work, 'rewind.yaml');
  await writeDemo(manifestFile);
  const { manifest } = loadManifest(manifestFile, { checkPaths: 'all' });
  const configDir = manifest.environments.production!.components.config! as { path: string };
  const appFile = path.join(configDir.path, 'app.yaml');
  const original = readFileSync(appFile, 'utf8');
  const store = openSnapshotStore(manifest);
  await store.restic.ensureInitialized();

  const stack = await startBenchStack({ manifest, manifestFile, env: {}, store });
  const { client } = stack;
  const cliEnv = { ...process.env, REWIND_MANIFEST: manifestFile, TEMPORAL_ADDRESS: stack.address };
  const resticEnv = {
    ...process.env,
    RESTIC_REPOSITORY: manifest.repository.path,
    RESTIC_PASSWORD: repositoryPassword(manifest, process.env),
  };
  try {
    stack.launch(['worker']);
    stack.launch(['agent', '--env', 'production']);
    say('snapshot v1 of production (the rollback target) …');
    const v1 = await client.snapshotResult(
      (await client.startSnapshot({ environment: 'production', version: 'v1', requester: 'bench' })).workflowId,
    );
    const v1Config = v1.components.config!.snapshotId;

    const rows: { start: number; phases: Record<string, number>; sum: number; raw: number }[] = [];
    for (let round = 1 - WARMUP; round <= ROUNDS; round++) {
      // A change no snapshot holds yet, so the safety snapshot has something new to store.
      writeFileSync(appFile, original.replace('replicas: 3', `replicas: 5\n# round ${round} ${randomUUID()}`));

      const raw = path.join(work, 'raw-restore');
      const started = await timedRun(
        process.execPath,
        [CLI, 'rollback', 'start', '--env', 'production', '--to-version', 'v1', '--as', 'alice', '--json'],
        cliEnv,
      );
      if (process.env.REWIND_BENCH_TRACE) say(started.stderr);
      const { workflowId, state } = JSON.parse(started.stdout) as { workflowId: string; state: string };
      if (state !== 'awaiting-approval') throw new Error(`${workflowId} is ${state}, not awaiting approval`);
      await client.decide(workflowId, 'approve', { user: 'bob' });
      const { status } = await client.waitForRollback(workflowId, () => false, { timeoutMs: 600_000, intervalMs: 100 });
      if (status.state !== 'completed') throw new Error(`${workflowId} ended ${status.state}: ${status.cause ?? ''}`);
      if (readFileSync(appFile, 'utf8') !== original) throw new Error(`${appFile} is not back at v1`);

      const rawTimed = await timedRun(
        resolveTool('restic'),
        ['restore', v1Config, '--target', raw, '--include', '/app.yaml'],
        resticEnv,
      );
      rmSync(raw, { recursive: true, force: true });
      if (process.env.REWIND_BENCH_TRACE) await traceActivities(stack, workflowId);
      const phases = phaseDurations(status);
      const sum = PHASES.reduce((total, p) => total + phases[p]!, 0);
      if (round > 0) rows.push({ start: started.ms, phases, sum, raw: rawTimed.ms });
      say(
        `${round > 0 ? `round ${round}` : 'warm-up (not counted)'}: start → awaiting approval ${ms(started.ms)}; ${PHASES.map((p) => `${p} ${ms(phases[p]!)}`).join(', ')}; sum ${ms(sum)}; raw restic restore ${ms(rawTimed.ms)}`,
      );
    }

    const start = median(rows.map((r) => r.start));
    const sum = median(rows.map((r) => r.sum));
    const raw = median(rows.map((r) => r.raw));
    const lines = [
      `rewind latency benchmark: the demo's production, one config file changed, rolled back to v1, ${ROUNDS} rounds after ${WARMUP} warm-up, medians`,
      `  ${PHASES.map((p) => `${p} ${ms(median(rows.map((r) => r.phases[p]!)))}`).join(', ')}`,
      `  sum of the four phases ${ms(sum)}  (goal < ${ms(GOAL_SUM_MS)}: ${sum < GOAL_SUM_MS ? 'PASS' : 'FAIL'})`,
      `  rollback start → awaiting approval ${ms(start)}  (goal < ${ms(GOAL_START_MS)}: ${start < GOAL_START_MS ? 'PASS' : 'FAIL'})`,
      `  raw restic restore of the file ${ms(raw)}`,
      `  samples (ms): start [${rows.map((r) => r.start.toFixed(0)).join(', ')}], sum [${rows.map((r) => r.sum.toFixed(0)).join(', ')}], raw [${rows.map((r) => r.raw.toFixed(0)).join(', ')}]`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await stack.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/** REWIND_BENCH_TRACE=1: when each activity of the run was scheduled, started and completed. */
async function traceActivities(stack: BenchStack, workflowId: string): Promise<void> {
  const history = await stack.client.client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const t0 = Number(events[0]?.eventTime?.seconds ?? 0) * 1000 + (events[0]?.eventTime?.nanos ?? 0) / 1e6;
  const names = new Map<string, string>();
  for (const e of events) {
    const at = Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6 - t0;
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) names.set(String(e.eventId), `${scheduled.activityType?.name ?? '?'} ${scheduled.activityId ?? ''}`);
    const started = e.activityTaskStartedEventAttributes;
    const completed = e.activityTaskCompletedEventAttributes;
    const id = String(scheduled ? e.eventId : (started?.scheduledEventId ?? completed?.scheduledEventId ?? ''));
    const what = scheduled ? 'scheduled' : started ? 'started' : completed ? 'completed' : undefined;
    if (what) say(`  ${at.toFixed(0).padStart(6)} ms ${what.padEnd(9)} ${names.get(id) ?? id}`);
  }
}

function phaseDurations(status: RollbackStatus): Record<string, number> {
  return Object.fromEntries(PHASES.map((p) => [p, status.phases[p]?.durationMs ?? NaN]));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
