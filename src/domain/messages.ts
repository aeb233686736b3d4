// Every message a running workflow accepts or answers, in one place, with zod schemas for the
// payloads. Decisions (approve, reject, cancel) are Updates: a validator refuses a malformed or
// late request (and a refusal already recorded often enough) without an Update event in
// history, the handler answers accepted or refused with
// the reason, and the client's Update id is the request id, so the server counts a repeated
// request once. The approve/reject signals remain only for runs started before the Updates.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import type { Phase, RollbackState, RollbackStatus } from './rollback';
import type { SnapshotStatus } from './snapshot';
import type { DriftScanStatus } from './drift-scan';
import type { SyncStatus } from './sync';

const user = z.string().min(1).max(100);
const requestId = z.string().min(1).max(100);

export const decisionPayloadSchema = z.strictObject({
  user,
  requestId,
  comment: z.string().max(500).optional(),
  /** The approver accepts that the plan loses data (needed when the plan is destructive). */
  acceptDataLoss: z.boolean().optional(),
});
export type DecisionPayload = z.infer<typeof decisionPayloadSchema>;

export const cancelPayloadSchema = z.strictObject({
  user,
  requestId,
  reason: z.string().max(500).optional(),
});
export type CancelPayload = z.infer<typeof cancelPayloadSchema>;

/** After a failed verification with `onFailure: ask`: keep the result, or put everything back. */
export const verificationDecisionPayloadSchema = z.strictObject({
  decision: z.enum(['accept', 'compensate']),
  user,
  requestId,
  comment: z.string().max(500).optional(),
});
export type VerificationDecisionPayload = z.infer<typeof verificationDecisionPayloadSchema>;

/** The answer to a decision: it counted, or it was refused and why; and where the run is now. */
export interface DecisionOutcome {
  accepted: boolean;
  reason?: string;
  state: RollbackState;
  phase: Phase;
  /** Distinct approvals counted so far, and how many the run needs. */
  approvals: number;
  requiredApprovals: number;
}

export const approveUpdate = defineUpdate<DecisionOutcome, [DecisionPayload]>('approve');
export const rejectUpdate = defineUpdate<DecisionOutcome, [DecisionPayload]>('reject');
/** Records who cancels and why; the client then requests the run's cancellation. */
export const cancelUpdate = defineUpdate<DecisionOutcome, [CancelPayload]>('cancel');

/** accept or compensate a run that waits after a failed verification. */
export const verificationDecisionUpdate = defineUpdate<DecisionOutcome, [VerificationDecisionPayload]>(
  'verificationDecision',
);

export const rollbackStatusQuery = defineQuery<RollbackStatus>('status');
/**
 * Answers, with the status, as soon as the run no longer just runs: it awaits approval, or it
 * ended (a dry run, a refusal). `rollback start` waits on it instead of asking over and over.
 */
export const planReadyUpdate = defineUpdate<RollbackStatus>('planReady');
export const snapshotStatusQuery = defineQuery<SnapshotStatus>('status');
export const driftScanStatusQuery = defineQuery<DriftScanStatus>('status');
export const syncStatusQuery = defineQuery<SyncStatus>('status');
/** Sent by a rollback to its environment's lock workflow when it no longer needs the lock. */
export const releaseLockSignal = defineSignal('release');

/** Runs started before the Updates received decisions as these signals (docs/versioning.md). */
export const legacyApproveSignal = defineSignal<[DecisionPayload]>('approve');
export const legacyRejectSignal = defineSignal<[DecisionPayload]>('reject');

/** The first problem of a payload, as "field: message". */
export function payloadProblem(schema: z.ZodType, payload: unknown): string | undefined {
  const parsed = schema.safeParse(payload);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0]!;
  return `${issue.path.join('.') || 'request'}: ${issue.message}`;
}
