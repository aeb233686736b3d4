// Every metric rewind exports, in one place: the processes build their registries from it, and
// the shipped dashboards and alert rules are checked against it (test/monitoring-config.test.ts),
// so a panel cannot query a metric that does not exist.
//
// Who exports what:
//   - the control worker: what the workflows recorded in the project store and Temporal (rollbacks,
//     approvals, drift, snapshots), so a restarted process does not reset history;
//   - every agent and the control worker: the tools they ran (restic, pg_dump, pg_restore);
//   - the API: its HTTP requests;
//   - every process: prom-client's default process and Node.js metrics.

export type MetricKind = 'counter' | 'gauge' | 'histogram';

export interface MetricDefinition {
  name: string;
  kind: MetricKind;
  help: string;
  labels: readonly string[];
  buckets?: readonly number[];
}

/** Seconds, from a second to a day: a rollback's phases and an approval's wait. */
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1_200, 1_800, 3_600, 7_200, 14_400, 86_400];
/** Seconds, from 10 ms to an hour: one run of restic or pg_dump. */
const TOOL_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3_600];
/** Seconds, from 1 ms to 10 s: one HTTP request. */
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

export const METRICS = {
  rollbacksTotal: {
    name: 'rewind_rollbacks_total',
    kind: 'counter',
    help: 'Rollbacks that ended, by environment, trigger (manual, alert, drill) and result (completed, compensated, failed, rejected, timed-out, cancelled).',
    labels: ['environment', 'trigger', 'result'],
  },
  rollbackDuration: {
    name: 'rewind_rollback_duration_seconds',
    kind: 'histogram',
    help: 'How long ended rollbacks took: phase="total" from start to end (the time to roll back), else one phase.',
    labels: ['environment', 'result', 'phase'],
    buckets: DURATION_BUCKETS,
  },
  rollbacksInProgress: {
    name: 'rewind_rollbacks_in_progress',
    kind: 'gauge',
    help: 'Rollbacks running now, by environment and state (running, awaiting-approval).',
    labels: ['environment', 'state'],
  },
  oldestAwaitingApproval: {
    name: 'rewind_rollback_awaiting_approval_oldest_seconds',
    kind: 'gauge',
    help: 'How long the oldest rollback now awaiting approval has waited, by environment (0 when none waits).',
    labels: ['environment'],
  },
  approvalWait: {
    name: 'rewind_approval_wait_seconds',
    kind: 'histogram',
    help: 'How long ended rollbacks waited at the approval gate, by environment.',
    labels: ['environment'],
    buckets: DURATION_BUCKETS,
  },
  driftFindings: {
    name: 'rewind_drift_findings',
    kind: 'gauge',
    help: 'Findings of the latest finished drift scan of each environment pair, by component and severity (allowed differences not counted).',
    labels: ['from', 'to', 'component', 'severity'],
  },
  driftScanLastSuccess: {
    name: 'rewind_drift_scan_last_success_timestamp_seconds',
    kind: 'gauge',
    help: 'When the latest drift scan of each environment pair finished (Unix time).',
    labels: ['from', 'to'],
  },
  snapshots: {
    name: 'rewind_snapshots',
    kind: 'gauge',
    help: 'Cross-sections in the repository, by environment and tier: hourly (hot), daily (cold), weekly (archive) by the retention rule that keeps a scheduled one; expired (forgotten at the next prune); event (taken on request); safety (taken by a rollback); dry-run.',
    labels: ['repository', 'environment', 'tier'],
  },
  repositorySize: {
    name: 'rewind_repository_size_bytes',
    kind: 'gauge',
    help: "Bytes the repository takes: on disk for a local one, else restic's raw-data size; by repository (primary, cold).",
    labels: ['repository'],
  },
  repositoryCheckLastSuccess: {
    name: 'rewind_repository_check_last_success_timestamp_seconds',
    kind: 'gauge',
    help: 'When `restic check` last passed on each repository (Unix time).',
    labels: ['repository'],
  },
  drillsTotal: {
    name: 'rewind_drills_total',
    kind: 'counter',
    help: 'Rollback drills that ended, by environment, scope (partial, full) and outcome (passed, failed).',
    labels: ['environment', 'scope', 'outcome'],
  },
  drillRollbackSeconds: {
    name: 'rewind_drill_rollback_seconds',
    kind: 'gauge',
    help: "How long the latest drill's rollback took, by environment and scope (compare with rewind_drill_goal_seconds).",
    labels: ['environment', 'scope'],
  },
  drillGoalSeconds: {
    name: 'rewind_drill_goal_seconds',
    kind: 'gauge',
    help: 'The time-to-roll-back goal drills are measured against (drills.mttrGoal).',
    labels: ['environment'],
  },
  drillLastSuccess: {
    name: 'rewind_drill_last_success_timestamp_seconds',
    kind: 'gauge',
    help: 'When a drill last passed, by environment and scope (Unix time).',
    labels: ['environment', 'scope'],
  },
  toolDuration: {
    name: 'rewind_tool_duration_seconds',
    kind: 'histogram',
    help: 'How long each run of an external tool took, by tool (restic, pg_dump, pg_restore), operation and outcome (ok, error).',
    labels: ['tool', 'operation', 'outcome'],
    buckets: TOOL_BUCKETS,
  },
  toolBytes: {
    name: 'rewind_tool_bytes_total',
    kind: 'counter',
    help: 'Bytes an external tool processed (restic: read for a backup, written by a restore; pg_dump: the dump written).',
    labels: ['tool', 'operation'],
  },
  httpRequests: {
    name: 'rewind_http_requests_total',
    kind: 'counter',
    help: 'Requests the API answered, by route, method and status code.',
    labels: ['route', 'method', 'status'],
  },
  httpDuration: {
    name: 'rewind_http_request_duration_seconds',
    kind: 'histogram',
    help: 'How long the API took to answer, by route and method.',
    labels: ['route', 'method'],
    buckets: HTTP_BUCKETS,
  },
} as const satisfies Record<string, MetricDefinition>;

/** Names of prom-client's default metrics that dashboards and rules may use. */
export const DEFAULT_METRIC_NAMES = [
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'process_start_time_seconds',
  'nodejs_eventloop_lag_p99_seconds',
  'nodejs_heap_size_used_bytes',
] as const;

/**
 * Every series name a scrape of rewind can show: a histogram's `_bucket`, `_sum` and `_count`
 * and Prometheus's own `up` included.
 */
export function exportedSeriesNames(): string[] {
  const names: string[] = ['up', ...DEFAULT_METRIC_NAMES];
  for (const metric of Object.values(METRICS) as MetricDefinition[]) {
    if (metric.kind === 'histogram') names.push(`${metric.name}_bucket`, `${metric.name}_sum`, `${metric.name}_count`);
    else names.push(metric.name);
  }
  return names;
}
