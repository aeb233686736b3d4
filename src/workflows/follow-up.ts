// followUpWorkflow: what a completed rollback's step asked for later (RestoreOutcome.later), e.g.
// stopping the previous blue/green colour once keepPrevious has passed. Started by the rollback
// as an abandoned child, so the rollback ends at once and the timer survives any restart.
import { proxyActivities, sleep } from '@temporalio/workflow';
import type { AgentActivities } from '../activities/agent';
import type { KindDetails } from '../components/core';

export interface FollowUpWorkflowRequest {
  environment: string;
  envTaskQueue: string;
  component: string;
  afterMs: number;
  /** What it does, for people: "stop green (v2)". */
  what: string;
  details: KindDetails;
}

export async function followUpWorkflow(req: FollowUpWorkflowRequest): Promise<string> {
  await sleep(req.afterMs);
  const agent = proxyActivities<AgentActivities>({
    taskQueue: req.envTaskQueue,
    startToCloseTimeout: '15 minutes',
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 10 },
  });
  return agent.followUpComponent({ environment: req.environment, component: req.component, details: req.details });
}
