// Named activity option profiles. Every profile sets an explicit timeout and retry policy;
// steps that move data heartbeat, so a dead agent is noticed within the heartbeat timeout.
import { ActivityCancellationType, type ActivityOptions } from '@temporalio/workflow';
import { NON_RETRYABLE_ERRORS } from '../domain/errors';

/** Reads of the manifest and the repository: seconds. */
export const quick: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 5,
    nonRetryableErrorTypes: NON_RETRYABLE_ERRORS,
  },
};

/** Snapshots and restores on an environment's agent: long, heartbeating, cancelled cleanly. */
export function transfer(taskQueue: string, heartbeatTimeoutMs: number): ActivityOptions {
  return {
    taskQueue,
    startToCloseTimeout: '12 hours',
    heartbeatTimeout: heartbeatTimeoutMs,
    // Wait for a cancelled restore to stop before compensating the same files.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: '2 seconds',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      maximumAttempts: 10,
      nonRetryableErrorTypes: NON_RETRYABLE_ERRORS,
    },
  };
}

/** Compensation keeps trying longer: it is what stands between a failure and a broken environment. */
export function compensation(taskQueue: string, heartbeatTimeoutMs: number): ActivityOptions {
  const base = transfer(taskQueue, heartbeatTimeoutMs);
  return { ...base, retry: { ...base.retry, maximumAttempts: 30 } };
}
