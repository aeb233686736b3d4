// The rollback's vocabulary: request, phases, states, plan and status. Pure: the workflow,
// the activities, the client and the CLI all share these types.
import { z } from 'zod';
import type { ComponentPlan, FingerprintSummary, RestoreOutcome } from '../components/core';
import { ALL_STRATEGIES } from '../components/registry';
import type { CheckResult, VerifyFailurePolicy } from '../verify/section';

export type { ComponentPlan, Difference, RestoreOutcome, StrategyImpact } from '../components/core';

export const TRIGGERS = ['manual', 'alert', 'drill'] as const;
export type Trigger = (typeof TRIGGERS)[number];

export const rollbackTargetSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('version'), version: z.string().min(1).max(200) }),
  z.strictObject({ kind: z.literal('cross-section'), id: z.string().min(1).max(100) }),
  /** A moment: point-in-time recovery for databases that have it, the newest cross-section before it for the rest. */
  z.strictObject({ kind: z.literal('time'), time: z.iso.datetime({ offset: true }) }),
]);
export type RollbackTarget = z.infer<typeof rollbackTargetSchema>;

/** Every strategy some component kind offers (postgres: undo, restore, pitr). */
export const STRATEGIES = ALL_STRATEGIES;
export type Strategy = string;

export const rollbackRequestSchema = z.strictObject({
  environment: z.string().min(1),
  target: rollbackTargetSchema,
  components: z.array(z.string().min(1)).min(1).optional(),
  reason: z.string().max(500).optional(),
  requester: z.string().min(1).max(100),
  trigger: z.enum(TRIGGERS).default('manual'),
  /**
   * The manifest's trigger rule (`triggers.rules[].name`) behind an alert-triggered run. Only the
   * Alertmanager webhook sets it; decide looks the rule up again for its autoApprove.
   */
  triggerRule: z.string().min(1).max(100).optional(),
  dryRun: z.boolean().default(false),
  /** Overrides the manifest's default strategy for every component whose kind offers it. */
  strategy: z.enum(STRATEGIES).optional(),
  /** The requester accepts, up front, a plan that loses data. */
  acceptDataLoss: z.boolean().default(false),
  /** The digest of the manifest the request was made with (manifest/digest.ts). */
  manifestDigest: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});

/** An idempotency key: the same key for the same environment always names the same run. */
export const requestIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9._:-]{1,80}$/, 'must be 1 to 80 characters of A-Z, a-z, 0-9 and . _ : -');

/** The run a keyed request names: a repeated request finds it instead of starting another. */
export function keyedRollbackId(environment: string, requestId: string): string {
  return `rollback-${environment}-req-${requestId}`;
}
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
export const FINAL_STATES: readonly RollbackState[] = [
  'completed',
  'compensated',
  'rejected',
  'timed-out',
  'failed',
  'cancelled',
];

/**
 * `rewind rollback status` exits with these, so scripts can tell how a run ended without
 * parsing: 0 while it runs or waits, and when it completed; 1 stays for errors of the command.
 */
export const STATUS_EXIT_CODES: Record<RollbackState, number> = {
  running: 0,
  'awaiting-approval': 0,
  completed: 0,
  compensated: 2,
  failed: 3,
  rejected: 4,
  'timed-out': 5,
  cancelled: 6,
};

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
  /** The trigger rule that approves this run itself (`triggers.rules[].autoApprove`). */
  autoApproval?: AutoApproval;
  /** The environment's `verify` section: its checks (by name), failure policy and waves. */
  verification?: Verification;
}

export interface Verification {
  /** Every check's name, and which run after a wave holding which components (`after`). */
  checks: { name: string; after?: string[] }[];
  onFailure: VerifyFailurePolicy;
  askDeadlineMs: number;
  askDefault: 'compensate' | 'accept';
  /** The staged rollout, restricted to the run's components (a last wave holds the rest). */
  waves: { name: string; components: string[] }[];
}

export interface AutoApproval {
  rule: string;
  /** The rule approves a plan that loses data too. */
  acceptDataLoss: boolean;
}

export interface RollbackComponent {
  name: string;
  kind: string;
  /** Where it lives (componentLocation). */
  path: string;
  /** How its kind brings it back (the request's override or the manifest's default). */
  strategy?: Strategy;
  /** The moment to recover to, for point-in-time recovery. */
  targetTime?: string;
  dependsOn: string[];
  targetSnapshotId: string;
  targetListingSnapshotId: string;
  targetFingerprint: FingerprintSummary;
}

export interface PlanWave {
  name: string;
  order: string[][];
  checks: string[];
}

export interface RollbackPlan {
  safetyCrossSectionId: string;
  /** Waves of components: each wave runs after the previous one, its members in parallel. */
  order: string[][];
  /**
   * A staged rollout (`verify.waves`): each wave's components (in dependency order) and the
   * checks that run after it; the last wave's are those of the verify phase. Absent: one stage.
   */
  waves?: PlanWave[];
  /** The checks verify runs, and what a failure leads to. */
  verification?: { checks: string[]; onFailure: VerifyFailurePolicy };
  components: ComponentPlan[];
  totals: { added: number; changed: number; removed: number; bytesToWrite: number };
  /** Some component's plan loses data: approval then needs `acceptDataLoss`. */
  destructive?: boolean;
}

export type StepState =
  'pending' | 'running' | 'done' | 'failed' | 'not-run' | 'compensating' | 'compensated' | 'compensation-failed';

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
  /** Work left for after the run (a blue/green step's stop of the previous colour), and when. */
  followUp?: { what: string; at: string; workflowId: string };
}

export interface VerificationWait {
  /** Whether the run waits for `accept` or `compensate` now. */
  awaiting: boolean;
  /** What failed. */
  failure: string;
  /** After which wave (absent: in verify). */
  wave?: string;
  deadline: string;
  /** What the deadline decides. */
  default: 'compensate' | 'accept';
  /** How it was settled: by an approver, or by the deadline (`user` is then "deadline"). */
  decision?: { decision: 'compensate' | 'accept'; user: string; at: string; requestId: string; comment?: string };
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
  /** How many times this user was refused this way (absent: once); `at` is the first. */
  count?: number;
  lastAt?: string;
}
export type DecisionRecord = Refusal;

export interface Cancellation {
  user: string;
  reason?: string;
  requestId: string;
  at: string;
  /** The phase the run was in when the cancel arrived. */
  phase: Phase;
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
  /** The trigger rule behind an alert-triggered run. */
  triggerRule?: string;
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
  /**
   * The run's trigger rule may approve it: `applied` when it did, else why a human must
   * (the plan loses data and the rule does not accept that).
   */
  autoApproval?: { rule: string; applied: boolean; at: string; reason?: string };
  phases: Partial<Record<Phase, PhaseTiming>>;
  plan?: RollbackPlan;
  steps: Record<string, StepStatus>;
  approvals: Decision[];
  rejection?: Decision;
  /** Refused decisions, each repeat counted on its record (rollback-rules.ts recordRefusal). */
  refusals: Refusal[];
  /** Refusals not recorded because the list was full. */
  refusalsOmitted?: number;
  cancellation?: Cancellation;
  /** Verification checks run so far, after each wave and in verify, in order. */
  checks?: CheckResult[];
  /** A failed verification the run waits on (`onFailure: ask`), or how it was settled. */
  verification?: VerificationWait;
  /** What the run completed despite (a verification accepted with a warning). */
  warnings?: string[];
  report?: string;
  reportFile?: string;
}

/** The environment lock's workflow id (workflows/lock.ts), given the environment's agent task queue. */
export function lockWorkflowId(envTaskQueue: string): string {
  return `lock-${envTaskQueue}`;
}

/** A run's status before decide. */
export function initialRollbackStatus(request: RollbackRequest, workflowId: string): RollbackStatus {
  return {
    workflowId,
    environment: request.environment,
    target: request.target,
    trigger: request.trigger,
    requester: request.requester,
    dryRun: request.dryRun,
    phase: 'decide',
    state: 'running',
    phases: {},
    steps: {},
    approvals: [],
    refusals: [],
    ...(request.reason !== undefined ? { reason: request.reason } : {}),
    ...(request.components !== undefined ? { components: request.components } : {}),
    ...(request.strategy !== undefined ? { strategy: request.strategy } : {}),
    ...(request.acceptDataLoss ? { acceptDataLoss: true } : {}),
    ...(request.triggerRule !== undefined ? { triggerRule: request.triggerRule } : {}),
  };
}
