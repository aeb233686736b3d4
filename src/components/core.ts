// What every component kind has in common: the shapes of fingerprints, plans, restore and
// verify outcomes that the workflow, the report and the CLI read. Each is a common core plus a
// `details` object that only the kind's own module writes and presents (see registry.ts).
// Pure: workflow code imports these types.

/** One difference between a component's state and another state of it. */
export interface Difference {
  op: 'add' | 'change' | 'remove';
  /** What differs: a path, a schema object, a dotted key, a version. */
  subject: string;
  /** How it differs, when the op alone does not say (e.g. "mode 644 → 755"). */
  detail?: string;
}

/** A difference and the bytes writing it costs; what a kind's full change list holds. */
export interface Change extends Difference {
  bytes: number;
}

/** The kind-specific part of a value: `{ kind: 'files', ... }`, read only by that kind. */
export interface KindDetails {
  kind: string;
}

export interface FingerprintSummary {
  /** Equal digests mean equal states (each kind says what it covers). */
  digest: string;
  /** Size of the state: file contents, a database's size on disk. */
  bytes: number;
  /** Entries its data snapshot's tree holds at least: prepare reads them all back. */
  entries: number;
  details: KindDetails;
}

/** What one strategy of bringing a component back would keep and lose. */
export interface StrategyImpact {
  strategy: string;
  available: boolean;
  /** Why the strategy cannot be used. */
  unavailable?: string;
  destructive: boolean;
  /** What the strategy would lose, one line each, e.g. "column public.orders.total (1,204 rows)". */
  losses: string[];
  /** What the strategy keeps that another would lose. */
  keeps?: string;
}

export interface ComponentPlan {
  component: string;
  kind: string;
  /** Where the component lives (a path, a database with its password hidden). */
  path: string;
  targetSnapshotId: string;
  safetySnapshotId: string;
  added: number;
  changed: number;
  removed: number;
  /** Bytes the restore writes. */
  bytesToWrite: number;
  /** The first differences, in the kind's order; the full list is in `changeListFile`. */
  differences: Difference[];
  /** Differences left out of `differences`. */
  more: number;
  changeListFile: string;
  /** How the component is brought back, for kinds with more than one way. */
  strategy?: string;
  /** What each of the kind's strategies would keep and lose. */
  impact?: StrategyImpact[];
  /** The plan loses data: approval then needs `acceptDataLoss`. */
  destructive: boolean;
  /**
   * Whether the data the restore writes was read from the repository before approval (absent
   * for kinds and strategies that read nothing, and in runs started before this existed).
   */
  targetCheck?: { readable: boolean; note: string };
  /** What the kind's own tool says the step would do (ansible-playbook --check --diff), shown for approval. */
  toolCheck?: { title: string; text: string };
  details: KindDetails;
}

export interface RestoreOutcome {
  /** The component already matched the target, so nothing was written (a retried step). */
  alreadyAtTarget: boolean;
  note?: string;
  /** Bytes written. */
  bytesWritten: number;
  durationMs: number;
  /** What the kind did, for its presenter (absent when nothing was written). */
  details?: KindDetails;
  /**
   * Work the kind asks for once the run has completed and `afterMs` has passed (blue/green:
   * stop the previous colour); the driver's `followUp` does it, given `details`.
   */
  later?: { afterMs: number; what: string; details: KindDetails };
}

export interface VerifyOutcome {
  matches: boolean;
  actual: FingerprintSummary;
  /** The first differences from the target, when it does not match. */
  differences: Difference[];
}
