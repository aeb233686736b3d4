// The rollback's vocabulary: request, phases, states, plan and status. Pure: the workflow,
// the activities, the client and the CLI all share these types.
import { z } from 'zod';
import type { FingerprintSummary } from './cross-section';

export const TRIGGERS = ['manual', 'alert', 'drill'] as const;
export type Trigger = (typeof TRIGGERS)[number];

export const rollbackTargetSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('version'), version: z.string().min(1).max(200) }),
  z.strictObject({ kind: z.literal('cross-section'), id: z.string().min(1).max(100) }),
  /** A moment: point-in-time recovery for databases that have it, the newest cross-section before it for the rest. */
  z.strictObject({ kind: z.literal('time'), time: z.iso.datetime({ offset: true }) }),
]);
export type RollbackTarget = z.infer<typeof rollbackTargetSchema>;

export const STRATEGIES = ['undo', 'restore', 'pitr'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export const rollbackRequestSchema = z.strictObject({
  environment: z.string().min(1),
  target: rollbackTargetSchema,
  components: z.array(z.string().min(1)).min(1).optional(),
  reason: z.string().max(500).optional(),
  requester: z.string().min(1).max(100),
  trigger: z.enum(TRIGGERS).default('manual'),
  dryRun: z.boolean().default(false),
  /** Overrides the manifest's default strategy for every postgres component of the run. */
  strategy: z.enum(STRATEGIES).optional(),
  /** The requester accepts, up front, a plan that loses data. */
  acceptDataLoss: z.boolean().default(false),
});
export type RollbackRequest = z.output<typeof rollbackRequestSchema>;

export const PHASES = ['decide', 'prepare', 'approval', 'execute', 'verify', 'complete'] as const;
export type Phase = (typeof PHASES)[number] | 'compensate';

export const STATES = [
  'running',
  'awaiting-approval',
  'completed',
  'compensated',
  'rejected',
  'timed-out',
  'failed',
  'cancelled',
] as const;
export type RollbackState = (typeof STATES)[number];
export const FINAL_STATES: readonly RollbackState[] = ['completed', 'compensated', 'rejected', 'timed-out', 'failed', 'cancelled'];

export function describeTarget(target: RollbackTarget): string {
  if (target.kind === 'version') return `version ${target.version}`;
  if (target.kind === 'time') return `time ${target.time}`;
  return `cross-section ${target.id}`;
}

/** The short form kept in the RewindTarget search attribute. */
export function targetKeyword(target: RollbackTarget): string {
  if (target.kind === 'version') return `version:${target.version}`;
  if (target.kind === 'time') return `time:${target.time}`;
  return target.id;
}

/** What the decide phase learns from the manifest and the repository. */
export interface RollbackContext {
  environment: string;
  envTaskQueue: string;
  target: { crossSectionId: string; version?: string; time: string };
  components: RollbackComponent[];
  approvers: string[];
  requiredApprovals: number;
  allowSelfApproval: boolean;
  approvalTimeoutMs: number;
  heartbeatTimeoutMs: number;
  previewPaths: number;
}

export interface RollbackComponent {
  name: string;
  kind: string;
  path: string;
  /** postgres: how the database is brought back (the request's override or the manifest's default). */
  strategy?: Strategy;
  /** postgres, pitr strategy: the moment to recover to. */
  targetTime?: string;
  dependsOn: string[];
  targetSnapshotId: string;
  targetListingSnapshotId: string;
  targetFingerprint: FingerprintSummary;
}

export type ChangeOp = 'add' | 'change' | 'remove' | 'mode';

export interface ComponentPlan {
  component: string;
  kind: string;
  path: string;
  targetSnapshotId: string;
  safetySnapshotId: string;
  added: number;
  changed: number;
  removed: number;
  /** Entries whose content is equal but whose mode or type bits differ. */
  modeChanged: number;
  /** Bytes of the files the restore adds or rewrites. */
  bytesToWrite: number;
  /** The first changes, sorted by path; the full list is in `changeListFile`. */
  preview: { op: ChangeOp; path: string }[];
  /** Changes left out of `preview`. */
  more: number;
  changeListFile: string;
  /** postgres: the strategy this plan uses, and what each strategy would keep and lose. */
  strategy?: Strategy;
  impact?: StrategyImpact[];
  /** The plan loses data (rows, tables or columns written since the target). */
  destructive?: boolean;
}

export interface StrategyImpact {
  strategy: Strategy;
  available: boolean;
  /** Why the strategy cannot be used. */
  unavailable?: string;
  destructive: boolean;
  /** What the strategy would lose, one line each, e.g. "column public.orders.total (1,204 rows)". */
  losses: string[];
  /** What the strategy keeps that another would lose. */
  keeps?: string;
}

export interface RollbackPlan {
  safetyCrossSectionId: string;
  /** Waves of components: each wave runs after the previous one, its members in parallel. */
  order: string[][];
  components: ComponentPlan[];
  totals: { added: number; changed: number; removed: number; modeChanged: number; bytesToWrite: number };
  /** Some component's plan loses data: approval then needs `acceptDataLoss`. */
  destructive?: boolean;
}

export type StepState =
  | 'pending'
  | 'running'
  | 'done'
  | 'failed'
  | 'not-run'
  | 'compensating'
  | 'compensated'
  | 'compensation-failed';

export interface RestoreOutcome {
  /** The component already matched the target, so nothing was written (a retried step). */
  alreadyAtTarget: boolean;
  /**
   * `targeted`: only the paths whose content differed were restored; `whole-tree`: restic
   * restored the whole snapshot (see `note` for why).
   */
  method?: 'targeted' | 'whole-tree';
  note?: string;
  /** postgres: how the database was brought back. */
  strategy?: 'undo' | 'restore' | 'pitr';
  /** postgres, restore strategy: how long the database refused connections during the swap. */
  swapWindowMs?: number;
  /** postgres, undo strategy: the versions undone, newest first. */
  migrationsUndone?: string[];
  filesRestored: number;
  filesSkipped: number;
  filesDeleted: number;
  bytesRestored: number;
  durationMs: number;
}

export interface StepStatus {
  component: string;
  state: StepState;
  startedAt?: string;
  endedAt?: string;
  outcome?: RestoreOutcome;
  verify?: 'passed' | 'failed';
  error?: string;
  /** What compensation did for this component. */
  compensation?: string;
}

export interface Decision {
  user: string;
  requestId: string;
  at: string;
  comment?: string;
  acceptDataLoss?: boolean;
}

export interface Refusal extends Decision {
  action: 'approve' | 'reject';
  reason: string;
}

export interface PhaseTiming {
  startedAt: string;
  endedAt?: string;
  durationMs?: number;
}

export interface RollbackStatus {
  workflowId: string;
  environment: string;
  target: RollbackTarget;
  trigger: Trigger;
  requester: string;
  reason?: string;
  dryRun: boolean;
  components?: string[];
  strategy?: Strategy;
  acceptDataLoss?: boolean;
  phase: Phase;
  state: RollbackState;
  /** Why the run ended as it did, for every state but completed. */
  cause?: string;
  targetCrossSection?: RollbackContext['target'];
  approvers?: string[];
  requiredApprovals?: number;
  /** False in production: the requester is not among those who may approve. */
  requesterMayApprove?: boolean;
  approvalDeadline?: string;
  phases: Partial<Record<Phase, PhaseTiming>>;
  plan?: RollbackPlan;
  steps: Record<string, StepStatus>;
  approvals: Decision[];
  rejection?: Decision;
  refusals: Refusal[];
  report?: string;
  reportFile?: string;
}

/** The environment lock's workflow id (workflows/lock.ts), given the environment's agent task queue. */
export function lockWorkflowId(envTaskQueue: string): string {
  return `lock-${envTaskQueue}`;
}
