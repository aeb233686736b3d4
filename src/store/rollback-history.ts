// The history of rollbacks in the project store (table rollback_runs, migration 5): one row per
// announced run, written when it starts and completed when it ends. Metrics and `rewind stats`
// read it, so their numbers survive a restart and agree with each other.
import { describeTarget, FINAL_STATES, type RollbackStatus } from '../domain/rollback';
import type { StoreQueries } from './project-store';

/** One ended run, as metrics read it. */
export interface EndedRun {
  endedSeq: number;
  environment: string;
  trigger: string;
  state: string;
  durationSeconds: number;
  approvalWaitSeconds: number | null;
  phaseSeconds: Record<string, number>;
}

const seconds = (ms: number | undefined) => (ms === undefined ? undefined : Math.max(0, ms) / 1000);

/** When the run started: its first phase's start. */
function startedAt(status: RollbackStatus, fallback: Date): Date {
  const starts = Object.values(status.phases)
    .map((p) => Date.parse(p.startedAt))
    .filter((t) => Number.isFinite(t));
  return starts.length > 0 ? new Date(Math.min(...starts)) : fallback;
}

/** Records a run as started; a repeat (a retried announcement) changes nothing. */
export async function recordRollbackStart(store: StoreQueries, status: RollbackStatus, at: Date): Promise<void> {
  await store.query(
    `INSERT INTO rollback_runs (run_id, environment, trigger, trigger_rule, requester, target, state, started_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (run_id) DO NOTHING`,
    [...identity(status), status.state, startedAt(status, at)],
  );
}

/** The columns that name a run and what it was asked to do, in the tables' order. */
function identity(status: RollbackStatus): unknown[] {
  return [
    status.workflowId,
    status.environment,
    status.trigger,
    status.triggerRule ?? null,
    status.requester,
    describeTarget(status.target),
  ];
}

/** Records when a run came to the approval gate (the first time, if announced again). */
export async function recordAwaitingApproval(store: StoreQueries, status: RollbackStatus, at: Date): Promise<void> {
  await recordRollbackStart(store, status, at);
  await store.query(
    'UPDATE rollback_runs SET awaiting_approval_since = $2 WHERE run_id = $1 AND awaiting_approval_since IS NULL',
    [status.workflowId, at],
  );
}

/** When each of these runs came to the approval gate, by run id (runs not recorded are left out). */
export async function awaitingApprovalSince(store: StoreQueries, runIds: string[]): Promise<Map<string, Date>> {
  if (runIds.length === 0) return new Map();
  const rows = await store.query<{ run_id: string; since: Date | string }>(
    `SELECT run_id, awaiting_approval_since AS since FROM rollback_runs
      WHERE run_id = ANY($1::text[]) AND awaiting_approval_since IS NOT NULL`,
    [runIds],
  );
  return new Map(rows.map((r) => [r.run_id, new Date(r.since)]));
}

/**
 * Records how a run ended: its state, total and per-phase durations and approval wait. Once:
 * a retried announcement finds the ending recorded and changes nothing, so the run's ended_seq
 * (and what metrics counted) stays.
 */
export async function recordRollbackEnd(store: StoreQueries, status: RollbackStatus, at: Date): Promise<void> {
  if (!FINAL_STATES.includes(status.state)) throw new Error(`${status.workflowId} has not ended (${status.state})`);
  const started = startedAt(status, at);
  const ends = Object.values(status.phases)
    .map((p) => (p.endedAt ? Date.parse(p.endedAt) : NaN))
    .filter((t) => Number.isFinite(t));
  const ended = ends.length > 0 ? new Date(Math.max(...ends, started.getTime())) : at;
  const phaseSeconds: Record<string, number> = {};
  for (const [phase, timing] of Object.entries(status.phases)) {
    const s = seconds(timing?.durationMs);
    if (s !== undefined) phaseSeconds[phase] = s;
  }
  await store.query(
    `INSERT INTO rollback_runs (run_id, environment, trigger, trigger_rule, requester, target, state, started_at,
                                ended_at, duration_seconds, approval_wait_seconds, phase_seconds, cause, ended_seq)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, nextval('rollback_runs_ended_seq'))
     ON CONFLICT (run_id) DO UPDATE SET
       state = EXCLUDED.state, ended_at = EXCLUDED.ended_at, duration_seconds = EXCLUDED.duration_seconds,
       approval_wait_seconds = EXCLUDED.approval_wait_seconds, phase_seconds = EXCLUDED.phase_seconds,
       cause = EXCLUDED.cause, ended_seq = EXCLUDED.ended_seq
     WHERE rollback_runs.ended_seq IS NULL`,
    [
      ...identity(status),
      status.state,
      started,
      ended,
      (ended.getTime() - started.getTime()) / 1000,
      seconds(status.phases.approval?.durationMs) ?? null,
      JSON.stringify(phaseSeconds),
      status.cause?.slice(0, 2000) ?? null,
    ],
  );
}

/** Runs that ended after `afterSeq`, in the order their endings were recorded (at most `limit`). */
export async function endedRunsSince(store: StoreQueries, afterSeq: number, limit = 5_000): Promise<EndedRun[]> {
  const rows = await store.query<{
    ended_seq: string | number;
    environment: string;
    trigger: string;
    state: string;
    duration_seconds: number;
    approval_wait_seconds: number | null;
    phase_seconds: Record<string, number> | string;
  }>(
    `SELECT ended_seq, environment, trigger, state, duration_seconds, approval_wait_seconds, phase_seconds
       FROM rollback_runs WHERE ended_seq > $1 ORDER BY ended_seq LIMIT $2`,
    [afterSeq, limit],
  );
  return rows.map((r) => ({
    endedSeq: Number(r.ended_seq),
    environment: r.environment,
    trigger: r.trigger,
    state: r.state,
    durationSeconds: Number(r.duration_seconds),
    approvalWaitSeconds: r.approval_wait_seconds === null ? null : Number(r.approval_wait_seconds),
    phaseSeconds:
      typeof r.phase_seconds === 'string' ? (JSON.parse(r.phase_seconds) as Record<string, number>) : r.phase_seconds,
  }));
}

export interface StatsFilter {
  environment?: string;
  /** Runs that ended at or after this time. */
  since?: Date;
  /** Runs that ended before this time. */
  until?: Date;
}

/** One group of ended runs: by environment, trigger and month, by environment, or all. */
export interface RollbackStatsRow {
  environment: string | null;
  trigger: string | null;
  /** `2026-11`, UTC; null for the totals of an environment or of all. */
  month: string | null;
  runs: number;
  results: Record<string, number>;
  /** completed / (completed + compensated + failed): of the runs that executed. Null when none did. */
  successRate: number | null;
  /** Mean seconds from start to end of the completed runs: the mean time to roll back. */
  mttrSeconds: number | null;
  meanApprovalWaitSeconds: number | null;
}

export interface RollbackStats {
  since: string | null;
  until: string | null;
  /** All runs, then each environment, then each environment, trigger and month. */
  total: RollbackStatsRow;
  environments: RollbackStatsRow[];
  groups: RollbackStatsRow[];
  /** Ended runs per week over the window (from --since, or the first run, to --until or now). */
  perWeek: number | null;
  /** Runs recorded as started that have not ended. */
  inProgress: number;
}

const EXECUTED = ['completed', 'compensated', 'failed'];

/**
 * Rollback frequency, mean time to roll back and success rate, in one pass over the ended runs
 * (GROUPING SETS: per environment, trigger and month; per environment; all), the same numbers
 * the metrics count.
 */
export async function rollbackStats(
  store: StoreQueries,
  filter: StatsFilter = {},
  now = new Date(),
): Promise<RollbackStats> {
  const where = ['ended_seq IS NOT NULL'];
  const params: unknown[] = [];
  if (filter.environment) where.push(`environment = $${params.push(filter.environment)}`);
  if (filter.since) where.push(`ended_at >= $${params.push(filter.since)}`);
  if (filter.until) where.push(`ended_at < $${params.push(filter.until)}`);
  const rows = await store.query<{
    environment: string | null;
    trigger: string | null;
    month: string | null;
    level: number;
    runs: string | number;
    results: Record<string, number> | string;
    mttr: number | null;
    approval_wait: number | null;
    first_end: Date | string | null;
  }>(
    `WITH ended AS (
       SELECT environment, trigger, state, duration_seconds, approval_wait_seconds, ended_at,
              to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month
         FROM rollback_runs WHERE ${where.join(' AND ')}
     ), counted AS (
       SELECT environment, trigger, month, state, count(*) AS n,
              sum(duration_seconds) FILTER (WHERE state = 'completed') AS completed_seconds,
              sum(approval_wait_seconds) AS wait_seconds, count(approval_wait_seconds) AS waits,
              min(ended_at) AS first_end
         FROM ended GROUP BY environment, trigger, month, state
     )
     SELECT environment, trigger, month,
            GROUPING(environment, trigger, month) AS level,
            sum(n) AS runs,
            jsonb_build_object(${FINAL_STATES.map((state) => `'${state}', coalesce(sum(n) FILTER (WHERE state = '${state}'), 0)`).join(', ')}) AS results,
            sum(completed_seconds) / NULLIF(sum(n) FILTER (WHERE state = 'completed'), 0) AS mttr,
            sum(wait_seconds) / NULLIF(sum(waits), 0) AS approval_wait,
            min(first_end) AS first_end
       FROM counted
      GROUP BY GROUPING SETS ((environment, trigger, month), (environment), ())
      ORDER BY level DESC, environment, month, trigger`,
    params,
  );
  const toRow = (r: (typeof rows)[number]): RollbackStatsRow => {
    const results: Record<string, number> = {};
    const raw = typeof r.results === 'string' ? (JSON.parse(r.results) as unknown) : r.results;
    for (const [state, n] of Object.entries(raw as Record<string, number>))
      if (Number(n) > 0) results[state] = Number(n);
    const executed = EXECUTED.reduce((sum, s) => sum + (results[s] ?? 0), 0);
    return {
      environment: r.environment,
      trigger: r.trigger,
      month: r.month,
      runs: Number(r.runs),
      results,
      successRate: executed === 0 ? null : (results.completed ?? 0) / executed,
      mttrSeconds: r.mttr === null ? null : Number(r.mttr),
      meanApprovalWaitSeconds: r.approval_wait === null ? null : Number(r.approval_wait),
    };
  };
  const empty: RollbackStatsRow = {
    environment: null,
    trigger: null,
    month: null,
    runs: 0,
    results: {},
    successRate: null,
    mttrSeconds: null,
    meanApprovalWaitSeconds: null,
  };
  const totalRow = rows.find((r) => Number(r.level) === 7);
  const firstEnd = totalRow?.first_end ? new Date(totalRow.first_end) : undefined;
  const from = filter.since ?? firstEnd;
  const to = filter.until ?? now;
  const weeks = from ? (to.getTime() - from.getTime()) / (7 * 86_400_000) : 0;
  const running = await store.query<{ n: string | number }>(
    `SELECT count(*) AS n FROM rollback_runs WHERE ended_seq IS NULL${filter.environment ? ' AND environment = $1' : ''}`,
    filter.environment ? [filter.environment] : [],
  );
  return {
    since: filter.since?.toISOString() ?? null,
    until: filter.until?.toISOString() ?? null,
    total: totalRow ? toRow(totalRow) : empty,
    environments: rows.filter((r) => Number(r.level) === 3).map(toRow),
    groups: rows.filter((r) => Number(r.level) === 0).map(toRow),
    // Under a day of history says nothing per week.
    perWeek: totalRow && weeks >= 1 / 7 ? Number(totalRow.runs) / weeks : null,
    inProgress: Number(running[0]?.n ?? 0),
  };
}
