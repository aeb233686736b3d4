// `rewind stats` over a rollback history recorded as the announce activity records it, in a real
// PostgreSQL project store: the numbers by environment, trigger and month, that they agree with
// the metrics, and bad input refused.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RollbackStatus, RollbackState } from '../src/domain/rollback';
import { createControlMetrics } from '../src/metrics/control-metrics';
import { renderMetrics } from '../src/metrics/server';
import { createLogger } from '../src/platform/logger';
import { openProjectStore, type ProjectStore } from '../src/store/project-store';
import { recordRollbackEnd, recordRollbackStart, rollbackStats } from '../src/store/rollback-history';
import { loadManifest } from '../src/manifest/load';
import { runCli } from './support/harness';
import { createDatabase, dropDatabase } from './support/postgres';
import { tempDir } from './support/temp';

/** A run's status as the workflow reports it at its end. */
function endedStatus(over: {
  id: string;
  environment: string;
  trigger: 'manual' | 'alert' | 'drill';
  state: RollbackState;
  start: string;
  /** Seconds in each phase, in order; approval among them. */
  phases: [string, number][];
}): RollbackStatus {
  let at = Date.parse(over.start);
  const phases: RollbackStatus['phases'] = {};
  for (const [phase, seconds] of over.phases) {
    const startedAt = new Date(at).toISOString();
    at += seconds * 1000;
    phases[phase as 'decide'] = { startedAt, endedAt: new Date(at).toISOString(), durationMs: seconds * 1000 };
  }
  return {
    workflowId: over.id,
    environment: over.environment,
    target: { kind: 'version', version: 'v1' },
    trigger: over.trigger,
    requester: 'alice',
    dryRun: false,
    phase: 'complete',
    state: over.state,
    phases,
    steps: {},
    approvals: [],
    refusals: [],
  };
}

const RUNS = [
  // production, November: two manual completed (60 s and 120 s), one alert compensated, one rejected.
  {
    id: 'r1',
    environment: 'production',
    trigger: 'manual',
    state: 'completed',
    start: '2026-11-02T10:00:00Z',
    phases: [
      ['decide', 5],
      ['approval', 25],
      ['execute', 25],
      ['complete', 5],
    ],
  },
  {
    id: 'r2',
    environment: 'production',
    trigger: 'manual',
    state: 'completed',
    start: '2026-11-09T10:00:00Z',
    phases: [
      ['decide', 10],
      ['approval', 50],
      ['execute', 55],
      ['complete', 5],
    ],
  },
  {
    id: 'r3',
    environment: 'production',
    trigger: 'alert',
    state: 'compensated',
    start: '2026-11-10T03:00:00Z',
    phases: [
      ['decide', 5],
      ['approval', 5],
      ['execute', 20],
      ['compensate', 30],
    ],
  },
  {
    id: 'r4',
    environment: 'production',
    trigger: 'manual',
    state: 'rejected',
    start: '2026-11-11T10:00:00Z',
    phases: [
      ['decide', 5],
      ['approval', 600],
    ],
  },
  // production, October: one manual failed.
  {
    id: 'r5',
    environment: 'production',
    trigger: 'manual',
    state: 'failed',
    start: '2026-10-20T10:00:00Z',
    phases: [
      ['decide', 5],
      ['approval', 10],
      ['execute', 45],
    ],
  },
  // regression, November: one drill completed in 30 s.
  {
    id: 'r6',
    environment: 'regression',
    trigger: 'drill',
    state: 'completed',
    start: '2026-11-15T10:00:00Z',
    phases: [
      ['decide', 5],
      ['approval', 1],
      ['execute', 20],
      ['complete', 4],
    ],
  },
] as const;

describe('rewind stats', () => {
  let databaseUrl: string;
  let store: ProjectStore;
  let manifestFile: string;
  const dir = tempDir('rewind-stats-');

  beforeAll(async () => {
    databaseUrl = await createDatabase();
    store = await openProjectStore({ databaseUrl, dataDir: dir });
    for (const run of RUNS) {
      const status = endedStatus({ ...run, phases: run.phases.map(([p, s]) => [p, s]) });
      await recordRollbackStart(store, { ...status, state: 'running' }, new Date(run.start));
      await recordRollbackEnd(store, status, new Date());
    }
    // One still running: counted as in progress, not in the rates.
    await recordRollbackStart(
      store,
      endedStatus({
        id: 'r7',
        environment: 'production',
        trigger: 'manual',
        state: 'running',
        start: '2026-11-20T10:00:00Z',
        phases: [['decide', 1]],
      }),
      new Date('2026-11-20T10:00:00Z'),
    );
    manifestFile = path.join(dir, 'rewind.yaml');
    writeFileSync(
      manifestFile,
      [
        'repository: { path: ./repo, passwordEnv: REWIND_TEST_PASSWORD }',
        'approvers: [alice]',
        'environments:',
        '  production: { components: { config: { kind: files, path: ./p } } }',
        '  regression: { components: { config: { kind: files, path: ./r } } }',
      ].join('\n'),
    );
  });
  afterAll(async () => {
    await store?.close();
    if (databaseUrl) await dropDatabase(databaseUrl);
  });

  it('counts runs, success rate and mean time to roll back by environment, trigger and month', async () => {
    const stats = await rollbackStats(store, {}, new Date('2026-11-30T00:00:00Z'));
    expect(stats.total).toMatchObject({
      runs: 6,
      results: { completed: 3, compensated: 1, failed: 1, rejected: 1 },
      // completed of those that executed: 3 of 5
      successRate: 0.6,
      // (60 + 120 + 30) / 3
      mttrSeconds: 70,
    });
    expect(stats.inProgress).toBe(1);
    const production = stats.environments.find((e) => e.environment === 'production')!;
    expect(production).toMatchObject({ runs: 5, successRate: 0.5, mttrSeconds: 90 });
    expect(stats.groups.map((g) => [g.environment, g.trigger, g.month, g.runs])).toEqual([
      ['production', 'manual', '2026-10', 1],
      ['production', 'alert', '2026-11', 1],
      ['production', 'manual', '2026-11', 3],
      ['regression', 'drill', '2026-11', 1],
    ]);
    const novemberManual = stats.groups.find((g) => g.trigger === 'manual' && g.month === '2026-11')!;
    expect(novemberManual).toMatchObject({
      successRate: 1,
      mttrSeconds: 90,
      meanApprovalWaitSeconds: (25 + 50 + 600) / 3,
    });
  });

  it('filters by environment and time', async () => {
    const regression = await rollbackStats(store, { environment: 'regression' });
    expect(regression.total).toMatchObject({ runs: 1, successRate: 1, mttrSeconds: 30 });
    expect(regression.inProgress).toBe(0);
    const october = await rollbackStats(store, {
      since: new Date('2026-10-01T00:00:00Z'),
      until: new Date('2026-11-01T00:00:00Z'),
    });
    expect(october.total).toMatchObject({ runs: 1, results: { failed: 1 }, successRate: 0, mttrSeconds: null });
    const none = await rollbackStats(store, { since: new Date('2030-01-01T00:00:00Z') });
    expect(none.total.runs).toBe(0);
    expect(none.groups).toEqual([]);
  });

  it('agrees with the metrics: rewind_rollbacks_total and the duration histogram', async () => {
    const { manifest } = loadManifest(manifestFile);
    const metrics = createControlMetrics({
      manifest,
      projectStore: () => Promise.resolve(store),
      // Only the history is read here: the other sources fail and are logged, not thrown.
      client: {
        workflow: {
          list: () => {
            throw new Error('no Temporal in this test');
          },
        },
      } as never,
      snapshots: { crossSections: () => Promise.reject(new Error('no repository')), restic: {} } as never,
      logger: createLogger('stats-test', 'silent'),
    });
    const { body } = await renderMetrics([metrics]);
    const total = (result: string) =>
      [...body.matchAll(new RegExp(`^rewind_rollbacks_total\\{[^}]*result="${result}"[^}]*\\} (\\d+)$`, 'gm'))].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
    const stats = await rollbackStats(store);
    for (const state of ['completed', 'compensated', 'failed', 'rejected'])
      expect(total(state)).toBe(stats.total.results[state]);
    const sum =
      /^rewind_rollback_duration_seconds_sum\{environment="production",result="completed",phase="total"\} (\S+)$/m.exec(
        body,
      );
    expect(Number(sum![1])).toBe(180);
  });

  it('prints a table and --json through the CLI', async () => {
    const env = { DATABASE_URL: databaseUrl, REWIND_MANIFEST: manifestFile, REWIND_TEST_PASSWORD: 'x' };
    const human = await runCli(['stats'], { env });
    expect(human.stderr).toBe('');
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/rollbacks ended from the first run to now: 6/);
    expect(human.stdout).toMatch(/success rate 60\.0% .*mean time to roll back 1m10s/);
    expect(human.stdout).toMatch(/^production +5 +2 +1 +1 +1 +50\.0% +1m30s/m);
    const json = await runCli(['stats', '--json', '--env', 'production', '--since', '2026-11-01'], { env });
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { total: { runs: number }; groups: { trigger: string }[] };
    expect(parsed.total.runs).toBe(4);
    expect(parsed.groups.map((g) => g.trigger)).toEqual(['alert', 'manual']);
  });

  it('refuses bad input, saying what was wrong', async () => {
    const env = { DATABASE_URL: databaseUrl, REWIND_MANIFEST: manifestFile };
    const badSince = await runCli(['stats', '--since', 'last tuesday'], { env });
    expect(badSince.code).not.toBe(0);
    expect(badSince.stderr).toMatch(/--since.*expected an ISO 8601 date or time/);
    const badEnv = await runCli(['stats', '--env', 'prod'], { env });
    expect(badEnv.code).not.toBe(0);
    expect(badEnv.stderr).toMatch(/unknown environment "prod" \(the manifest has: production, regression\)/);
    const backwards = await runCli(['stats', '--since', '2026-11-02', '--until', '2026-11-01'], { env });
    expect(backwards.code).not.toBe(0);
    expect(backwards.stderr).toMatch(/--since must be earlier than --until/);
  });
});
