// environmentLockWorkflow: one rollback at a time per environment. A rollback starts it as a
// child with a fixed id (`lock-<environment's task queue>`); the server refuses a second start
// of a running workflow id, atomically, so two rollbacks started at the same moment (two alerts
// firing together) cannot both take it, which a check of the list of running runs cannot
// promise. The lock ends when the rollback signals `release`, or with the rollback itself
// (the child's parent-close policy terminates it).
import { condition, setHandler } from '@temporalio/workflow';
import { releaseLockSignal } from '../domain/messages';

export async function environmentLockWorkflow(): Promise<void> {
  let released = false;
  setHandler(releaseLockSignal, () => {
    released = true;
  });
  await condition(() => released);
}
