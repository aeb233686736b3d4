// What rewind does with a component depends on its kind: a directory of files is listed and
// restored path by path, a database is dumped and swapped. Each kind is a driver; the agent's
// activities choose the driver by the manifest's `kind` and do the rest (faults, progress,
// error conversion) the same way for every kind.
import type { ProgressReporter } from '../activities/progress';
import type { ComponentSnapshot, FingerprintSummary, SnapshotLabels, SnapshotOrigin } from '../domain/cross-section';
import type { ComponentPlan, RestoreOutcome, Strategy } from '../domain/rollback';
import type { ListingChange } from '../components/files/listing';
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
}

export interface RestoreComponentRequest {
  environment: string;
  component: string;
  snapshotId: string;
  listingSnapshotId: string;
  fingerprint: FingerprintSummary;
  purpose: 'rollback' | 'compensation';
  /** postgres: how to bring the database back (default: restore the dump). */
  strategy?: Strategy;
  /** Names this step (workflow, purpose, component) so a retry recognises its own work. */
  idempotencyKey?: string;
  /** postgres, pitr strategy: the moment to recover to. */
  targetTime?: string;
  /** Compensation: the rollback step it undoes, so that a step which changed nothing is left alone. */
  compensates?: { idempotencyKey: string; strategy: Strategy };
}

export interface VerifyComponentRequest {
  environment: string;
  component: string;
  expected: FingerprintSummary;
  listingSnapshotId: string;
  /** postgres: after point-in-time recovery there is no snapshot to equal, only a healthy cluster. */
  strategy?: Strategy;
}

export interface VerifyOutcome {
  matches: boolean;
  actual: FingerprintSummary;
  /** The first differences from the target, when it does not match. */
  differences: ListingChange[];
}

export interface AssessComponentRequest {
  environment: string;
  component: string;
  workflowId: string;
  /** The component as it is now (the rollback's safety snapshot). */
  safety: ComponentSnapshot;
  target: { snapshotId: string; listingSnapshotId: string; fingerprint: FingerprintSummary };
  strategy?: Strategy;
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
}

export type RestoreResult = Omit<RestoreOutcome, 'durationMs'>;

export interface ComponentDriver<C> {
  snapshot(component: C, req: SnapshotComponentRequest, ctx: StepContext): Promise<ComponentSnapshot>;
  /** Brings the component to the snapshot; first checks whether it is there already. */
  restore(component: C, req: RestoreComponentRequest, ctx: StepContext): Promise<RestoreResult>;
  verify(component: C, req: VerifyComponentRequest, ctx: StepContext): Promise<VerifyOutcome>;
  /** What rolling back to the target would change, and for a database, what it would lose. */
  assess(component: C, req: AssessComponentRequest, ctx: StepContext): Promise<ComponentPlan>;
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

