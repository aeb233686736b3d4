// Every message a running workflow accepts or answers, in one place, with zod schemas for the
// payloads. Signals carry a request id so a double-clicked button counts once.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import { z } from 'zod';
import type { RollbackStatus } from './rollback';
import type { SnapshotStatus } from './snapshot';

export const decisionPayloadSchema = z.strictObject({
  user: z.string().min(1).max(100),
  requestId: z.string().min(1).max(100),
  comment: z.string().max(500).optional(),
  /** The approver accepts that the plan loses data (needed when the plan is destructive). */
  acceptDataLoss: z.boolean().optional(),
});
export type DecisionPayload = z.infer<typeof decisionPayloadSchema>;

export const approveSignal = defineSignal<[DecisionPayload]>('approve');
export const rejectSignal = defineSignal<[DecisionPayload]>('reject');
export const rollbackStatusQuery = defineQuery<RollbackStatus>('status');
export const snapshotStatusQuery = defineQuery<SnapshotStatus>('status');
/** Sent by a rollback to its environment's lock workflow when it no longer needs the lock. */
export const releaseLockSignal = defineSignal('release');
