// npm run bench:rollback: how long execute + verify take against raw restic, on a 2 GB
// directory of 40 files of 50 MB, with the approval given at once. Both sides run in the same
// run, interleaved, because this machine is noisy; medians are reported.
//
//   REWIND_BENCH_FILES=40 REWIND_BENCH_FILE_MB=50 REWIND_BENCH_ROUNDS=3 npm run bench:rollback
// REWIND_BENCH_LOGS and REWIND_BENCH_NODE_ARGS: see bench/stack.ts.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadManifest } from '../src/manifest/load';
import { resolveTool } from '../src/platform/tools';
import { median, rollbackApprovedAtOnce, say, startBenchStack } from './stack';

const FILES = Number(process.env.REWIND_BENCH_FILES ?? 40);
const FILE_MB = Number(process.env.REWIND_BENCH_FILE_MB ?? 50);
const ROUNDS = Number(process.env.REWIND_BENCH_ROUNDS ?? 3);
const PASSWORD = 'bench-password';

const fileName = (i: number) => `model-${String(i).padStart(2, '0')}.pkl`;
const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;

/** Peak resident memory (VmHWM) per process, sampled from /proc while the bench runs. */
class PeakMemory {
  readonly peaks = new Map<number, { name: string; parent: number; kb: number }>();
  private timer?: NodeJS.Timeout;

  start(): void {
    this.timer = setInterval(() => this.sample(), 250);
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  private sample(): void {
    for (const entry of readdirSync('/proc')) {
      const pid = Number(entry);
      if (!Number.isInteger(pid)) continue;
      try {
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        const name = /^Name:\s+(\S+)/m.exec(status)?.[1] ?? '?';
        const kb = Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0);
        const parent = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
        const known = this.peaks.get(pid);
        if (!known || known.kb < kb) this.peaks.set(pid, { name, parent, kb });
      } catch {
        // The process exited between readdir and read.
      }
    }
  }

  of(pid: number): number {
    return this.peaks.get(pid)?.kb ?? 0;
  }

  maxChildNamed(name: string, parents: number[]): number {
    return Math.max(
      0,
      ...[...this.peaks.values()].filter((p) => p.name === name && parents.includes(p.parent)).map((p) => p.kb),
    );
  }
}

function writeRandomFile(file: string): void {
  const chunk = 1 << 20;
  const buffers = Array.from({ length: FILE_MB }, () => randomBytes(chunk));
  writeFileSync(file, Buffer.concat(buffers));
}

function timed(command: string, args: string[], env: NodeJS.ProcessEnv): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr.toString()}`);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function main(): Promise<void> {
  const restic = resolveTool('restic');
  const work = mkdtempSync(path.join(os.tmpdir(), 'rewind-bench-'));
  const data = path.join(work, 'data');
  mkdirSync(data);
  say(`writing ${FILES} files of ${FILE_MB} MB (random, incompressible) under ${data} …`);
  for (let i = 0; i < FILES; i++) writeRandomFile(path.join(data, fileName(i)));

  const manifestFile = path.join(work, 'rewind.yaml');
  writeFileSync(
    manifestFile,
    `repository: { path: ./repo, passwordEnv: REWIND_BENCH_PASSWORD }
dataDir: ./state
approvers: [alice, bob]
policy: { approvalTimeout: 30m, heartbeatTimeout: 30s }
temporal: { taskQueue: bench }
environments:
  production:
    components:
      models: { kind: files, path: ${data}, format: pickle }
`,
  );
  const { manifest } = loadManifest(manifestFile, { checkPaths: 'all' });
  const resticEnv = { RESTIC_REPOSITORY: manifest.repository.path, RESTIC_PASSWORD: PASSWORD };

  const memory = new PeakMemory();
  memory.start();
  const stack = await startBenchStack({ manifest, manifestFile, env: { REWIND_BENCH_PASSWORD: PASSWORD } });
  const { client } = stack;
  try {
    spawnSync(restic, ['init'], { env: { ...process.env, ...resticEnv } });
    const worker = stack.launch(['worker']);
    const agent = stack.launch(['agent', '--env', 'production']);

    say('snapshot v1 (the rollback target) …');
    const v1 = await client.snapshotResult(
      (await client.startSnapshot({ environment: 'production', version: 'v1', requester: 'bench' })).workflowId,
    );
    const v1Snapshot = v1.components.models!.snapshotId;

    const rollback = async (): Promise<{ execute: number; verify: number; bytes: number }> => {
      const status = await rollbackApprovedAtOnce(client, {
        environment: 'production',
        target: { kind: 'version', version: 'v1' },
      });
      return {
        execute: status.phases.execute!.durationMs!,
        verify: status.phases.verify!.durationMs!,
        bytes: status.steps.models!.outcome!.bytesWritten,
      };
    };
    const rawRestore = (includes: string[]): number => {
      const target = path.join(work, 'raw-restore');
      rmSync(target, { recursive: true, force: true });
      const ms = timed(
        restic,
        ['restore', v1Snapshot, '--target', target, ...includes.flatMap((f) => ['--include', `/${f}`])],
        resticEnv,
      );
      rmSync(target, { recursive: true, force: true });
      return ms;
    };

    const scenarios = [
      { name: 'one file changed', changed: [7], goal: 0.25, baseline: 'full restic restore of the directory' },
      {
        name: 'half the files changed',
        changed: Array.from({ length: FILES / 2 }, (_, i) => i * 2),
        goal: 1.5,
        baseline: 'restic restore of those files',
      },
    ];
    const results = [];
    for (const scenario of scenarios) {
      const rewindMs: number[] = [];
      const splits: string[] = [];
      const rawMs: number[] = [];
      let bytes = 0;
      for (let round = 1; round <= ROUNDS; round++) {
        say(`${scenario.name}: round ${round}/${ROUNDS}`);
        rawMs.push(rawRestore(scenario.goal < 1 ? [] : scenario.changed.map(fileName)));
        for (const i of scenario.changed) writeRandomFile(path.join(data, fileName(i)));
        const r = await rollback();
        rewindMs.push(r.execute + r.verify);
        splits.push(`${r.execute}+${r.verify}`);
        bytes = r.bytes;
        await sleep(200);
      }
      results.push({ ...scenario, rewind: median(rewindMs), raw: median(rawMs), rewindMs, splits, rawMs, bytes });
    }
    memory.stop();

    const rewindPeak = Math.max(memory.of(worker.pid!), memory.of(agent.pid!));
    const resticPeak = memory.maxChildNamed('restic', [agent.pid!]);
    const lines = [
      `rewind rollback benchmark: ${FILES} files x ${FILE_MB} MB = ${((FILES * FILE_MB) / 1024).toFixed(1)} GiB, ${ROUNDS} rounds, medians`,
      ...results.map((r) => {
        const ratio = r.rewind / r.raw;
        const ok = ratio < r.goal ? 'PASS' : 'FAIL';
        return `  ${r.name.padEnd(24)} execute+verify ${(r.rewind / 1000).toFixed(2)} s  vs  ${r.baseline} ${(r.raw / 1000).toFixed(2)} s  = ${(ratio * 100).toFixed(0)}%  (goal < ${(r.goal * 100).toFixed(0)}%: ${ok}; ${(r.bytes / 2 ** 20).toFixed(0)} MiB written)`;
      }),
      `  peak RSS of rewind's processes: worker ${mb(memory.of(worker.pid!))}, agent ${mb(memory.of(agent.pid!))} (goal < 300 MB: ${rewindPeak < 300 * 1024 ? 'PASS' : 'FAIL'})`,
      `  peak RSS of restic run by the agent: ${mb(resticPeak)}`,
      `  samples (ms): ${results.map((r) => `${r.name}: rewind execute+verify [${r.splits.join(', ')}] raw [${r.rawMs.map(Math.round).join(', ')}]`).join('; ')}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await stack.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
