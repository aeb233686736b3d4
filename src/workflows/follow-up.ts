// followUpWorkflow: what a completed rollback's step asked for later (RestoreOutcome.later), e.g.
// stopping the previous blue/green colour once keepPrevious has passed. Started by the rollback
// as an abandoned child, so the rollback ends at once and the timer survives any restart. It
// acts under the environment's lock, like a rollback: one under way (which may have planned on
// the very colour this would stop) finishes first, and the step then judges the state it left.
import {
  CancellationScope,
  ParentClosePolicy,
  patched,
  proxyActivities,
  sleep,
  startChild,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { AgentActivities } from '../activities/agent';
import type { KindDetails } from '../components/core';
import { releaseLockSignal } from '../domain/messages';
import { lockWorkflowId } from '../domain/rollback';
import { environmentLockWorkflow } from './lock';

export interface FollowUpWorkflowRequest {
  environment: string;
  /** The environment's agent task queue; its lock is named after it. */
  envTaskQueue: string;
  /** The task queue of the agent that serves the component, when not the environment's (a host's). */
  taskQueue?: string;
  component: string;
  afterMs: number;
  /** What it does, for people: "stop green (v2)". */
  what: string;
  details: KindDetails;
}

/** How long a follow-up waits for a busy environment before it gives up. */
const BUSY_LIMIT_MS = 24 * 3600_000;

export async function followUpWorkflow(req: FollowUpWorkflowRequest): Promise<string> {
  await sleep(req.afterMs);
  const lock = patched('follow-up-takes-environment-lock') ? await takeLock(req) : undefined;
  if (lock === null) return `not done: ${req.environment} stayed busy with rollbacks for a day`;
  const agent = proxyActivities<AgentActivities>({
    taskQueue: req.taskQueue ?? req.envTaskQueue,
    startToCloseTimeout: '15 minutes',
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 10 },
  });
  try {
    return await agent.followUpComponent({
      environment: req.environment,
      component: req.component,
      details: req.details,
    });
  } finally {
    if (lock) await CancellationScope.nonCancellable(() => lock.signal(releaseLockSignal));
  }
}

/** The environment's lock, once no rollback holds it; null after a day of waiting. */
async function takeLock(
  req: FollowUpWorkflowRequest,
): Promise<ChildWorkflowHandle<typeof environmentLockWorkflow> | null> {
  let waitedMs = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      return await startChild(environmentLockWorkflow, {
        workflowId: lockWorkflowId(req.envTaskQueue),
        parentClosePolicy: ParentClosePolicy.TERMINATE,
        staticSummary: `${req.environment} is held for a moment: ${req.what}`,
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      if (waitedMs >= BUSY_LIMIT_MS) return null;
      // From 5 s up to 10 min between tries: few events in history, however long it waits.
      const pause = Math.min(5_000 * 2 ** attempt, 600_000);
      await sleep(pause);
      waitedMs += pause;
    }
  }
}
