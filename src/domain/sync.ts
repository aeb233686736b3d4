// Re-syncing regression with production: the shapes the sync workflow, its activities and the
// CLI share. Pure: workflow code imports it.
import { z } from 'zod';
import type { ComponentSnapshot } from './cross-section';
import type { DriftScanSummary } from './drift-scan';

const environmentName = z.string().regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be an environment name');

export const syncRequestSchema = z.strictObject({
  /** The reference (default: the manifest's first drift pair's `from`). */
  from: environmentName.optional(),
  /** The environment brought in line (default: that pair's `to`). */
  to: environmentName.optional(),
  components: z.array(z.string().min(1).max(100)).min(1).max(500),
  requestedBy: z.string().min(1).max(100),
  reason: z.string().max(500).optional(),
});
export type SyncRequest = z.output<typeof syncRequestSchema> & { manifestDigest?: string };

/** What a component keeps of its own when it is synced: what the drift rules allow to differ. */
export interface SyncKeep {
  /** Paths (files kind) left exactly as they are. */
  paths: string[];
  /** Config keys set back to their own values after the restore, by file path. */
  keys: Record<string, string[]>;
}

export interface SyncComponentPlan {
  component: string;
  /** Findings (not allowed) the sync resolves. */
  findings: number;
  autoFixable: boolean;
  keep: SyncKeep;
  /** What the sync overwrites in the target, in the component kind's words. */
  overwrites?: string;
  /**
   * The first findings it resolves, as `changed app.yaml:database.pool.max`; a secret's
   * (its value redacted) says so, since the target's own secret is overwritten.
   */
  changes?: string[];
  /** Findings left out of `changes`. */
  moreChanges?: number;
}

export interface SyncContext {
  from: string;
  to: string;
  fromQueue: string;
  toQueue: string;
  /** Components in `to`'s dependency order. */
  components: string[];
  heartbeatTimeoutMs: number;
  approvalTimeoutMs: number;
  approvers: string[];
  allowSelfApproval: boolean;
}

export type SyncState =
  'running' | 'awaiting-approval' | 'completed' | 'in-line' | 'compensated' | 'rejected' | 'timed-out' | 'failed';

export interface SyncStatus {
  from: string;
  to: string;
  requestedBy: string;
  state: SyncState;
  phase: 'scan' | 'approval' | 'snapshot' | 'execute' | 'verify' | 'compensate' | 'complete';
  components: Record<string, { state: string; findings?: number; note?: string }>;
  plan?: SyncComponentPlan[];
  /** Whether approval is needed: some finding is not auto-fixable. */
  needsApproval?: boolean;
  approvedBy?: string;
  rejectedBy?: string;
  scanBefore?: string;
  scanAfter?: DriftScanSummary;
  source?: Record<string, ComponentSnapshot>;
  safety?: Record<string, ComponentSnapshot>;
  cause?: string;
}

/** `sync-regression-20261129-154301-3fa2`: the environment it changes, and when. */
export function syncWorkflowId(to: string, at: Date, suffix: string): string {
  const iso = at.toISOString();
  return `sync-${to}-${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}-${suffix}`;
}
