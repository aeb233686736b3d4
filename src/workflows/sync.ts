// syncWorkflow: brings chosen components of one environment (regression) in line with another
// (production). It scans the pair first, to know the findings it resolves and what the drift
// rules allow to differ (kept, not overwritten); asks for approval unless every finding is
// auto-fixable; takes a fresh snapshot of the source and a safety snapshot of the target; restores
// the source's snapshot into the target, component by component in dependency order, with
// compensation registered before each step; and verifies with a fresh scan.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  executeChild,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { AgentActivities } from '../activities/agent';
import type { SyncActivities } from '../activities/sync';
import { crossSectionId } from '../domain/cross-section';
import { componentTaskQueue } from '../domain/hosts';
import type { ComponentSnapshot } from '../domain/cross-section';
import { describeFailure } from '../domain/errors';
import {
  approveUpdate,
  decisionPayloadSchema,
  payloadProblem,
  rejectUpdate,
  syncStatusQuery,
  type DecisionOutcome,
  type DecisionPayload,
} from '../domain/messages';
import type { SyncContext, SyncRequest, SyncStatus } from '../domain/sync';
import { compensation, quick, transfer } from './activity-options';
import { driftScanWorkflow } from './drift-scan';
import { takeCrossSection } from './cross-section';

const control = proxyActivities<SyncActivities>(quick);

class SyncEnded extends Error {
  constructor(
    readonly state: SyncStatus['state'],
    readonly reason: string,
  ) {
    super(reason);
  }
}

export async function syncWorkflow(request: SyncRequest): Promise<SyncStatus> {
  const info = workflowInfo();
  const status: SyncStatus = {
    from: request.from ?? '',
    to: request.to ?? '',
    requestedBy: request.requestedBy,
    state: 'running',
    phase: 'scan',
    components: {},
  };
  setHandler(syncStatusQuery, () => status);
  let ctx: SyncContext | undefined;

  const decide = (action: 'approve' | 'reject', decision: DecisionPayload): DecisionOutcome => {
    const outcome = (accepted: boolean, reason?: string): DecisionOutcome => ({
      accepted,
      ...(reason ? { reason } : {}),
      state: status.state === 'awaiting-approval' ? 'awaiting-approval' : 'running',
      phase: status.phase === 'approval' ? 'approval' : 'execute',
      approvals: status.approvedBy ? 1 : 0,
      requiredApprovals: 1,
    });
    if (status.state !== 'awaiting-approval')
      return outcome(false, `the sync is not awaiting approval (${status.state})`);
    if (!ctx!.approvers.includes(decision.user)) return outcome(false, `${decision.user} is not an approver`);
    if (action === 'approve' && decision.user === request.requestedBy && !ctx!.allowSelfApproval)
      return outcome(false, `${decision.user} asked for this sync and may not approve it in ${ctx!.to}`);
    if (action === 'approve') status.approvedBy = decision.user;
    else status.rejectedBy = decision.user;
    return outcome(true);
  };
  const validate = (decision: DecisionPayload) => {
    const problem = payloadProblem(decisionPayloadSchema, decision);
    if (problem) throw new Error(problem);
  };
  setHandler(approveUpdate, (d) => decide('approve', d), { validator: validate });
  setHandler(rejectUpdate, (d) => decide('reject', d), { validator: validate });

  const compensations: (() => Promise<void>)[] = [];
  try {
    ctx = await control.beginSync(request);
    status.from = ctx.from;
    status.to = ctx.to;
    show(status);

    // What differs now, and what the rules let the target keep.
    const before = await executeChild(driftScanWorkflow, {
      workflowId: `${info.workflowId}-scan-before`,
      args: [
        { from: ctx.from, to: ctx.to, components: ctx.components, trigger: 'sync', requestedBy: request.requestedBy },
      ],
    });
    status.scanBefore = before.scanId;
    if (before.status !== 'completed')
      throw new SyncEnded('failed', `the scan before the sync failed: ${before.error ?? ''}`);
    // A component the scan could not read cannot be planned (nor, likely, written).
    if (before.unreadable?.length)
      throw new SyncEnded(
        'failed',
        `the scan before the sync could not compare ${before.unreadable.join(', ')} (rewind drift report ${before.scanId})`,
      );
    const plan = await control.planSync({
      scanId: before.scanId,
      components: ctx.components,
      from: ctx.from,
      to: ctx.to,
    });
    status.plan = plan;
    for (const p of plan)
      status.components[p.component] = { state: p.findings ? 'pending' : 'in line', findings: p.findings };
    const chosen = ctx.components.filter((c) => plan.find((p) => p.component === c)!.findings > 0);
    if (chosen.length === 0)
      throw new SyncEnded('in-line', `${ctx.to} is already in line with ${ctx.from} for these components`);

    status.needsApproval = plan.some((p) => p.findings > 0 && !p.autoFixable);
    if (status.needsApproval) {
      status.phase = 'approval';
      status.state = 'awaiting-approval';
      show(status);
      const decided = await condition(() => !!status.approvedBy || !!status.rejectedBy, ctx.approvalTimeoutMs);
      if (!decided) throw new SyncEnded('timed-out', 'no approver decided in time');
      if (status.rejectedBy) throw new SyncEnded('rejected', `rejected by ${status.rejectedBy}`);
      status.state = 'running';
    }

    status.phase = 'snapshot';
    show(status);
    const snapshotCtx = (environment: string, queue: string) => ({
      environment,
      envTaskQueue: queue,
      components: chosen,
      heartbeatTimeoutMs: ctx!.heartbeatTimeoutMs,
    });
    const [source, safety] = await Promise.all([
      takeCrossSection(snapshotCtx(ctx.from, ctx.fromQueue), {
        origin: 'manual',
        reason: `source of ${info.workflowId}`,
        crossSectionId: crossSectionId(new Date(), uuid4()),
      }),
      takeCrossSection(snapshotCtx(ctx.to, ctx.toQueue), {
        origin: 'safety',
        reason: `before ${info.workflowId}`,
        crossSectionId: crossSectionId(new Date(), uuid4()),
      }),
    ]);
    status.source = source.components;
    status.safety = safety.components;

    status.phase = 'execute';
    show(status);
    for (const component of chosen) {
      const target: ComponentSnapshot = source.components[component]!;
      const keep = plan.find((p) => p.component === component)!.keep;
      const key = `${info.workflowId}/sync/${component}`;
      const agent = proxyActivities<AgentActivities>({
        ...transfer(componentTaskQueue(ctx.toQueue, component), ctx.heartbeatTimeoutMs),
        activityId: `sync/${component}`,
      });
      const undo = proxyActivities<AgentActivities>({
        ...compensation(componentTaskQueue(ctx.toQueue, component), ctx.heartbeatTimeoutMs),
        activityId: `compensate/${component}`,
      });
      const safe = safety.components[component]!;
      // Registered before the step: the step may half-succeed.
      compensations.push(async () => {
        status.components[component]!.state = 'compensating';
        await undo.restoreComponent({
          environment: ctx!.to,
          component,
          snapshotId: safe.snapshotId,
          listingSnapshotId: safe.listingSnapshotId,
          fingerprint: safe.fingerprint,
          purpose: 'compensation',
          idempotencyKey: `${info.workflowId}/compensation/${component}`,
          compensates: { idempotencyKey: key },
        });
        status.components[component]!.state = 'compensated';
      });
      status.components[component]!.state = 'syncing';
      show(status);
      const outcome = await agent.restoreComponent({
        environment: ctx.to,
        component,
        snapshotId: target.snapshotId,
        listingSnapshotId: target.listingSnapshotId,
        fingerprint: target.fingerprint,
        purpose: 'rollback',
        idempotencyKey: key,
        keep,
      });
      status.components[component] = {
        ...status.components[component]!,
        state: 'synced',
        ...(outcome.note ? { note: outcome.note } : {}),
      };
    }

    status.phase = 'verify';
    show(status);
    const after = await executeChild(driftScanWorkflow, {
      workflowId: `${info.workflowId}-scan-after`,
      args: [{ from: ctx.from, to: ctx.to, components: chosen, trigger: 'sync', requestedBy: request.requestedBy }],
    });
    status.scanAfter = after;
    const left = after.status === 'completed' ? await control.unresolvedAfterSync({ after: after.scanId }) : [];
    if (after.status !== 'completed') throw new Error(`the scan after the sync failed: ${after.error ?? ''}`);
    if (after.unreadable?.length)
      throw new Error(
        `the scan after the sync could not compare ${after.unreadable.join(', ')} (rewind drift report ${after.scanId})`,
      );
    if (left.length > 0)
      throw new Error(`${left.length} finding(s) still differ after the sync: ${left.slice(0, 5).join('; ')}`);

    status.phase = 'complete';
    status.state = 'completed';
    show(status);
    return status;
  } catch (err) {
    // What was waiting for the sync's execute phase will not run now.
    for (const c of Object.values(status.components)) if (c.state === 'pending') c.state = 'not run';
    if (err instanceof SyncEnded) {
      status.state = err.state;
      status.cause = err.reason;
      status.phase = 'complete';
      show(status);
      return status;
    }
    status.cause = describeFailure(err);
    if (compensations.length === 0) {
      status.state = 'failed';
      show(status);
      throw ApplicationFailure.create({
        message: status.cause,
        type: 'SyncFailed',
        nonRetryable: true,
        details: [status],
      });
    }
    status.phase = 'compensate';
    show(status);
    const failures: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (const undo of compensations.reverse()) {
        try {
          await undo();
        } catch (e) {
          failures.push(describeFailure(e));
          log.error('sync compensation failed', { error: describeFailure(e) });
        }
      }
    });
    status.state = failures.length ? 'failed' : 'compensated';
    if (failures.length) status.cause += `; compensation FAILED: ${failures.join('; ')}`;
    status.phase = 'complete';
    show(status);
    throw ApplicationFailure.create({
      message: status.cause,
      type: status.state === 'compensated' ? 'SyncCompensated' : 'SyncFailed',
      nonRetryable: true,
      details: [status],
    });
  }
}

function show(status: SyncStatus): void {
  const lines = [`**sync ${status.from} → ${status.to}**: ${status.state}, phase ${status.phase}`];
  for (const [name, c] of Object.entries(status.components))
    lines.push(`- ${name}: ${c.state}${c.findings !== undefined ? `, ${c.findings} findings` : ''}`);
  if (status.cause) lines.push(status.cause);
  setCurrentDetails(lines.join('\n'));
}
