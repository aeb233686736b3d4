// The shapes of a drift scan that the workflow, the control activities and the CLI share. Pure.
import { z } from 'zod';
import type { DriftQuestion, Severity } from '../components/drift';

// sync: the scans a sync runs before and after it (src/workflows/sync.ts).
export const DRIFT_TRIGGERS = ['manual', 'schedule', 'deploy', 'api', 'sync'] as const;
export type DriftTrigger = (typeof DRIFT_TRIGGERS)[number];

const environmentName = z.string().regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be an environment name');

export const driftScanRequestSchema = z.strictObject({
  /** Default: the manifest's first drift pair (production → regression). */
  from: environmentName.optional(),
  to: environmentName.optional(),
  /** Components to compare; default: every component of either environment. */
  components: z.array(z.string().min(1).max(100)).min(1).max(500).optional(),
  trigger: z.enum(DRIFT_TRIGGERS).default('manual'),
  requestedBy: z.string().min(1).max(100).optional(),
});

export type DriftScanRequest = z.output<typeof driftScanRequestSchema> & {
  manifestDigest?: string;
  /**
   * Chosen by the client that starts the scan (scanIdFor), so that it can name the scan at once;
   * a scan without one (a schedule's) takes one from its start time and run id.
   */
  scanId?: string;
};

/**
 * A scan's id, `20261130-110226-ab09d8`: its start time to the second, UTC, sortable, and the
 * last six hex digits of something unique (a run id's random end: run ids begin with their time,
 * so two scans started in the same second share their start).
 */
export function scanIdFor(start: Date, unique: string): string {
  const iso = start.toISOString();
  return `${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}-${unique.replace(/-/g, '').slice(-6)}`;
}

/** One component compared on both sides, and the kind's first question. */
export interface DriftComponentPair {
  component: string;
  fromQueue: string;
  toQueue: string;
  question: DriftQuestion;
}

/** Findings about the application version carry this in place of a component name. */
export const APP_VERSION_COMPONENT = '(app version)';

/**
 * Aspects of the findings the scan itself reports, whatever the kinds: a component on one side
 * only or of another kind on each, a version that differs, a side that could not be read.
 */
export const SCAN_DRIFT_ASPECTS = ['component', 'version', 'unreadable'] as const;

export interface DriftScanPlan {
  scanId: string;
  from: string;
  to: string;
  pairs: DriftComponentPair[];
  /** Whether either environment names where its application version is read. */
  appVersion: boolean;
  fromQueue: string;
  toQueue: string;
  heartbeatTimeoutMs: number;
  /** History bytes past which the workflow continues as new (the manifest's drift.historyBytes). */
  historyBytes: number;
}

/** Where a scan that continued as a new run picks up: the plan, the progress, the questions left. */
export interface DriftScanContinuation {
  plan: DriftScanPlan;
  status: DriftScanStatus;
  /** Per component still comparing: questions not asked yet, and how many were asked. */
  pending: Record<string, { queue: DriftQuestion[]; asked: number }>;
  failures: string[];
  /** Components whose comparison failed so far (absent in runs recorded before it). */
  unreadable?: UnreadableComponent[];
  /** Runs so far, this one included. */
  runs: number;
}

/** A component a scan could not compare: an agent could not read a side, or the comparison failed. */
export interface UnreadableComponent {
  component: string;
  error: string;
}

export type SeverityCounts = Record<Severity, number>;

export interface DriftScanSummary {
  scanId: string;
  from: string;
  to: string;
  status: 'completed' | 'failed';
  /** Findings not allowed and not resolved, by severity. */
  counts: SeverityCounts;
  allowed: number;
  new: number;
  resolved: number;
  /** Whether an alert (or a resolved message) was sent for this scan, and why not otherwise. */
  alert: { sent: 'alert' | 'resolved' | 'none'; reason: string };
  error?: string;
  /**
   * Components the scan could not compare, each also an `unreadable` finding; the others'
   * findings stand. A scan that could compare none of its components fails instead.
   */
  unreadable?: string[];
  /** Runs of the workflow the scan took, when it continued as new (its history grew large). */
  runs?: number;
}

export interface DriftComponentProgress {
  state: 'comparing' | 'done' | 'failed';
  rounds: number;
  differences: number;
  /** Files indexed and hashed on each side (files components), for the report and the bench. */
  index?: Record<'from' | 'to', { files: number; hashed: number; ms: number }>;
}

export interface DriftScanStatus {
  scanId: string;
  from: string;
  to: string;
  state: 'starting' | 'comparing' | 'completed' | 'failed';
  components: Record<string, DriftComponentProgress>;
  summary?: DriftScanSummary;
  /** Runs of the workflow this scan took: it continues as a new run when its history grows large. */
  runs?: number;
}

/**
 * Workflow id of a pair's scan: a second request while one runs attaches to it. Prefixed with
 * the manifest's task queue, as schedules and locks are: two rewind installations sharing a
 * Temporal namespace must not attach to each other's scans.
 */
export function driftScanWorkflowId(taskQueue: string, from: string, to: string): string {
  return `${taskQueue}-drift-scan-${from}-${to}`;
}
