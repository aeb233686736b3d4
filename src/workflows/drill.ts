// drillWorkflow (seed 6.7): a rollback drill on the drill environment. Roll back to the previous
// release (a real rollback, a child run: plan, safety snapshot, execute, verify; approved by the
// manifest's drills section), then roll forward to the drill's own safety cross-section, the exact
// state before the drill, and record how long the rollback took against the goal.
import {
  ApplicationFailure,
  ChildWorkflowFailure,
  executeChild,
  proxyActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type { DrillActivities } from '../activities/drills';
import type { DrillPlan, DrillRequest, DrillResult } from '../domain/drill';
import type { RollbackRequest, RollbackStatus, RollbackTarget } from '../domain/rollback';
import { startingRollbackSearchAttributes } from '../domain/search-attributes';
import { quick } from './activity-options';
import { rollbackWorkflow } from './rollback';

const control = proxyActivities<DrillActivities>(quick);

/** A rollback as a child run; its final status whether it completed or not. */
async function childRollback(
  workflowId: string,
  plan: DrillPlan,
  target: RollbackTarget,
  reason: string,
  components = plan.components,
): Promise<{ status: RollbackStatus; ms: number }> {
  const request: RollbackRequest = {
    environment: plan.environment,
    target,
    components,
    reason,
    requester: 'drill',
    trigger: 'drill',
    dryRun: false,
    acceptDataLoss: false,
  };
  const started = Date.now();
  try {
    const status = await executeChild(rollbackWorkflow, {
      workflowId,
      args: [request],
      typedSearchAttributes: startingRollbackSearchAttributes(request),
    });
    return { status, ms: Date.now() - started };
  } catch (err) {
    // A run that ended otherwise than completed fails with its final status as details.
    const cause = err instanceof ChildWorkflowFailure ? err.cause : undefined;
    const details =
      cause instanceof ApplicationFailure ? (cause.details?.[0] as RollbackStatus | undefined) : undefined;
    if (!details) throw err;
    return { status: details, ms: Date.now() - started };
  }
}

export async function drillWorkflow(request: DrillRequest): Promise<DrillResult> {
  const { workflowId } = workflowInfo();
  const startedAt = new Date().toISOString();
  const plan = await control.planDrill({ ...request, drillId: workflowId });

  const back = await childRollback(
    `${workflowId}-back`,
    plan,
    { kind: 'version', version: plan.previous },
    `drill ${workflowId}: back to the previous release`,
  );
  const result: DrillResult = {
    ...plan,
    outcome: 'failed',
    startedAt,
    finishedAt: startedAt,
    rollbackRunId: back.status.workflowId,
    rollbackState: back.status.state,
    rollbackMs: back.ms,
    metGoal: back.ms <= plan.mttrGoalMs,
  };
  const safety = back.status.plan?.safetyCrossSectionId;
  // Only what the rollback changed goes forward again: a component already at the previous
  // release was left as it was, and its safety snapshot is that release's own (not in the
  // safety cross-section).
  const changed = plan.components.filter((c) => {
    const outcome = back.status.steps[c]?.outcome;
    return outcome !== undefined && !outcome.alreadyAtTarget;
  });
  if (back.status.state !== 'completed') {
    result.reason = `the rollback to ${plan.previous} ended ${back.status.state}${back.status.cause ? `: ${back.status.cause}` : ''}`;
  } else if (changed.length === 0) {
    result.outcome = 'passed';
    result.reason = `nothing to roll forward: ${plan.components.join(', ')} did not differ from ${plan.previous}`;
  } else if (!safety) {
    result.reason = 'the rollback left no safety cross-section to roll forward to';
  } else {
    const forward = await childRollback(
      `${workflowId}-forward`,
      plan,
      { kind: 'cross-section', id: safety },
      `drill ${workflowId}: forward to the state before the drill`,
      changed,
    );
    result.forwardRunId = forward.status.workflowId;
    result.forwardState = forward.status.state;
    result.forwardMs = forward.ms;
    if (forward.status.state !== 'completed')
      result.reason = `rolling forward ended ${forward.status.state}${forward.status.cause ? `: ${forward.status.cause}` : ''}`;
    else {
      result.outcome = 'passed';
      if (!result.metGoal)
        result.reason = `the rollback took ${Math.round(back.ms / 1000)} s, over the ${Math.round(plan.mttrGoalMs / 1000)} s goal`;
    }
  }
  result.finishedAt = new Date().toISOString();
  await control.recordDrill(result);
  return result;
}
