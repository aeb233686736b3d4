import { ApplicationFailure } from '@temporalio/common';

// Stable failure types: activities throw `ApplicationFailure` with one of these as `type`,
// so workflows, the CLI and tests can tell failures apart without parsing messages.
export const ErrorType = {
  /** The manifest is invalid or does not declare what was asked for. */
  InvalidRequest: 'InvalidRequest',
  /** No cross-section matches the requested version or id. */
  TargetNotFound: 'TargetNotFound',
  /** The target cross-section lacks a component the rollback needs. */
  CrossSectionIncomplete: 'CrossSectionIncomplete',
  /** The repository password is missing or wrong. */
  RepositoryAccess: 'RepositoryAccess',
  /** restic failed in a way a retry might fix (lock, I/O). */
  ResticFailed: 'ResticFailed',
  /** restic refused the request itself (unknown snapshot, bad pattern): retrying cannot help. */
  ResticRefused: 'ResticRefused',
  /** The component's files kept changing while a snapshot was taken. */
  FilesChanging: 'FilesChanging',
  /** After a restore, the component does not match the target's fingerprint. */
  FingerprintMismatch: 'FingerprintMismatch',
  /** An activity reached an agent of another environment. */
  WrongAgent: 'WrongAgent',
  /** A component path is missing or unusable, or its database unreachable or refusing us. */
  ComponentUnavailable: 'ComponentUnavailable',
  /** The component asked to be tried again later (a command's retry exit code, or it timed out). */
  ComponentBusy: 'ComponentBusy',
  /** A migration failed, or the migration history does not allow the request. */
  MigrationRefused: 'MigrationRefused',
} as const;

export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** Failures that retrying cannot fix. */
export const NON_RETRYABLE_ERRORS: ErrorType[] = [
  ErrorType.InvalidRequest,
  ErrorType.TargetNotFound,
  ErrorType.CrossSectionIncomplete,
  ErrorType.RepositoryAccess,
  ErrorType.ResticRefused,
  ErrorType.WrongAgent,
  ErrorType.ComponentUnavailable,
  ErrorType.MigrationRefused,
  ErrorType.FingerprintMismatch,
];

/**
 * The innermost message of a failure chain (workflow → child or activity → application
 * failure), for people to read: the application failure's own words when there is one.
 */
export function describeFailure(err: unknown): string {
  let current: unknown = err;
  while (current instanceof Error && current.cause instanceof Error && !(current instanceof ApplicationFailure)) {
    current = current.cause;
  }
  return current instanceof Error ? current.message : String(current);
}
