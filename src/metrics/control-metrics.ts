// The control worker's metrics: what the workflows recorded, read at each scrape from where they
// recorded it (the project store's rollback history and drift scans, Temporal's visibility, the
// snapshot repository), so that a restarted process reports the same history.
import type { Client } from '@temporalio/client';
import { Registry } from 'prom-client';
import { dryRunAttribute, environmentAttribute, stateAttribute } from '../domain/search-attributes';
import type { Manifest } from '../manifest/schema';
import type { Logger } from '../platform/logger';
import type { SnapshotStore } from '../snapshots/store';
import type { ProjectStore } from '../store/project-store';
import { retentionVerdicts } from '../domain/retention';
import { repositoryBytes } from '../retention/apply';
import { drillEnvironment } from '../drills/section';
import { parseDuration } from '../manifest/duration';
import { COLD_REPOSITORY, keepPolicy, PRIMARY_REPOSITORY } from '../retention/policy';
import type { ResticRepository } from '../snapshots/restic';
import { groupCrossSections } from '../domain/cross-section';
import { awaitingApprovalSince, endedRunsSince } from '../store/rollback-history';
import { defineMetric } from './registry';

export interface ControlMetricsDeps {
  manifest: Manifest;
  projectStore: () => Promise<ProjectStore>;
  client: Client;
  snapshots: SnapshotStore;
  logger: Logger;
  /** The cold repository (snapshots.cold), if the manifest has one. */
  cold?: ResticRepository | undefined;
  /** How long the repository's size is kept before restic is asked again (it reads the index). */
  repositorySizeTtlMs?: number;
}

/** The tier of a cross-section that was not scheduled: what took it. */
const TIER_OF_ORIGIN: Record<string, string> = { manual: 'event', safety: 'safety', 'dry-run': 'dry-run' };
/** Every tier shows, at 0 when empty: hot, cold and archive by their rules, then by origin. */
const SNAPSHOT_TIERS = ['hourly', 'daily', 'weekly', 'event', 'safety'] as const;

export function createControlMetrics(deps: ControlMetricsDeps) {
  const registry = new Registry();
  const rollbacks = defineMetric(registry, 'rollbacksTotal');
  const duration = defineMetric(registry, 'rollbackDuration');
  const approvalWait = defineMetric(registry, 'approvalWait');
  const inProgress = defineMetric(registry, 'rollbacksInProgress');
  const oldestAwaiting = defineMetric(registry, 'oldestAwaitingApproval');
  const driftFindings = defineMetric(registry, 'driftFindings');
  const driftLastSuccess = defineMetric(registry, 'driftScanLastSuccess');
  const snapshots = defineMetric(registry, 'snapshots');
  const repositorySize = defineMetric(registry, 'repositorySize');
  const checkLastSuccess = defineMetric(registry, 'repositoryCheckLastSuccess');
  const drills = defineMetric(registry, 'drillsTotal');
  const drillRollback = defineMetric(registry, 'drillRollbackSeconds');
  const drillLastSuccess = defineMetric(registry, 'drillLastSuccess');
  const drillGoal = defineMetric(registry, 'drillGoalSeconds');
  const drillsIn = drillEnvironment(deps.manifest);
  if (drillsIn) drillGoal.set({ environment: drillsIn }, parseDuration(deps.manifest.drills.mttrGoal) / 1000);

  const environments = Object.keys(deps.manifest.environments);
  // Every environment shows, with zeros, before its first rollback: a dashboard or a rule
  // comparing it then reads 0, not "no data".
  for (const environment of environments) {
    for (const state of ['running', 'awaiting-approval']) inProgress.set({ environment, state }, 0);
    oldestAwaiting.set({ environment }, 0);
  }

  /** The last ending counted: each scrape reads only the runs that ended since. */
  let countedUpTo = 0;
  let size: { at: number; bytes: number } | undefined;
  let coldState: { bytes: number; counts: { environment: string; tier: string; n: number }[] } | undefined;

  async function refreshRollbackHistory(store: ProjectStore): Promise<void> {
    for (;;) {
      const ended = await endedRunsSince(store, countedUpTo);
      for (const run of ended) {
        const result = run.state;
        rollbacks.inc({ environment: run.environment, trigger: run.trigger, result });
        duration.observe({ environment: run.environment, result, phase: 'total' }, run.durationSeconds);
        for (const [phase, seconds] of Object.entries(run.phaseSeconds))
          duration.observe({ environment: run.environment, result, phase }, seconds);
        if (run.approvalWaitSeconds !== null)
          approvalWait.observe({ environment: run.environment }, run.approvalWaitSeconds);
        countedUpTo = run.endedSeq;
      }
      if (ended.length < 5_000) return;
    }
  }

  async function refreshInProgress(store: ProjectStore): Promise<void> {
    const query = `WorkflowType = 'rollbackWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${deps.manifest.temporal.taskQueue}'`;
    const counts = new Map<string, number>();
    const awaiting: { id: string; environment: string; startedAt: Date }[] = [];
    for await (const run of deps.client.workflow.list({ query })) {
      if (run.typedSearchAttributes.get(dryRunAttribute) === true) continue;
      const environment = run.typedSearchAttributes.get(environmentAttribute);
      if (!environment) continue;
      const state =
        run.typedSearchAttributes.get(stateAttribute) === 'awaiting-approval' ? 'awaiting-approval' : 'running';
      counts.set(`${environment}\u0000${state}`, (counts.get(`${environment}\u0000${state}`) ?? 0) + 1);
      if (state === 'awaiting-approval') awaiting.push({ id: run.workflowId, environment, startedAt: run.startTime });
    }
    inProgress.reset();
    for (const environment of environments)
      for (const state of ['running', 'awaiting-approval'])
        inProgress.set({ environment, state }, counts.get(`${environment}\u0000${state}`) ?? 0);
    const since = await awaitingApprovalSince(
      store,
      awaiting.map((a) => a.id),
    );
    const now = Date.now();
    const oldest = new Map<string, number>();
    for (const a of awaiting) {
      const waited = (now - (since.get(a.id) ?? a.startedAt).getTime()) / 1000;
      oldest.set(a.environment, Math.max(oldest.get(a.environment) ?? 0, waited));
    }
    oldestAwaiting.reset();
    for (const environment of new Set([...environments, ...oldest.keys()]))
      oldestAwaiting.set({ environment }, oldest.get(environment) ?? 0);
  }

  async function refreshDrift(store: ProjectStore): Promise<void> {
    // The latest completed scan of each pair, and its findings still present (allowed ones aside).
    const latest = await store.query<{ id: string; from_env: string; to_env: string; finished_at: Date | string }>(
      `SELECT DISTINCT ON (from_env, to_env) id, from_env, to_env, finished_at FROM drift_scans
        WHERE status = 'completed' AND finished_at IS NOT NULL
        ORDER BY from_env, to_env, finished_at DESC`,
    );
    const counts = await store.query<{ scan_id: string; component: string; severity: string; n: string | number }>(
      `SELECT scan_id, component, severity, count(*) AS n FROM drift_findings
        WHERE scan_id = ANY($1::text[]) AND NOT allowed AND state <> 'resolved'
        GROUP BY scan_id, component, severity`,
      [latest.map((s) => s.id)],
    );
    driftFindings.reset();
    driftLastSuccess.reset();
    for (const scan of latest)
      driftLastSuccess.set({ from: scan.from_env, to: scan.to_env }, new Date(scan.finished_at).getTime() / 1000);
    const pairOf = new Map(latest.map((s) => [s.id, s]));
    for (const c of counts) {
      const scan = pairOf.get(c.scan_id)!;
      driftFindings.set(
        { from: scan.from_env, to: scan.to_env, component: c.component, severity: c.severity },
        Number(c.n),
      );
    }
  }

  async function refreshSnapshots(): Promise<void> {
    snapshots.reset();
    const policy = keepPolicy(deps.manifest.snapshots);
    const facts = { now: new Date(), runningWorkflows: new Set<string>(), targets: new Map<string, string>() };
    for (const environment of environments) {
      const tiers = new Map<string, number>(SNAPSHOT_TIERS.map((t) => [t, 0]));
      const sections = await deps.snapshots.crossSections(environment);
      // Scheduled ones by the retention rule that keeps them (hot, cold, archive); the others by origin.
      for (const v of retentionVerdicts(sections, policy, facts)) {
        const tier =
          v.origin === 'schedule' ? (v.tier ?? (v.keep ? 'scheduled' : 'expired')) : TIER_OF_ORIGIN[v.origin];
        if (tier) tiers.set(tier, (tiers.get(tier) ?? 0) + 1);
      }
      for (const [tier, n] of tiers) snapshots.set({ repository: PRIMARY_REPOSITORY, environment, tier }, n);
    }
    const ttl = deps.repositorySizeTtlMs ?? 5 * 60_000;
    if (!size || Date.now() - size.at > ttl) {
      size = { at: Date.now(), bytes: await repositoryBytes(deps.snapshots.restic) };
      // The cold repository is read as seldom as the size: restic lists it (no index of ours).
      if (deps.cold) {
        const all = await deps.cold.snapshots(['rewind']);
        const counts: { environment: string; tier: string; n: number }[] = [];
        for (const environment of environments) {
          const sections = groupCrossSections(all.filter((s) => s.labels.environment === environment));
          const verdicts = retentionVerdicts(sections, { ...policy, hourlyMs: 0 }, facts);
          for (const tier of ['daily', 'weekly'])
            counts.push({ environment, tier, n: verdicts.filter((v) => v.keep && v.tier === tier).length });
        }
        coldState = { bytes: await repositoryBytes(deps.cold), counts };
      }
    }
    repositorySize.set({ repository: PRIMARY_REPOSITORY }, size.bytes);
    if (coldState) {
      repositorySize.set({ repository: COLD_REPOSITORY }, coldState.bytes);
      for (const c of coldState.counts)
        snapshots.set({ repository: COLD_REPOSITORY, environment: c.environment, tier: c.tier }, c.n);
    }
  }

  async function refreshDrills(store: ProjectStore): Promise<void> {
    const counts = await store.query<{ environment: string; scope: string; outcome: string; n: string | number }>(
      'SELECT environment, scope, outcome, count(*) AS n FROM drills GROUP BY environment, scope, outcome',
    );
    const latest = await store.query<{
      environment: string;
      scope: string;
      rollback_seconds: number;
      last_passed: Date | string | null;
    }>(
      `SELECT DISTINCT ON (environment, scope) environment, scope, rollback_seconds,
              (SELECT max(finished_at) FROM drills p WHERE p.environment = d.environment AND p.scope = d.scope
                AND p.outcome = 'passed') AS last_passed
         FROM drills d ORDER BY environment, scope, finished_at DESC`,
    );
    // Counted from the store at each scrape: a few rows a month, and never reset by a restart.
    drills.reset();
    for (const c of counts) drills.inc({ environment: c.environment, scope: c.scope, outcome: c.outcome }, Number(c.n));
    drillRollback.reset();
    drillLastSuccess.reset();
    for (const l of latest) {
      drillRollback.set({ environment: l.environment, scope: l.scope }, Number(l.rollback_seconds));
      if (l.last_passed)
        drillLastSuccess.set({ environment: l.environment, scope: l.scope }, new Date(l.last_passed).getTime() / 1000);
    }
  }

  async function refreshChecks(store: ProjectStore): Promise<void> {
    const rows = await store.query<{ repository: string; at: Date | string }>(
      'SELECT repository, max(finished_at) AS at FROM repository_checks WHERE ok GROUP BY repository',
    );
    checkLastSuccess.reset();
    for (const row of rows) checkLastSuccess.set({ repository: row.repository }, new Date(row.at).getTime() / 1000);
  }

  /**
   * Brings every metric up to date. A source that cannot be read leaves its metrics as they
   * were and is logged; the others still refresh.
   */
  async function refresh(): Promise<void> {
    const parts: [string, () => Promise<void>][] = [
      ['rollback history', async () => refreshRollbackHistory(await deps.projectStore())],
      ['rollbacks in progress', async () => refreshInProgress(await deps.projectStore())],
      ['drift scans', async () => refreshDrift(await deps.projectStore())],
      ['snapshots', refreshSnapshots],
      ['repository checks', async () => refreshChecks(await deps.projectStore())],
      ['drills', async () => refreshDrills(await deps.projectStore())],
    ];
    await Promise.all(
      parts.map(([what, fn]) =>
        fn().catch((err: unknown) => deps.logger.warn({ err }, `metrics: could not read ${what}`)),
      ),
    );
  }

  return { registry, refresh };
}
