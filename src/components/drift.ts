// What a drift scan asks of a component kind. A scan compares one component in two
// environments that live on different hosts, so a kind compares in rounds: the workflow asks
// both agents the same question (driver.describe), the control worker compares the two answers
// (kind.drift.compare), which yields differences and the next questions, e.g. "the children of
// these directories whose digests differ". Identical components cost one round; payloads stay
// bounded because each answer is. Pure: workflow code imports these types.
import type { KindDetails } from './core';

export const SEVERITIES = ['critical', 'warning', 'info'] as const;

/** What a difference's detail shows in place of a secret's value: `«redacted» changed`. */
export const REDACTED = '«redacted»';
export type Severity = (typeof SEVERITIES)[number];

/** Relative to the scan's `from` side (production): `added` exists only in `to`, `removed` only in `from`. */
export type DriftChange = 'added' | 'removed' | 'changed';

/** One difference a kind found, before the manifest's rules classify it. */
export interface DriftDifference {
  /** What differs: a path, `path:dotted.key`, a schema object, `table public.orders row (id)=(5)`. */
  subject: string;
  change: DriftChange;
  /** How it differs, for people: `10 → 20` (from → to), `«redacted» changed`, `mode 644 → 755`. */
  detail: string;
  /**
   * The severity the kind itself gives, when it knows better than the rules' default (a
   * dangerous pickle global is critical). Rules can still allow or reclassify it.
   */
  severity?: Severity;
  /** The kind's category of difference: `content`, `key`, `mode`, `schema`, `rows`, `sample`, `pickle` … */
  aspect: string;
  /**
   * This difference kept the scan from looking inside something (a config file that does not
   * parse, a directory or component on one side only): the component's earlier findings whose
   * subject starts with `prefix` (and of `aspect`, when given) were not seen, so they are not
   * called resolved.
   */
  unseen?: { prefix: string; aspect?: string };
}

/** What an agent did to answer, when it indexed the component (files): shown in the scan's status. */
export interface DriftAnswerStats {
  files: number;
  hashed: number;
  ms: number;
}

/** The stats an answer carries in its `stats` field, if any. */
export function answerStats(answer: DriftAnswer): DriftAnswerStats | undefined {
  const stats = (answer as { stats?: Partial<DriftAnswerStats> }).stats;
  if (typeof stats?.files !== 'number' || typeof stats.hashed !== 'number' || typeof stats.ms !== 'number')
    return undefined;
  return { files: stats.files, hashed: stats.hashed, ms: stats.ms };
}

/** A kind's question to one agent about one component; `kind` names the kind that reads it. */
export type DriftQuestion = KindDetails;
/**
 * One agent's answer; bounded in size, so it fits a workflow payload. It may carry `stats`
 * (DriftAnswerStats), which the scan's status shows whatever the kind.
 */
export type DriftAnswer = KindDetails;

export interface DriftComparison {
  differences: DriftDifference[];
  /** Questions for another round, asked of both sides. */
  next: DriftQuestion[];
}

/** What a kind's agent needs to describe a component for a scan. */
export interface DescribeContext {
  /** The environment and component described (what an app kind's status command is told). */
  environment?: string;
  component?: string;
  /** The scan asking; an agent may keep what it read for the rest of the scan. */
  scanId: string;
  /**
   * HMAC key for values that must be compared without being revealed (secret config values,
   * sampled rows). Both agents derive the same key from the repository password.
   */
  hashKey: string;
  /** Manifest-listed keys (globs on dotted keys) whose values are secret, besides the usual names. */
  secretKeys: readonly string[];
  /** A folder the kind may keep this component's drift state in, across scans and restarts. */
  stateDir: string;
  signal?: AbortSignal;
  logger?: { warn(fields: object, message: string): void };
}

/** A difference the pair's previous completed scan found in a component and that still stood. */
export interface PreviousDifference {
  aspect: string;
  subject: string;
}

/** The environments a scan compares, by name. */
export interface DriftSides {
  from: string;
  to: string;
}

/** The pure half of a kind's drift comparison. */
export interface KindDrift<C> {
  /**
   * The first question of a scan. `previous` lists what the pair's last scan found in this
   * component (capped): drift tends to persist until someone fixes it, so a kind may ask for
   * those parts at once and spare a round when they are all that differs.
   */
  firstQuestion(component: C, previous: readonly PreviousDifference[]): DriftQuestion;
  /**
   * Compares the two sides' answers to one question. `sides` names the environments, for the
   * details (`the regression copy could not be read`).
   */
  compare(
    question: DriftQuestion,
    from: DriftAnswer,
    to: DriftAnswer,
    component: C,
    sides: DriftSides,
  ): DriftComparison;
  /**
   * What a sync of this component overwrites in `sides.to`, said before anyone approves it
   * (a database is replaced whole: what only the target wrote is lost).
   */
  syncOverwrites(component: C, sides: DriftSides): string;
}
