// A component kind's I/O half: what the agent does with a component. A directory of files is
// listed and restored path by path, a database is dumped and swapped. The agent's activities
// get the driver from drivers.ts and do the rest (progress, error conversion) the same way
// for every kind. docs/component-kinds.md describes the contract.
import type { ProgressReporter } from '../activities/progress';
import type { ComponentSnapshot, SnapshotLabels, SnapshotOrigin } from '../domain/cross-section';
import type { ComponentPlan, FingerprintSummary, KindDetails, RestoreOutcome, VerifyOutcome } from './core';
import type { DescribeContext, DriftAnswer, DriftQuestion } from './drift';
import type { SyncKeep } from '../domain/sync';
import type { Logger } from '../platform/logger';
import type { SnapshotStore } from '../snapshots/store';

export interface SnapshotComponentRequest {
  environment: string;
  component: string;
  crossSectionId: string;
  members: string[];
  origin: SnapshotOrigin;
  version?: string;
  reason?: string;
  workflowId?: string;
  /**
   * A rollback's safety snapshot: when the component is exactly this snapshot (its target), the
   * rollback will not write it, so no new snapshot is needed; this one is returned.
   */
  unlessAt?: ComponentSnapshot;
}

export interface RestoreComponentRequest {
  environment: string;
  component: string;
  snapshotId: string;
  listingSnapshotId: string;
  fingerprint: FingerprintSummary;
  purpose: 'rollback' | 'compensation';
  /** How to bring the component back, for kinds with more than one way (StepOptions). */
  strategy?: string;
  /** Names this step (workflow, purpose, component) so a retry recognises its own work. */
  idempotencyKey?: string;
  /** The moment to recover to (point-in-time recovery). */
  targetTime?: string;
  /**
   * Compensation: the rollback step it undoes. The driver decides what putting the component
   * back takes, e.g. nothing when that step changed nothing.
   */
  compensates?: { idempotencyKey: string; strategy?: string };
  /** The run whose prepare staged the target's data (stage): what is still valid is moved into place. */
  stagedFor?: string;
  /**
   * A sync: what the component keeps of its own (what the drift rules allow to differ) while it
   * takes the snapshot's state. The result then differs from the snapshot's fingerprint by them.
   */
  keep?: SyncKeep;
}

export interface StageComponentRequest {
  environment: string;
  component: string;
  workflowId: string;
  target: { snapshotId: string; listingSnapshotId: string; fingerprint: FingerprintSummary };
  strategy?: string;
}

/** Whether the data a rollback writes could be read from the repository before approval. */
export interface StageOutcome {
  readable: boolean;
  /** What was read ("2 files (4.1 KiB) read back and staged"), or why it could not be. */
  note: string;
  /** Bytes read back and checked. */
  bytes: number;
}

export interface VerifyComponentRequest {
  environment: string;
  component: string;
  expected: FingerprintSummary;
  listingSnapshotId: string;
  /** The strategy the step used (after point-in-time recovery there is no snapshot to equal). */
  strategy?: string;
}

export interface AssessComponentRequest {
  environment: string;
  component: string;
  workflowId: string;
  /**
   * The component as it is now (the rollback's safety snapshot). Absent for kinds that plan
   * from the live component (`plansFromLiveState`) while their safety snapshot is being taken.
   */
  safety?: ComponentSnapshot;
  target: { snapshotId: string; listingSnapshotId: string; fingerprint: FingerprintSummary };
  strategy?: string;
  targetTime?: string;
  previewPaths: number;
}

/** A component's listing documents, by the id of the snapshot that stores them. */
export interface ListingDocuments {
  save(listingSnapshotId: string, text: string): Promise<void>;
  load(listingSnapshotId: string): Promise<string>;
}

export interface StepContext {
  environment: string;
  /** Where the agent keeps full change lists that plans link to. */
  plansDir: string;
  store: SnapshotStore;
  logger: Logger;
  progress: ProgressReporter;
  /** Held by every restic run that reads or writes this component (see ResticRepository). */
  lockFile: string;
  listings: ListingDocuments;
  /** The agent's folder for data staged before approval (one folder per run). */
  stagingRoot: string;
}

export type RestoreResult = Omit<RestoreOutcome, 'durationMs'>;
export type { VerifyOutcome };

export interface ComponentDriver<C> {
  /** Takes the component's data snapshot and its listing (what plans and verify read). */
  snapshot(component: C, req: SnapshotComponentRequest, ctx: StepContext): Promise<ComponentSnapshot>;
  /**
   * Brings the component to the snapshot; first checks whether it is there already. For
   * compensation, decides from `req.compensates` whether the undone step changed anything.
   */
  restore(component: C, req: RestoreComponentRequest, ctx: StepContext): Promise<RestoreResult>;
  verify(component: C, req: VerifyComponentRequest, ctx: StepContext): Promise<VerifyOutcome>;
  /** What rolling back to the target would change, and what each strategy would lose. */
  assess(component: C, req: AssessComponentRequest, ctx: StepContext): Promise<ComponentPlan>;
  /**
   * Before approval: reads what a rollback to the target would write, proving it readable, and
   * may keep it for restore (`RestoreComponentRequest.stagedFor`). A kind without it is not checked.
   */
  stage?(component: C, req: StageComponentRequest, ctx: StepContext): Promise<StageOutcome>;
  /**
   * Drift scans: answers one of the kind's questions about the component as it is now (see
   * drift.ts). Answers are bounded and hold no secret in clear: they travel in workflow history.
   */
  describe(component: C, question: DriftQuestion, ctx: DescribeContext): Promise<DriftAnswer>;
  /**
   * What a restore asked for in `later`, once its run completed and the time passed. Returns
   * what it did, or why it did nothing (the component changed since).
   */
  followUp?(component: C, req: FollowUpRequest, ctx: StepContext): Promise<string>;
}

export interface FollowUpRequest {
  environment: string;
  component: string;
  details: KindDetails;
}

/** The tags of a component's data snapshot, from the request that takes it. */
export function snapshotLabels(req: SnapshotComponentRequest, fingerprint: FingerprintSummary): SnapshotLabels {
  return {
    environment: req.environment,
    component: req.component,
    crossSectionId: req.crossSectionId,
    role: 'data',
    origin: req.origin,
    members: req.members,
    fingerprint,
    ...(req.version !== undefined ? { version: req.version } : {}),
    ...(req.reason !== undefined ? { reason: req.reason } : {}),
    ...(req.workflowId !== undefined ? { workflowId: req.workflowId } : {}),
  };
}
