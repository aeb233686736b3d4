// npm run bench:switch: a blue/green rollback under load. A real nginx (Debian's) proxies to two
// colours of a tiny HTTP app; rewind's worker and agents run as separate processes against a
// Temporal dev server. Both ways of switching are measured, each in its own environment and
// nginx: without reload (a marker file nginx tests per request) and by reload (the upstream
// include rewritten, nginx -t, nginx -s reload). Each round runs the same load twice, side by side:
//   - baseline: autocannon for DURATION seconds, no switch;
//   - switch: the same load, and after 1.5 s a rollback from v2 (green) to v1 (blue), approved
//     at once; the switch window is the rollback's app step (start of the step to traffic
//     confirmed on v1: it includes the idle colour's health check).
// Reported: the request rate in the window, the maximum and p99 latency of responses that
// completed in it against the baseline's over the same stretch of its run, and failed requests
// (errors, timeouts and non-2xx; the goal is 0).
//
//   REWIND_BENCH_ROUNDS=3 REWIND_BENCH_DURATION=8 REWIND_BENCH_CONNECTIONS=16 npm run bench:switch
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { stringify } from 'yaml';
import { loadManifest } from '../src/manifest/load';
import { openSnapshotStore } from '../src/snapshots/open';
import { blueGreenComponent, startAppStack, type AppStack, type SwitchMode } from './app-stack';
import { median, rollbackApprovedAtOnce, say, startBenchStack } from './stack';

const ROUNDS = Number(process.env.REWIND_BENCH_ROUNDS ?? 3);
const DURATION_S = Number(process.env.REWIND_BENCH_DURATION ?? 8);
const CONNECTIONS = Number(process.env.REWIND_BENCH_CONNECTIONS ?? 16);
const SWITCH_AFTER_MS = 1_500;
const PASSWORD = 'bench-repository-password';

interface Sample {
  at: number;
  ms: number;
}

interface LoadResult {
  samples: Sample[];
  started: number;
  total: number;
  failed: number;
  /** What failed: connection errors, timeouts, non-2xx answers. */
  kinds: string;
}

function load(url: string): { done: Promise<LoadResult>; started: number } {
  const samples: Sample[] = [];
  const started = Date.now();
  const done = new Promise<LoadResult>((resolve, reject) => {
    const instance = autocannon(
      { url, connections: CONNECTIONS, pipelining: 1, duration: DURATION_S, timeout: 10 },
      (err, r) =>
        err
          ? reject(err instanceof Error ? err : new Error(String(err)))
          : resolve({
              samples,
              started,
              total: r.requests.total,
              failed: r.errors + r.timeouts + r.non2xx,
              kinds: `${r.errors} errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx`,
            }),
    );
    instance.on('response', (_client, _status, _bytes, ms) => samples.push({ at: Date.now(), ms }));
    instance.on('reqError', (err) => say(`request error at ${new Date().toISOString()}: ${err.message}`));
  });
  return { done, started };
}

function window(samples: Sample[], from: number, to: number) {
  const inside = samples.filter((s) => s.at >= from && s.at <= to).map((s) => s.ms);
  const sorted = inside.sort((a, b) => a - b);
  const p99 = sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)]! : 0;
  return {
    count: sorted.length,
    rate: sorted.length / Math.max(0.001, (to - from) / 1000),
    p99,
    max: sorted.at(-1) ?? 0,
  };
}

async function deployV2(stack: AppStack) {
  await stack.startRelease('green', 'v2');
  await stack.activate('green', 'v2');
}

type Row = {
  switchRate: number;
  baseRate: number;
  switchP99: number;
  baseP99: number;
  switchMax: number;
  baseMax: number;
  switchFailed: number;
  baseFailed: number;
  windowMs: number;
  total: number;
  baseTotal: number;
};

/** The two ways nginx-blue-green switches, each in an environment of its own. */
const MODES: { environment: string; mode: SwitchMode; label: string }[] = [
  { environment: 'marker', mode: 'marker', label: 'switch without reload (blueGreen.marker)' },
  { environment: 'reload', mode: 'reload', label: 'switch by reload (blueGreen.upstreamFile)' },
];

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rewind-bench-switch-'));
  const stacks: Record<string, AppStack> = {};
  for (const m of MODES) stacks[m.environment] = await startAppStack(path.join(dir, `nginx-${m.mode}`), m.mode);
  const manifestFile = path.join(dir, 'rewind.yaml');
  writeFileSync(
    manifestFile,
    stringify({
      repository: { path: './repo', passwordEnv: 'REWIND_REPOSITORY_PASSWORD' },
      dataDir: './data',
      approvers: ['alice', 'bob'],
      environments: Object.fromEntries(
        MODES.map((m) => [
          m.environment,
          {
            allowSelfApproval: true,
            components: {
              app: blueGreenComponent(stacks[m.environment]!, {
                health: { path: '/healthz', successes: 3, interval: '50ms' },
              }),
            },
          },
        ]),
      ),
    }),
  );
  const env = { REWIND_REPOSITORY_PASSWORD: PASSWORD, REWIND_LOG_LEVEL: 'warn' };
  Object.assign(process.env, env);
  const { manifest } = loadManifest(manifestFile);
  const store = openSnapshotStore(manifest);
  const bench = await startBenchStack({ manifest, manifestFile, env, store });
  const report: string[] = [
    `rewind switch benchmark: nginx blue/green, ${CONNECTIONS} keep-alive connections, ${DURATION_S} s of load per run, ${ROUNDS} round(s) per mode, medians`,
  ];
  let failedWithoutReload = 0;
  try {
    bench.launch(['worker']);
    for (const m of MODES) bench.launch(['agent', '--env', m.environment]);
    for (const m of MODES) {
      const stack = stacks[m.environment]!;
      await stack.startRelease('blue', 'v1');
      await stack.activate('blue', 'v1');
      const handle = await bench.client.startSnapshot({
        environment: m.environment,
        requester: 'bench',
        version: 'v1',
      });
      await bench.client.snapshotResult(handle.workflowId);
      const rows: Row[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        await deployV2(stack);
        const base = await load(`${stack.url}/`).done;
        const run = load(`${stack.url}/`);
        await new Promise((r) => setTimeout(r, SWITCH_AFTER_MS));
        const status = await rollbackApprovedAtOnce(bench.client, {
          environment: m.environment,
          target: { kind: 'version', version: 'v1' },
        });
        const switched = await run.done;
        const step = status.steps.app!;
        const from = Date.parse(step.startedAt!);
        const to = Date.parse(step.endedAt!);
        const inSwitch = window(switched.samples, from, to);
        // The same stretch of the baseline's run, counted from its start.
        const offset = from - run.started;
        const inBase = window(base.samples, base.started + offset, base.started + offset + (to - from));
        if ((await stack.served()) !== 'v1') throw new Error('nginx does not serve v1 after the rollback');
        rows.push({
          switchRate: inSwitch.rate,
          baseRate: inBase.rate,
          switchP99: inSwitch.p99,
          baseP99: inBase.p99,
          switchMax: inSwitch.max,
          baseMax: inBase.max,
          switchFailed: switched.failed,
          baseFailed: base.failed,
          windowMs: to - from,
          total: switched.total,
          baseTotal: base.total,
        });
        say(
          `${m.mode} round ${round}: window ${to - from} ms, ${inSwitch.rate.toFixed(0)} req/s (baseline ${inBase.rate.toFixed(0)}), p99 ${ms(inSwitch.p99)} (baseline ${ms(inBase.p99)}), max ${ms(inSwitch.max)} (baseline ${ms(inBase.max)}), failed ${switched.failed} of ${switched.total} (${switched.kinds}; baseline ${base.failed} of ${base.total})`,
        );
      }
      const med = (pick: (r: Row) => number) => median(rows.map(pick));
      const sum = (pick: (r: Row) => number) => rows.reduce((total, r) => total + pick(r), 0);
      if (m.mode === 'marker') failedWithoutReload = sum((r) => r.switchFailed);
      report.push(
        '',
        `${m.label}:`,
        '                         during the switch   same load, no switch',
        `  request rate           ${`${med((r) => r.switchRate).toFixed(0)} req/s`.padEnd(19)} ${med((r) => r.baseRate).toFixed(0)} req/s`,
        `  p99 latency            ${ms(med((r) => r.switchP99)).padEnd(19)} ${ms(med((r) => r.baseP99))}`,
        `  max latency            ${ms(med((r) => r.switchMax)).padEnd(19)} ${ms(med((r) => r.baseMax))}`,
        `  failed requests        ${`${sum((r) => r.switchFailed)} of ${sum((r) => r.total)}`.padEnd(19)} ${sum((r) => r.baseFailed)} of ${sum((r) => r.baseTotal)}`,
        `  switch window          ${med((r) => r.windowMs)} ms (the app step: idle colour's health check, nginx -t, switch, confirmed through nginx)`,
      );
    }
    report.push(
      '',
      'Failed requests are connection errors, timeouts and non-2xx answers. The goal (0) applies to the switch',
      "without reload: a reload closes nginx's idle keep-alive connections, and a client that sends on one at",
      'that instant gets a reset (browsers and most HTTP clients retry such a request; autocannon does not).',
    );
    console.log(report.join('\n'));
    if (failedWithoutReload > 0) process.exitCode = 1;
  } finally {
    await bench.stop();
    for (const stack of Object.values(stacks)) await stack.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}

const ms = (n: number) => `${n.toFixed(1)} ms`;

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
