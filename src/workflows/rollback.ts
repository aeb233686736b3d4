// rollbackWorkflow: returns an environment to a version or a cross-section, in the phases of
// DESIGN.md. It survives any process crash: every step is an activity recorded in history.
// Decisions arrive as Updates (domain/messages.ts) judged by domain/rollback-rules.ts; plan
// assembly is domain/rollback-plan.ts. docs/versioning.md lists the patches kept for old runs.
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  type ChildWorkflowHandle,
  condition,
  isCancellation,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { AgentActivities, StageOutcome } from '../activities/agent';
import type { AnnounceActivities } from '../activities/announce';
import type { ControlActivities } from '../activities/control';
import type { RollbackEvent } from '../notify/rollback-slack';
import type { ComponentSnapshot } from '../domain/cross-section';
import { describeFailure, ErrorType } from '../domain/errors';
import {
  approveUpdate,
  cancelPayloadSchema,
  cancelUpdate,
  decisionPayloadSchema,
  legacyApproveSignal,
  legacyRejectSignal,
  payloadProblem,
  planReadyUpdate,
  rejectUpdate,
  releaseLockSignal,
  verificationDecisionPayloadSchema,
  verificationDecisionUpdate,
  type VerificationDecisionPayload,
  rollbackStatusQuery,
  type CancelPayload,
  type DecisionOutcome,
  type DecisionPayload,
} from '../domain/messages';
import { markdownSafe } from '../domain/display-text';
import { renderCurrentDetails, renderRollbackReport } from '../domain/report';
import {
  initialRollbackStatus,
  type Phase,
  type RollbackComponent,
  type RollbackContext,
  type RollbackRequest,
  type RollbackState,
  type RollbackStatus,
  type VerificationWait,
  lockWorkflowId,
} from '../domain/rollback';
import { runInDependencyOrder } from '../domain/dependency-order';
import { assemblePlan, blockedSteps, impossibleSteps } from '../domain/rollback-plan';
import {
  applyDecision,
  approvalSettled,
  cancelProblem,
  decisionTimingProblem,
  environmentBusyMessage,
  recordRefusal,
  unrecordedRefusal,
  verificationDecisionProblem,
  whereTheRunIs,
  type DecisionAction,
} from '../domain/rollback-rules';
import { rollbackSearchAttributes } from '../domain/search-attributes';
import { compensation, quick, transfer } from './activity-options';
import { takeCrossSection } from './cross-section';
import { crossSectionId } from '../domain/cross-section';
import { componentTaskQueue, splitHost } from '../domain/hosts';
import { plansFromLiveState } from '../components/registry';
import { checksFor, type CheckResult } from '../verify/section';
import { environmentLockWorkflow } from './lock';
import { followUpWorkflow } from './follow-up';

const control = proxyActivities<ControlActivities>(quick);
/** Announcements (Slack, the audit log's record of the run's end): a few tries, never in the way. */
const people = proxyActivities<AnnounceActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 3 },
});

const noFailure = (): undefined => undefined;

/**
 * The approval is asked before the safety snapshots are stored only for plans that write at
 * most this much; see prepareAtOnce.
 */
const EARLY_APPROVAL_MAX_BYTES = 64 * 1024 * 1024;

/** Ends the run early with a final state (rejected, compensated, ...); never retried. */
class RollbackEnded extends Error {
  constructor(
    readonly state: RollbackState,
    override readonly cause: string,
  ) {
    super(cause);
  }
}

/** Everything the run knows, in one place; `status` is what the query returns. */
interface RunState {
  status: RollbackStatus;
  /** What decide learnt from the manifest and the repository. */
  ctx?: RollbackContext;
  /** The safety cross-section, by component: what compensation returns to. */
  safety: Record<string, ComponentSnapshot>;
  /** Components a step was started for, in start order: what compensation must put back. */
  touched: RollbackComponent[];
  /** The environment's lock, held from decide to complete. */
  lock?: ChildWorkflowHandle<typeof environmentLockWorkflow>;
  /** Request ids of legacy approve/reject signals already counted. */
  legacyRequests: Set<string>;
  /**
   * Read-backs of new safety snapshots, started as each is taken and awaited before execute:
   * each resolves to undefined, or to the failure.
   */
  confirming: Promise<unknown>[];
  /** The read-back (and staging) of the target's data on the agent, started in decide (patch prepare-at-once). */
  staging?: Promise<StageOutcome[] | Error>;
  /** The safety cross-section being taken (patch prepare-at-once): fills `safety`, or `safetyFailure`. */
  safetyTaken?: Promise<void>;
  safetyFailure?: unknown;
}

export async function rollbackWorkflow(request: RollbackRequest): Promise<RollbackStatus> {
  const run: RunState = {
    status: initialRollbackStatus(request, workflowInfo().workflowId),
    safety: {},
    touched: [],
    legacyRequests: new Set(),
    confirming: [],
  };
  const { status } = run;
  const { workflowId } = status;

  setHandler(rollbackStatusQuery, () => status);
  setHandler(approveUpdate, (p) => onDecision('approve', p), {
    validator: (p: DecisionPayload) => validateDecision('approve', p),
  });
  setHandler(rejectUpdate, (p) => onDecision('reject', p), {
    validator: (p: DecisionPayload) => validateDecision('reject', p),
  });
  setHandler(cancelUpdate, onCancel, { validator: validateCancel });
  setHandler(verificationDecisionUpdate, onVerificationDecision, { validator: validateVerificationDecision });
  // Issues no command: runs started before it existed replay unchanged.
  setHandler(planReadyUpdate, async () => {
    await condition(() => status.state !== 'running');
    return status;
  });
  setHandler(legacyApproveSignal, (p: DecisionPayload) => onLegacySignal('approve', p));
  setHandler(legacyRejectSignal, (p: DecisionPayload) => onLegacySignal('reject', p));
  // Runs started before announcements existed replay without them; dry runs tell no one.
  const announces = !request.dryRun && patched('announce-rollbacks');
  let announcing: Promise<void> = Promise.resolve();

  try {
    await decide();
    void announce('started');
    await prepare();
    if (request.dryRun) {
      await safetyConfirmed();
      return await complete('completed');
    }
    const decision = await approval();
    if (decision !== 'approved') return await complete(decision);
    await execute();
    await verify();
    return await complete('completed');
  } catch (err) {
    return await finishAfterFailure(err);
  }

  // ---- phases ----

  async function decide(): Promise<void> {
    enterPhase('decide');
    const takesLock = !request.dryRun && patched('environment-lock');
    const context = await control.resolveRollback({ ...request, workflowId, ...(takesLock ? { takesLock } : {}) });
    // Reading the target's data back changes nothing in the environment: it starts now, while
    // the lock is taken, and prepare collects it.
    if (patched('prepare-at-once')) run.staging = stageTargets(context);
    if (takesLock) await takeEnvironmentLock(context);
    run.ctx = context;
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
  }

  /** One rollback per environment at a time (workflows/lock.ts); a dry run changes nothing and needs none. */
  async function takeEnvironmentLock(context: RollbackContext): Promise<void> {
    const id = lockWorkflowId(context.envTaskQueue);
    for (let attempt = 1; ; attempt++) {
      try {
        // Started outside cancellation: cancelling the rollback must not free the environment
        // while compensation still runs. `complete` releases it; if the rollback itself ends
        // without releasing it (terminated), the server terminates the lock with it.
        run.lock = await CancellationScope.nonCancellable(() =>
          startChild(environmentLockWorkflow, {
            workflowId: id,
            parentClosePolicy: ParentClosePolicy.TERMINATE,
            // What the Web UI shows on the lock: who holds the environment, and how to free it.
            staticSummary: `${context.environment} is held by rollback ${markdownSafe(workflowId)}`,
            staticDetails: `One rollback of ${markdownSafe(context.environment)} at a time. The lock ends when that rollback completes, or with it.`,
          }),
        );
        return;
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        const holder = await control.lockHolder(id);
        // The holder finished between our start and the question: the lock is free again.
        if (holder === undefined && attempt < 3) continue;
        throw new RollbackEnded(
          'failed',
          `decide failed: ${environmentBusyMessage(holder ?? `(lock workflow ${id})`, context.environment)}`,
        );
      }
    }
  }

  /** What prepare staged and execute did not use; an agent that is down only leaves it for its sweep. */
  async function discardStaging(): Promise<void> {
    if (!run.staging || !run.ctx) return;
    // Each host's agent staged its own components' data.
    const { envTaskQueue } = run.ctx;
    const queues = [...new Set(run.ctx.components.map((c) => componentTaskQueue(envTaskQueue, c.name)))];
    for (const taskQueue of queues.length > 0 ? queues : [envTaskQueue]) {
      const agent = proxyActivities<AgentActivities>({
        taskQueue,
        scheduleToCloseTimeout: '30 seconds',
        retry: { maximumAttempts: 3 },
      });
      try {
        await CancellationScope.nonCancellable(() =>
          agent.discardStaging({ environment: request.environment, workflowId }),
        );
      } catch (err) {
        log.warn('staged data was not discarded', { error: describeFailure(err) });
      }
    }
  }

  async function releaseEnvironmentLock(): Promise<void> {
    const held = run.lock;
    if (!held) return;
    run.lock = undefined;
    try {
      await CancellationScope.nonCancellable(() => held.signal(releaseLockSignal));
    } catch (err) {
      // The lock ended without us (terminated by hand, say): the environment is free already,
      // and a rollback that did its work must not end failed for it.
      log.warn('the environment lock was already gone', { lock: held.workflowId, error: describeFailure(err) });
    }
  }

  async function prepare(): Promise<void> {
    enterPhase('prepare');
    if (patched('prepare-at-once')) return prepareAtOnce();
    const context = run.ctx!;
    const section = await takeCrossSection(
      {
        environment: context.environment,
        envTaskQueue: context.envTaskQueue,
        components: context.components.map((c) => c.name),
        heartbeatTimeoutMs: context.heartbeatTimeoutMs,
      },
      { origin: request.dryRun ? 'dry-run' : 'safety', reason: `safety before ${workflowId}` },
    );
    run.safety = section.components;
    await control.confirmReadable(Object.values(run.safety));
    // Plans are made by the agents, which hold the listings and can reach the databases.
    const planOnAgent = patched('plan-components-on-agent');
    const agentOf = (component: string) =>
      proxyActivities<AgentActivities>({ ...quick, taskQueue: componentTaskQueue(context.envTaskQueue, component) });
    const plans = await Promise.all(
      context.components.map((component) =>
        planOnAgent
          ? agentOf(component.name).assessComponent({
              environment: context.environment,
              component: component.name,
              workflowId,
              safety: run.safety[component.name]!,
              target: {
                snapshotId: component.targetSnapshotId,
                listingSnapshotId: component.targetListingSnapshotId,
                fingerprint: component.targetFingerprint,
              },
              previewPaths: context.previewPaths,
              ...stepOptions(component),
            })
          : control.planComponent({
              workflowId,
              component,
              safety: run.safety[component.name]!,
              previewPaths: context.previewPaths,
            }),
      ),
    );
    status.plan = assemblePlan(section.crossSectionId, context.components, plans, context.verification);
    const impossible = impossibleSteps(status.plan);
    if (impossible.length > 0 && !request.dryRun)
      throw new RollbackEnded('failed', `${impossible.join('; ')}; choose another with --strategy`);
  }

  /**
   * Prepare with no wait that can be avoided. The target's data is read back (started in
   * decide); a component already at its target needs no new safety snapshot; the others' safety
   * snapshots are taken at the same time and awaited only by what needs them: the plans of
   * kinds that cannot plan from the live component, and execute, which also waits for each new
   * snapshot to be read back before it writes anything. The approval is asked as soon as the
   * plan is made, so a human reads it while the safety snapshots are stored.
   */
  async function prepareAtOnce(): Promise<void> {
    const context = run.ctx!;
    const targets = Object.fromEntries(context.components.map((c) => [c.name, targetSnapshotOf(c)]));
    const id = crossSectionId(new Date(), uuid4());
    run.safetyTaken = takeCrossSection(
      {
        environment: context.environment,
        envTaskQueue: context.envTaskQueue,
        components: context.components.map((c) => c.name),
        heartbeatTimeoutMs: context.heartbeatTimeoutMs,
      },
      {
        origin: request.dryRun ? 'dry-run' : 'safety',
        reason: `safety before ${workflowId}`,
        unlessAt: targets,
        crossSectionId: id,
      },
      (component, state, snapshot) => {
        if (state !== 'done' || !snapshot) return;
        run.safety[component] = snapshot;
        showSafetyInPlan();
        if (snapshot.snapshotId === targets[component]!.snapshotId) return;
        const confirm = proxyActivities<ControlActivities>({ ...quick, activityId: `confirm/${component}` });
        run.confirming.push(confirm.confirmReadable([snapshot]).then(noFailure, (err: unknown) => err));
      },
    ).then(
      (section) => {
        run.safety = section.components;
        showSafetyInPlan();
      },
      (err: unknown) => {
        run.safetyFailure = err;
      },
    );
    const checks = await (run.staging ??= stageTargets(context));
    if (checks instanceof Error) throw checks;
    const plans = await Promise.all(
      context.components.map(async (component) => {
        const live = plansFromLiveState(component.kind);
        if (!live) await safetyTaken();
        const agent = proxyActivities<AgentActivities>({
          ...quick,
          taskQueue: componentTaskQueue(context.envTaskQueue, component.name),
        });
        return agent.assessComponent({
          environment: context.environment,
          component: component.name,
          workflowId,
          ...(live ? {} : { safety: run.safety[component.name]! }),
          target: targets[component.name]!,
          previewPaths: context.previewPaths,
          ...stepOptions(component),
        });
      }),
    );
    plans.forEach((plan, i) => (plan.targetCheck = { readable: checks[i]!.readable, note: checks[i]!.note }));
    status.plan = assemblePlan(id, context.components, plans, context.verification);
    // A plan that writes a lot most likely has a safety snapshot that takes long to store: it is
    // stored before the approval is asked, so that an approved run goes straight to writing.
    if (status.plan.totals.bytesToWrite > EARLY_APPROVAL_MAX_BYTES) await safetyTaken();
    showSafetyInPlan();
    const blocked = blockedSteps(status.plan);
    if (blocked.length > 0 && !request.dryRun) throw new RollbackEnded('failed', blocked.join('; '));
    await preflightChecks(context);
  }

  /**
   * Verification that could not judge at all (Prometheus unreachable, a query it refuses) ends
   * the run before approval: better than switching traffic and then being unable to check it.
   */
  async function preflightChecks(context: RollbackContext): Promise<void> {
    const names = context.verification?.checks.map((c) => c.name) ?? [];
    if (names.length === 0) return;
    const agent = proxyActivities<AgentActivities>({ ...quick, taskQueue: context.envTaskQueue });
    const problems = await agent.preflightChecks({ environment: context.environment, checks: names });
    if (problems.length > 0)
      throw new RollbackEnded(
        'failed',
        `prepare failed: verification could not judge this rollback, so nothing was changed: ${problems.join('; ')}`,
      );
  }

  /** The plan names each component's safety snapshot once it is taken. */
  function showSafetyInPlan(): void {
    for (const c of status.plan?.components ?? []) {
      const safety = run.safety[c.component];
      if (safety) c.safetySnapshotId = safety.snapshotId;
    }
  }

  /** Waits for the safety cross-section; a run whose safety snapshot failed ends, nothing changed. */
  async function safetyTaken(): Promise<void> {
    await run.safetyTaken;
    if (run.safetyFailure !== undefined)
      throw new RollbackEnded(
        'failed',
        `prepare failed: the safety snapshot could not be taken, so nothing was changed: ${describeFailure(run.safetyFailure)}`,
      );
  }

  /** Reads back (and stages) each component's target data on the agent; a failure is returned, not thrown. */
  function stageTargets(context: RollbackContext): Promise<StageOutcome[] | Error> {
    return Promise.all(
      context.components.map((c) =>
        proxyActivities<AgentActivities>({
          ...transfer(componentTaskQueue(context.envTaskQueue, c.name), context.heartbeatTimeoutMs),
          activityId: `stage/${c.name}`,
        }).stageComponent({
          environment: context.environment,
          component: c.name,
          workflowId,
          target: targetSnapshotOf(c),
          ...(c.strategy !== undefined ? { strategy: c.strategy } : {}),
        }),
      ),
    ).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
  }

  /** No destructive step before the safety cross-section exists and every new snapshot of it has been read back. */
  async function safetyConfirmed(): Promise<void> {
    await safetyTaken();
    const failures = (await Promise.all(run.confirming)).filter((f) => f !== undefined);
    if (failures.length > 0)
      throw new RollbackEnded(
        'failed',
        `the safety snapshot could not be read back, so nothing was changed: ${failures.map(describeFailure).join('; ')}`,
      );
  }

  async function approval(): Promise<'approved' | 'rejected' | 'timed-out'> {
    enterPhase('approval');
    if (status.rejection) return 'rejected';
    if (autoApproved()) {
      void announce('approved');
      return 'approved';
    }
    const { approvalTimeoutMs } = run.ctx!;
    status.approvalDeadline = new Date(Date.now() + approvalTimeoutMs).toISOString();
    setState('awaiting-approval');
    void announce('awaiting-approval');
    // A safety snapshot that fails while the approval waits ends the run at once.
    const decided = await condition(
      () => approvalSettled(status) || run.safetyFailure !== undefined,
      approvalTimeoutMs,
    );
    if (run.safetyFailure !== undefined) await safetyTaken();
    if (status.rejection) return 'rejected';
    if (!decided) return 'timed-out';
    setState('running');
    void announce('approved');
    return 'approved';
  }

  /**
   * The run's trigger rule approves it (`triggers.rules[].autoApprove`), unless its plan loses
   * data that neither the request nor the rule accepts: then it waits for humans like any run,
   * and the status says why. Runs without a rule that may approve take no step here.
   */
  function autoApproved(): boolean {
    const auto = run.ctx!.autoApproval;
    if (!auto) return false;
    const at = now();
    if (status.plan?.destructive && !status.acceptDataLoss && !auto.acceptDataLoss) {
      status.autoApproval = {
        rule: auto.rule,
        applied: false,
        at,
        reason: `the plan loses data and trigger rule ${auto.rule} does not accept that (acceptDataLoss): a human must approve`,
      };
      return false;
    }
    status.autoApproval = { rule: auto.rule, applied: true, at };
    status.approvals.push({
      user: `trigger rule ${auto.rule}`,
      requestId: `auto-approval-${auto.rule}`.slice(0, 80),
      at,
      comment: `approved by the manifest (triggers.rules ${auto.rule}: autoApprove)`,
      ...(status.plan?.destructive ? { acceptDataLoss: true } : {}),
    });
    log.info('auto-approved by trigger rule', { rule: auto.rule });
    return true;
  }

  async function execute(): Promise<void> {
    enterPhase('execute');
    await safetyConfirmed();
    const context = run.ctx!;
    const waves = context.verification?.waves ?? [];
    if (waves.length === 0) return executeSteps(context, context.components);
    // A staged rollout: each wave is verified (its components and its checks) before the next
    // starts; the last one is verified by the verify phase.
    for (const [i, wave] of waves.entries()) {
      const members = context.components.filter((c) => wave.components.includes(c.name));
      log.info('wave started', { wave: wave.name, components: wave.components.join(',') });
      await executeSteps(context, members);
      if (i < waves.length - 1) await verifyComponents(members, wave.name);
    }
  }

  async function executeSteps(context: RollbackContext, components: RollbackComponent[]): Promise<void> {
    const firstFailure = await runInDependencyOrder(
      components,
      (component) => restoreStep(context, component),
      (component) => {
        const step = status.steps[component.name]!;
        if (step.state === 'pending') step.state = 'not-run';
      },
    );
    if (firstFailure === undefined) return;
    if (isCancellation(firstFailure)) throw firstFailure as Error;
    throw await compensate(`execute failed: ${describeFailure(firstFailure)}`);
  }

  async function restoreStep(context: RollbackContext, component: RollbackComponent): Promise<void> {
    const step = status.steps[component.name]!;
    // Registered before the step runs: a restore may half-succeed.
    run.touched.push(component);
    step.state = 'running';
    step.startedAt = now();
    const agent = proxyActivities<AgentActivities>({
      ...transfer(componentTaskQueue(context.envTaskQueue, component.name), context.heartbeatTimeoutMs),
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
        idempotencyKey: stepKey('rollback', component),
        ...stepOptions(component),
        ...(run.staging ? { stagedFor: workflowId } : {}),
      });
      step.state = 'done';
    } catch (err) {
      step.state = 'failed';
      step.error = describeFailure(err);
      throw err;
    } finally {
      step.endedAt = now();
      showDetails();
    }
  }

  async function verify(): Promise<void> {
    enterPhase('verify');
    await verifyComponents(run.ctx!.components);
  }

  /**
   * Checks that `components` equal their targets and runs the verification checks that concern
   * them (all of them in verify, `wave` unset); a failure goes to the manifest's policy.
   */
  async function verifyComponents(components: RollbackComponent[], wave?: string): Promise<void> {
    const context = run.ctx!;
    const agent = proxyActivities<AgentActivities>(transfer(context.envTaskQueue, context.heartbeatTimeoutMs));
    const outcomes = await Promise.all(
      components.map(async (c) => {
        const outcome = await proxyActivities<AgentActivities>(
          transfer(componentTaskQueue(context.envTaskQueue, c.name), context.heartbeatTimeoutMs),
        ).verifyComponent({
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
    const failed: string[] = mismatches.map(
      (m) =>
        `${m.component} differs from the target (${m.differences.map((d) => `${d.op} ${d.subject}${d.detail ? ` (${d.detail})` : ''}`).join(', ') || 'fingerprint only'})`,
    );
    const checks = checksFor(
      context.verification?.checks ?? [],
      wave === undefined ? undefined : components.map((c) => c.name),
    );
    if (checks.length > 0) {
      const results: CheckResult[] = await agent.runChecks({
        environment: context.environment,
        checks: checks.map((c) => c.name),
        ...(wave !== undefined ? { wave } : {}),
      });
      (status.checks ??= []).push(...results);
      showDetails();
      for (const r of results.filter((r) => !r.passed))
        failed.push(`check ${r.name} failed: ${r.problem ?? 'failed'} (measured ${r.value})`);
    }
    if (failed.length === 0) return;
    const detail = `${wave !== undefined ? `after wave ${wave}: ` : ''}${failed.join('; ')}`;
    for (const m of mismatches) status.steps[m.component]!.error = `verify: ${detail}`;
    await onVerificationFailure(detail, wave);
  }

  /** The manifest's `verify.onFailure`: compensate, ask an approver, or accept with a warning. */
  async function onVerificationFailure(detail: string, wave: string | undefined): Promise<void> {
    const policy = run.ctx!.verification?.onFailure ?? 'compensate';
    if (policy === 'accept-with-warning') {
      (status.warnings ??= []).push(
        `verify failed and the manifest accepts it (onFailure: accept-with-warning): ${detail}`,
      );
      showDetails();
      return;
    }
    if (policy === 'ask') {
      const { askDeadlineMs, askDefault } = run.ctx!.verification!;
      const wait: VerificationWait = (status.verification = {
        awaiting: true,
        failure: detail,
        ...(wave !== undefined ? { wave } : {}),
        deadline: new Date(Date.now() + askDeadlineMs).toISOString(),
        default: askDefault,
      });
      showDetails();
      log.info('verification failed; waiting for accept or compensate', { deadline: wait.deadline });
      const decided = await condition(() => wait.decision !== undefined, askDeadlineMs);
      if (!decided) wait.decision = { decision: askDefault, user: 'deadline', at: now(), requestId: 'deadline' };
      wait.awaiting = false;
      showDetails();
      const { decision, user } = wait.decision!;
      if (decision === 'accept') {
        (status.warnings ??= []).push(
          `verify failed and was accepted by ${user === 'deadline' ? `the deadline (default ${askDefault})` : user}: ${detail}`,
        );
        return;
      }
      throw await compensate(
        `verify failed and ${user === 'deadline' ? `the deadline chose ${askDefault}` : `${user} chose to compensate`}: ${detail}`,
      );
    }
    throw await compensate(`verify failed: ${detail}`);
  }

  async function complete(state: RollbackState, cause?: string): Promise<RollbackStatus> {
    enterPhase('complete');
    if (state === 'completed' && !request.dryRun) await startFollowUps();
    status.state = state;
    for (const step of Object.values(status.steps)) if (step.state === 'pending') step.state = 'not-run';
    if (cause !== undefined) status.cause = cause;
    closePhase();
    status.report = renderRollbackReport(status);
    status.reportFile = await CancellationScope.nonCancellable(() =>
      control.saveReport({ workflowId, markdown: status.report! }),
    );
    await discardStaging();
    await releaseEnvironmentLock();
    setState(state);
    log.info('rollback finished', { state, cause: cause ?? '' });
    await announce(state as RollbackEvent);
    await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
    return status;
  }

  /**
   * What completed steps asked for later (RestoreOutcome.later): each an abandoned child
   * workflow that waits, then asks the agent. Only runs whose steps ask start any.
   */
  async function startFollowUps(): Promise<void> {
    const context = run.ctx!;
    for (const step of Object.values(status.steps)) {
      const later = step.outcome?.later;
      if (!later) continue;
      const id = `${workflowId}-later-${step.component}`;
      try {
        await CancellationScope.nonCancellable(() =>
          startChild(followUpWorkflow, {
            workflowId: id,
            parentClosePolicy: ParentClosePolicy.ABANDON,
            staticSummary: `${markdownSafe(later.what)} after rollback ${markdownSafe(workflowId)}`,
            args: [
              {
                environment: context.environment,
                envTaskQueue: context.envTaskQueue,
                ...(splitHost(step.component).host !== undefined
                  ? { taskQueue: componentTaskQueue(context.envTaskQueue, step.component) }
                  : {}),
                component: step.component,
                afterMs: later.afterMs,
                what: later.what,
                details: later.details,
              },
            ],
          }),
        );
        step.followUp = { what: later.what, at: new Date(Date.now() + later.afterMs).toISOString(), workflowId: id };
      } catch (err) {
        log.warn('follow-up not started', { component: step.component, error: describeFailure(err) });
      }
    }
  }

  // ---- compensation and endings ----

  /** Restores every touched component from the safety cross-section, newest step first. */
  async function compensate(cause: string): Promise<RollbackEnded> {
    enterPhase('compensate');
    const context = run.ctx!;
    const failures: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (const component of [...run.touched].reverse()) {
        const step = status.steps[component.name]!;
        const snapshot = run.safety[component.name]!;
        step.state = 'compensating';
        const agent = proxyActivities<AgentActivities>({
          ...compensation(componentTaskQueue(context.envTaskQueue, component.name), context.heartbeatTimeoutMs),
          activityId: `compensate/${component.name}`,
        });
        try {
          // The driver decides what putting the component back takes (nothing, if the step
          // it undoes changed nothing).
          const outcome = await agent.restoreComponent({
            environment: context.environment,
            component: component.name,
            snapshotId: snapshot.snapshotId,
            listingSnapshotId: snapshot.listingSnapshotId,
            fingerprint: snapshot.fingerprint,
            purpose: 'compensation',
            idempotencyKey: stepKey('compensation', component),
            compensates: {
              idempotencyKey: stepKey('rollback', component),
              ...(component.strategy !== undefined ? { strategy: component.strategy } : {}),
            },
          });
          step.state = 'compensated';
          step.compensation =
            outcome.note ??
            (outcome.alreadyAtTarget
              ? 'already at its state before the rollback'
              : 'restored from the safety snapshot');
        } catch (err) {
          step.state = 'compensation-failed';
          failures.push(`${component.name}: ${describeFailure(err)}`);
          log.error('compensation step failed', { component: component.name, error: describeFailure(err) });
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
      const cause = cancelCause();
      await CancellationScope.nonCancellable(async () => {
        if (run.touched.length > 0 && run.ctx) {
          const ended = await compensate(cause);
          await complete(ended.state, ended.cause);
        } else {
          await complete('cancelled', `${cause}; nothing was changed`);
        }
      });
      throw err;
    }
    const ended =
      err instanceof RollbackEnded
        ? err
        : new RollbackEnded('failed', `${status.phase} failed: ${describeFailure(err)}`);
    const final = await complete(ended.state, ended.cause);
    throw ApplicationFailure.create({
      message: `rollback ${final.state}: ${ended.cause}`,
      type: final.state === 'compensated' ? 'RollbackCompensated' : 'RollbackFailed',
      nonRetryable: true,
      details: [final],
    });
  }

  /** "cancelled during execute", or with the recorded actor: "cancelled by bob during execute: wrong target". */
  function cancelCause(): string {
    const c = status.cancellation;
    if (!c) return `cancelled during ${status.phase}`;
    return `cancelled by ${c.user} during ${c.phase}${c.reason ? `: ${c.reason}` : ''}`;
  }

  // ---- decisions ----

  function validateDecision(action: DecisionAction, payload: DecisionPayload): void {
    const problem =
      payloadProblem(decisionPayloadSchema, payload) ??
      decisionTimingProblem(action, status) ??
      unrecordedRefusal(action, payload, status);
    if (problem) throw refused(problem);
  }

  async function onDecision(action: DecisionAction, payload: DecisionPayload): Promise<DecisionOutcome> {
    const outcome = applyDecision(status, action, { ...payload, at: now() });
    if (!outcome.accepted) {
      log.warn('decision refused', { action, user: payload.user, reason: outcome.reason });
      return outcome;
    }
    // A decision that settles approval answers with where it led (execute, or the end), which
    // the run reaches within the same workflow task.
    if (status.phase === 'approval' && approvalSettled(status)) await condition(() => status.phase !== 'approval');
    return { ...outcome, ...whereTheRunIs(status) };
  }

  /** Runs started before the Updates (docs/versioning.md): a signal counts once per request id. */
  function onLegacySignal(action: DecisionAction, payload: DecisionPayload): void {
    const at = now();
    const malformed = payloadProblem(decisionPayloadSchema, payload);
    if (malformed) {
      recordRefusal(status, {
        action,
        user: '?',
        requestId: '?',
        at,
        reason: `invalid ${action} request: ${malformed}`,
      });
      return;
    }
    if (run.legacyRequests.has(payload.requestId)) return;
    run.legacyRequests.add(payload.requestId);
    const late = decisionTimingProblem(action, status);
    if (late) recordRefusal(status, { ...payload, at, action, reason: late });
    else applyDecision(status, action, { ...payload, at: now() });
  }

  function validateCancel(payload: CancelPayload): void {
    const problem = payloadProblem(cancelPayloadSchema, payload) ?? cancelProblem(status);
    if (problem) throw refused(problem);
  }

  function onCancel(payload: CancelPayload): DecisionOutcome {
    status.cancellation ??= { ...payload, at: now(), phase: status.phase };
    log.warn('cancellation requested', { user: payload.user, reason: payload.reason ?? '' });
    return { accepted: true, ...whereTheRunIs(status) };
  }

  function validateVerificationDecision(payload: VerificationDecisionPayload): void {
    const problem =
      payloadProblem(verificationDecisionPayloadSchema, payload) ?? verificationDecisionProblem(status, payload);
    if (problem) throw refused(problem);
  }

  /** `accept` or `compensate` after a failed verification (`onFailure: ask`); the first one counts. */
  async function onVerificationDecision(payload: VerificationDecisionPayload): Promise<DecisionOutcome> {
    const wait = status.verification!;
    wait.decision = {
      decision: payload.decision,
      user: payload.user,
      at: now(),
      requestId: payload.requestId,
      ...(payload.comment !== undefined ? { comment: payload.comment } : {}),
    };
    log.info('verification decided', { decision: payload.decision, user: payload.user });
    await condition(() => !wait.awaiting);
    return { accepted: true, ...whereTheRunIs(status) };
  }

  // ---- bookkeeping ----

  function stepOptions(component: RollbackComponent) {
    return {
      ...(component.strategy !== undefined ? { strategy: component.strategy } : {}),
      ...(component.targetTime !== undefined ? { targetTime: component.targetTime } : {}),
    };
  }

  /** The component's snapshot in the target cross-section. */
  function targetSnapshotOf(component: RollbackComponent): ComponentSnapshot {
    return {
      component: component.name,
      snapshotId: component.targetSnapshotId,
      listingSnapshotId: component.targetListingSnapshotId,
      fingerprint: component.targetFingerprint,
    };
  }

  /** Names a step so that its retry, and its compensation, recognise its work. */
  function stepKey(purpose: 'rollback' | 'compensation', component: RollbackComponent): string {
    return `${workflowId}/${purpose}/${component.name}`;
  }

  function enterPhase(phase: Phase): void {
    closePhase();
    status.phase = phase;
    status.phases[phase] = { startedAt: now() };
    upsertAttributes();
    if (phase === 'execute' || phase === 'verify' || phase === 'compensate') void announce('phase');
  }

  /**
   * Tells people where the run is, one announcement after another (so a message is never
   * updated out of order), through cancellation too; a failure is logged, not raised.
   */
  function announce(event: RollbackEvent): Promise<void> {
    if (!announces) return announcing;
    const { report: _report, ...view } = status;
    // A copy as of now: the status goes on changing while earlier announcements are sent.
    const snapshot = JSON.parse(JSON.stringify(view)) as typeof view;
    announcing = announcing
      .then(() => CancellationScope.nonCancellable(() => people.announceRollback({ event, status: snapshot })))
      .catch((err: unknown) => log.warn('could not announce the rollback', { event, error: describeFailure(err) }));
    return announcing;
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
    upsertSearchAttributes(rollbackSearchAttributes(status));
    showDetails();
  }

  /** The Web UI's "current details": what `rewind rollback status` would say, in short. */
  function showDetails(): void {
    setCurrentDetails(renderCurrentDetails(status));
  }
}

/** A validator's refusal: the request never reaches history, and the client reads the message. */
function refused(message: string): ApplicationFailure {
  return ApplicationFailure.create({ message, type: ErrorType.InvalidRequest, nonRetryable: true });
}

function now(): string {
  return new Date().toISOString();
}
