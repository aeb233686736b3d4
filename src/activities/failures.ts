// Turns what activities meet into ApplicationFailures with a stable type, so the workflow's
// retry policy knows what is worth retrying.
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { ErrorType } from '../domain/errors';
import { ManifestError } from '../manifest/load';
import { ResticError } from '../snapshots/restic';
import { DatabaseError } from '../components/postgres/connect';
import { MigrationScriptError } from '../components/postgres/flyway';
import { MigrationError } from '../components/postgres/migrator';

export function toApplicationFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure) return err;
  if (err instanceof ResticError) {
    if (err.kind === 'wrong-password' || err.kind === 'no-repository') {
      return ApplicationFailure.nonRetryable(err.message, ErrorType.RepositoryAccess);
    }
    // What restic would meet again on every attempt: compensate at once instead of retrying
    // for minutes. A damaged repository, a crash of restic itself, or a full or read-only
    // repository disk are the repository's problem; a full or read-only target is the component's.
    if (
      err.kind === 'refused' ||
      err.kind === 'damaged' ||
      err.kind === 'crashed' ||
      err.kind === 'repository-unwritable'
    ) {
      return ApplicationFailure.nonRetryable(err.message, ErrorType.ResticRefused);
    }
    if (err.kind === 'unwritable') return ApplicationFailure.nonRetryable(err.message, ErrorType.ComponentUnavailable);
    // A live lock, an I/O or network error, an interruption: a later attempt may succeed.
    return ApplicationFailure.retryable(err.message, ErrorType.ResticFailed);
  }
  if (err instanceof ManifestError) return ApplicationFailure.nonRetryable(err.message, ErrorType.InvalidRequest);
  if (err instanceof DatabaseError) {
    // A database that is down may come back; wrong credentials or a too-old pg_dump will not.
    if (err.kind === 'sql' || err.kind === 'lock' || err.kind === 'unreachable') {
      return ApplicationFailure.retryable(err.message, ErrorType.ComponentUnavailable);
    }
    return ApplicationFailure.nonRetryable(err.message, ErrorType.ComponentUnavailable);
  }
  if (err instanceof MigrationError || err instanceof MigrationScriptError) {
    if (err instanceof MigrationError && err.kind === 'lock')
      return ApplicationFailure.retryable(err.message, ErrorType.MigrationRefused);
    return ApplicationFailure.nonRetryable(err.message, ErrorType.MigrationRefused);
  }
  if (isNodeError(err) && (err.code === 'EACCES' || err.code === 'EROFS' || err.code === 'ENOTDIR')) {
    return ApplicationFailure.nonRetryable(err.message, ErrorType.ComponentUnavailable);
  }
  if (err instanceof Error && err.name === 'AbortError') return err;
  return err;
}

function isNodeError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err;
}
