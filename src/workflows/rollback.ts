// rollbackWorkflow: returns an environment to a version or a cross-section, in the phases of
// DESIGN.md. It survives any process crash: every step is an activity recorded in history.
import {
  ApplicationFailure,
  CancellationScope,
  type ChildWorkflowHandle,
  condition,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError, type SearchAttributeUpdatePair } from '@temporalio/common';
import type { AgentActivities } from '../activities/agent';
import type { ControlActivities } from '../activities/control';
import { dependencyWaves } from '../domain/dependency-order';
import type { ComponentSnapshot } from '../domain/cross-section';
import { approveSignal, decisionPayloadSchema, rejectSignal, releaseLockSignal, rollbackStatusQuery, type DecisionPayload } from '../domain/messages';
import { renderRollbackReport } from '../domain/report';
import {
  FINAL_STATES,
  type Phase,
  type RollbackComponent,
  type RollbackContext,
  type RollbackPlan,
  type RollbackRequest,
  type RollbackState,
  type RollbackStatus,
  lockWorkflowId,
  targetKeyword,
} from '../domain/rollback';
import {
  environmentAttribute,
  phaseAttribute,
  stateAttribute,
  targetAttribute,
  triggerAttribute,
} from '../domain/search-attributes';
import { compensation, quick, transfer } from './activity-options';
import { takeCrossSection } from './cross-section';
import { environmentLockWorkflow } from './lock';

const control = proxyActivities<ControlActivities>(quick);

/** Ends the run early with a final state (rejected, compensated, ...); never retried. */
class RollbackEnded extends Error {
  constructor(
    readonly state: RollbackState,
    override readonly cause: string,
  ) {
    super(cause);
  }
}

export async function rollbackWorkflow(request: RollbackRequest): Promise<RollbackStatus> {
  const { workflowId } = workflowInfo();
  const status: RollbackStatus = {
    workflowId,
    environment: request.environment,
    target: request.target,
    trigger: request.trigger,
    requester: request.requester,
    dryRun: request.dryRun,
    phase: 'decide',
    state: 'running',
    phases: {},
    steps: {},
    approvals: [],
    refusals: [],
    ...(request.reason !== undefined ? { reason: request.reason } : {}),
    ...(request.components !== undefined ? { components: request.components } : {}),
    ...(request.strategy !== undefined ? { strategy: request.strategy } : {}),
    ...(request.acceptDataLoss ? { acceptDataLoss: true } : {}),
  };
  let ctx: RollbackContext | undefined;
  let safety: Record<string, ComponentSnapshot> = {};
  /** Components a step was started for, in start order: what compensation must put back. */
  const touched: RollbackComponent[] = [];
  let approvalOpen = false;
  /** The environment's lock, held from decide to complete. */
  let lock: ChildWorkflowHandle<typeof environmentLockWorkflow> | undefined;
  const seenRequests = new Set<string>();

  setHandler(rollbackStatusQuery, () => status);
  setHandler(approveSignal, (payload) => onDecision('approve', payload));
  setHandler(rejectSignal, (payload) => onDecision('reject', payload));

  try {
    ctx = await decide();
    await prepare(ctx);
    if (request.dryRun) return await complete('completed');
    const decision = await approval(ctx);
    if (decision !== 'approved') return await complete(decision);
    await execute(ctx);
    await verify(ctx);
    return await complete('completed');
  } catch (err) {
    return await finishAfterFailure(err);
  }

  // ---- phases ----

  async function decide(): Promise<RollbackContext> {
    enterPhase('decide');
    const takesLock = !request.dryRun && patched('environment-lock');
    const context = await control.resolveRollback({ ...request, workflowId, ...(takesLock ? { takesLock } : {}) });
    if (takesLock) await takeEnvironmentLock(context);
    status.targetCrossSection = context.target;
    status.approvers = context.approvers;
    status.requiredApprovals = context.requiredApprovals;
    status.requesterMayApprove = context.allowSelfApproval;
    status.components = context.components.map((c) => c.name);
    for (const c of context.components) status.steps[c.name] = { component: c.name, state: 'pending' };
    log.info('rollback decided', {
      environment: request.environment,
      trigger: request.trigger,
      requester: request.requester,
      target: context.target.crossSectionId,
      components: status.components.join(','),
    });
    return context;
  }

  /** One rollback per environment at a time (workflows/lock.ts); a dry run changes nothing and needs none. */
  async function takeEnvironmentLock(context: RollbackContext): Promise<void> {
    const id = lockWorkflowId(context.envTaskQueue);
    for (let attempt = 1; ; attempt++) {
      try {
        // Started outside cancellation: cancelling the rollback must not free the environment
        // while compensation still runs. `complete` releases it.
        lock = await CancellationScope.nonCancellable(() => startChild(environmentLockWorkflow, { workflowId: id }));
        return;
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        const holder = await control.lockHolder(id);
        // The holder finished between our start and the question: the lock is free again.
        if (holder === undefined && attempt < 3) continue;
        throw new RollbackEnded(
          'failed',
          `decide failed: rollback ${holder ?? `(lock workflow ${id})`} is already running on ${context.environment}; wait for it or cancel it first`,
        );
      }
    }
  }

  async function releaseEnvironmentLock(): Promise<void> {
    if (!lock) return;
    const held = lock;
    lock = undefined;
    await CancellationScope.nonCancellable(() => held.signal(releaseLockSignal));
  }

  async function prepare(context: RollbackContext): Promise<void> {
    enterPhase('prepare');
    const section = await takeCrossSection(
      {
        environment: context.environment,
        envTaskQueue: context.envTaskQueue,
        components: context.components.map((c) => c.name),
        heartbeatTimeoutMs: context.heartbeatTimeoutMs,
      },
      { origin: request.dryRun ? 'dry-run' : 'safety', reason: `safety before ${workflowId}` },
    );
    safety = section.components;
    await control.confirmReadable(Object.values(safety));
    // Plans are made by the agents, which hold the listings and can reach the databases.
    const planOnAgent = patched('plan-components-on-agent');
    const agent = proxyActivities<AgentActivities>({ ...quick, taskQueue: context.envTaskQueue });
    const components = await Promise.all(
      context.components.map((component) =>
        planOnAgent
          ? agent.assessComponent({
              environment: context.environment,
              component: component.name,
              workflowId,
              safety: safety[component.name]!,
              target: {
                snapshotId: component.targetSnapshotId,
                listingSnapshotId: component.targetListingSnapshotId,
                fingerprint: component.targetFingerprint,
              },
              previewPaths: context.previewPaths,
              ...(component.strategy !== undefined ? { strategy: component.strategy } : {}),
              ...(component.targetTime !== undefined ? { targetTime: component.targetTime } : {}),
            })
          : control.planComponent({ workflowId, component, safety: safety[component.name]!, previewPaths: context.previewPaths }),
      ),
    );
    const plan: RollbackPlan = {
      safetyCrossSectionId: section.crossSectionId,
      order: dependencyWaves(context.components),
      components,
      totals: {
        added: sum(components.map((c) => c.added)),
        changed: sum(components.map((c) => c.changed)),
        removed: sum(components.map((c) => c.removed)),
        modeChanged: sum(components.map((c) => c.modeChanged)),
        bytesToWrite: sum(components.map((c) => c.bytesToWrite)),
      },
      destructive: components.some((c) => c.destructive === true),
    };
    status.plan = plan;
    const impossible = components.flatMap((c) => {
      const chosen = c.impact?.find((i) => i.strategy === c.strategy);
      return chosen && !chosen.available ? [`${c.component}: the ${chosen.strategy} strategy is not possible (${chosen.unavailable ?? '?'})`] : [];
    });
    if (impossible.length > 0 && !request.dryRun) throw new RollbackEnded('failed', `${impossible.join('; ')}; choose another with --strategy`);
  }

  async function approval(context: RollbackContext): Promise<'approved' | 'rejected' | 'timed-out'> {
    enterPhase('approval');
    if (status.rejection) return 'rejected';
    setState('awaiting-approval');
    status.approvalDeadline = new Date(Date.now() + context.approvalTimeoutMs).toISOString();
    approvalOpen = true;
    const decided = await condition(
      () => status.rejection !== undefined || status.approvals.length >= context.requiredApprovals,
      context.approvalTimeoutMs,
    );
    approvalOpen = false;
    if (status.rejection) return 'rejected';
    if (!decided) return 'timed-out';
    setState('running');
    return 'approved';
  }

  async function execute(context: RollbackContext): Promise<void> {
    enterPhase('execute');
    const byName = new Map(context.components.map((c) => [c.name, c]));
    const runs = new Map<string, Promise<void>>();
    let firstFailure: unknown;

    // Each component starts once everything it depends on is done; independent ones overlap.
    const run = (component: RollbackComponent): Promise<void> => {
      let started = runs.get(component.name);
      if (!started) {
        started = (async () => {
          await Promise.all(component.dependsOn.map((d) => run(byName.get(d)!)));
          if (firstFailure !== undefined) throw new RollbackEnded('failed', 'not run: an earlier step failed');
          await restoreStep(context, component);
        })().catch((err: unknown) => {
          const step = status.steps[component.name]!;
          if (step.state === 'pending') step.state = 'not-run';
          firstFailure ??= err;
          throw err;
        });
        runs.set(component.name, started);
      }
      return started;
    };
    await Promise.allSettled(context.components.map(run));
    if (firstFailure === undefined) return;
    if (isCancellation(firstFailure)) throw firstFailure as Error;
    throw await compensate(context, `execute failed: ${describeError(firstFailure)}`);
  }

  async function restoreStep(context: RollbackContext, component: RollbackComponent): Promise<void> {
    const step = status.steps[component.name]!;
    // Registered before the step runs: a restore may half-succeed.
    touched.push(component);
    step.state = 'running';
    step.startedAt = now();
    const agent = proxyActivities<AgentActivities>({
      ...transfer(context.envTaskQueue, context.heartbeatTimeoutMs),
      activityId: `restore/${component.name}`,
    });
    try {
      step.outcome = await agent.restoreComponent({
        environment: context.environment,
        component: component.name,
        snapshotId: component.targetSnapshotId,
        listingSnapshotId: component.targetListingSnapshotId,
        fingerprint: component.targetFingerprint,
        purpose: 'rollback',
        idempotencyKey: `${workflowId}/rollback/${component.name}`,
        ...(component.strategy !== undefined ? { strategy: component.strategy } : {}),
        ...(component.targetTime !== undefined ? { targetTime: component.targetTime } : {}),
      });
      step.state = 'done';
    } catch (err) {
      step.state = 'failed';
      step.error = describeError(err);
      throw err;
    } finally {
      step.endedAt = now();
    }
  }

  async function verify(context: RollbackContext): Promise<void> {
    enterPhase('verify');
    const agent = proxyActivities<AgentActivities>(transfer(context.envTaskQueue, context.heartbeatTimeoutMs));
    const outcomes = await Promise.all(
      context.components.map(async (c) => {
        const outcome = await agent.verifyComponent({
          environment: context.environment,
          component: c.name,
          expected: c.targetFingerprint,
          listingSnapshotId: c.targetListingSnapshotId,
          ...(c.strategy !== undefined ? { strategy: c.strategy } : {}),
        });
        status.steps[c.name]!.verify = outcome.matches ? 'passed' : 'failed';
        return { component: c.name, ...outcome };
      }),
    );
    const mismatches = outcomes.filter((o) => !o.matches);
    if (mismatches.length === 0) return;
    const detail = mismatches
      .map((m) => `${m.component} differs from the target (${m.differences.map((d) => `${d.op} ${d.path}`).join(', ') || 'fingerprint only'})`)
      .join('; ');
    for (const m of mismatches) status.steps[m.component]!.error = `verify: ${detail}`;
    throw await compensate(context, `verify failed: ${detail}`);
  }

  async function complete(state: RollbackState, cause?: string): Promise<RollbackStatus> {
    enterPhase('complete');
    status.state = state;
    for (const step of Object.values(status.steps)) if (step.state === 'pending') step.state = 'not-run';
    if (cause !== undefined) status.cause = cause;
    closePhase();
    status.report = renderRollbackReport(status);
    status.reportFile = await CancellationScope.nonCancellable(() =>
      control.saveReport({ workflowId, markdown: status.report! }),
    );
    await releaseEnvironmentLock();
    setState(state);
    log.info('rollback finished', { state, cause: cause ?? '' });
    return status;
  }

  // ---- compensation and endings ----

  /** Restores every touched component from the safety cross-section, newest step first. */
  async function compensate(context: RollbackContext, cause: string): Promise<RollbackEnded> {
    enterPhase('compensate');
    const failures: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (const component of [...touched].reverse()) {
        const step = status.steps[component.name]!;
        const snapshot = safety[component.name]!;
        step.state = 'compensating';
        const agent = proxyActivities<AgentActivities>({
          ...compensation(context.envTaskQueue, context.heartbeatTimeoutMs),
          activityId: `compensate/${component.name}`,
        });
        try {
          const outcome = await agent.restoreComponent({
            environment: context.environment,
            component: component.name,
            snapshotId: snapshot.snapshotId,
            listingSnapshotId: snapshot.listingSnapshotId,
            fingerprint: snapshot.fingerprint,
            purpose: 'compensation',
            idempotencyKey: `${workflowId}/compensation/${component.name}`,
            // The safety snapshot of a database is a dump: compensation restores it, unless the
            // step it undoes changed nothing.
            ...(component.kind === 'postgres'
              ? {
                  strategy: 'restore' as const,
                  compensates: { idempotencyKey: `${workflowId}/rollback/${component.name}`, strategy: component.strategy ?? 'restore' },
                }
              : {}),
          });
          step.state = 'compensated';
          step.compensation =
            outcome.note ?? (outcome.alreadyAtTarget ? 'already at its state before the rollback' : 'restored from the safety snapshot');
        } catch (err) {
          step.state = 'compensation-failed';
          failures.push(`${component.name}: ${describeError(err)}`);
          log.error('compensation step failed', { component: component.name, error: describeError(err) });
        }
      }
    });
    if (failures.length === 0) return new RollbackEnded('compensated', cause);
    return new RollbackEnded(
      'failed',
      `${cause}; compensation FAILED for ${failures.join('; ')}. Restore by hand from safety cross-section ${status.plan?.safetyCrossSectionId ?? '?'}`,
    );
  }

  async function finishAfterFailure(err: unknown): Promise<RollbackStatus> {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(async () => {
        if (touched.length > 0 && ctx) {
          const ended = await compensate(ctx, `cancelled during ${status.phase}`);
          await complete(ended.state, ended.cause);
        } else {
          await complete('cancelled', `cancelled during ${status.phase}; nothing was changed`);
        }
      });
      throw err;
    }
    const ended =
      err instanceof RollbackEnded ? err : new RollbackEnded('failed', `${status.phase} failed: ${describeError(err)}`);
    const final = await complete(ended.state, ended.cause);
    throw ApplicationFailure.create({
      message: `rollback ${final.state}: ${ended.cause}`,
      type: final.state === 'compensated' ? 'RollbackCompensated' : 'RollbackFailed',
      nonRetryable: true,
      details: [final],
    });
  }

  // ---- approval signals ----

  function onDecision(action: 'approve' | 'reject', raw: DecisionPayload): void {
    const parsed = decisionPayloadSchema.safeParse(raw);
    const at = now();
    if (!parsed.success) {
      status.refusals.push({ action, user: '?', requestId: '?', at, reason: `invalid ${action} request: ${parsed.error.issues[0]?.message ?? ''}` });
      return;
    }
    const decision = { ...parsed.data, at };
    // A double-clicked button or a retried request arrives twice with one id: count it once.
    if (seenRequests.has(decision.requestId)) return;
    seenRequests.add(decision.requestId);
    const refuse = (reason: string) => {
      status.refusals.push({ ...decision, action, reason });
      log.warn('decision refused', { action, user: decision.user, reason });
    };

    if (FINAL_STATES.includes(status.state) || !['decide', 'prepare', 'approval'].includes(status.phase)) {
      return refuse(`the rollback is past approval (phase ${status.phase}, state ${status.state})`);
    }
    if (!ctx) return refuse('the rollback is still being decided; try again in a moment');
    if (action === 'reject') {
      if (!ctx.approvers.includes(decision.user) && decision.user !== request.requester) {
        return refuse(`${decision.user} is neither an approver nor the requester`);
      }
      status.rejection = decision;
      return;
    }
    if (!approvalOpen) return refuse('the plan is not ready yet; approve once the rollback awaits approval');
    if (!ctx.approvers.includes(decision.user)) return refuse(`${decision.user} is not an approver (approvers: ${ctx.approvers.join(', ')})`);
    if (!ctx.allowSelfApproval && decision.user === request.requester) {
      return refuse(`${decision.user} requested this rollback and cannot approve it in ${request.environment}`);
    }
    if (status.approvals.some((a) => a.user === decision.user)) return refuse(`${decision.user} has already approved`);
    if (status.plan?.destructive && !request.acceptDataLoss && !decision.acceptDataLoss) {
      const loss = status.plan.components.flatMap((c) => c.impact?.find((i) => i.strategy === c.strategy)?.losses ?? [])[0] ?? 'see the plan';
      return refuse(`this plan loses data (${loss}); approve with --accept-data-loss to accept that`);
    }
    status.approvals.push(decision);
  }

  // ---- bookkeeping ----

  function enterPhase(phase: Phase): void {
    closePhase();
    status.phase = phase;
    status.phases[phase] = { startedAt: now() };
    upsertAttributes();
  }

  function closePhase(): void {
    const timing = status.phases[status.phase];
    if (timing && timing.durationMs === undefined) {
      timing.endedAt = now();
      timing.durationMs = Date.parse(timing.endedAt) - Date.parse(timing.startedAt);
    }
  }

  function setState(state: RollbackState): void {
    status.state = state;
    upsertAttributes();
  }

  function upsertAttributes(): void {
    const pairs: SearchAttributeUpdatePair[] = [
      { key: environmentAttribute, value: request.environment },
      { key: phaseAttribute, value: status.phase },
      { key: stateAttribute, value: status.state },
      { key: triggerAttribute, value: request.trigger },
      {
        key: targetAttribute,
        value: targetKeyword(request.target),
      },
    ];
    upsertSearchAttributes(pairs);
  }
}

function now(): string {
  return new Date().toISOString();
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/** The innermost message of an activity or application failure, for people to read. */
function describeError(err: unknown): string {
  let current: unknown = err;
  while (current instanceof Error && current.cause instanceof Error && !(current instanceof ApplicationFailure)) {
    current = current.cause;
  }
  return current instanceof Error ? current.message : String(current);
}
