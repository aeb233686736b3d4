// The typed client for rewind: what the CLI uses, and what incident tooling imports to start,
// approve and follow rollbacks and snapshots.
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  WorkflowFailedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure, type TypedSearchAttributes } from '@temporalio/common';
import type { StepProgress } from '../activities/progress';
import { approveSignal, rejectSignal, rollbackStatusQuery, snapshotStatusQuery } from '../domain/messages';
import { describeTarget, FINAL_STATES, rollbackRequestSchema, targetKeyword, type RollbackRequest, type RollbackStatus } from '../domain/rollback';
import type { CrossSectionResult, SnapshotRequest } from '../domain/snapshot';
import { snapshotRequestSchema } from '../domain/snapshot';
import {
  dryRunAttribute,
  environmentAttribute,
  phaseAttribute,
  stateAttribute,
  targetAttribute,
  triggerAttribute,
} from '../domain/search-attributes';
import { envTaskQueue, type Manifest } from '../manifest/schema';
import { runningRollbacks } from '../platform/rollback-runs';
import type { SnapshotStore } from '../snapshots/store';
import { temporal } from '@temporalio/proto';
import type { z } from 'zod';

export class RequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RequestError';
  }
}

/** The innermost message of a failure chain (workflow → activity → application failure). */
export function failureMessage(err: unknown): string {
  let current: unknown = err;
  let message = err instanceof Error ? err.message : String(err);
  while (current instanceof Error) {
    if (current instanceof ApplicationFailure || !(current.cause instanceof Error)) message = current.message;
    if (current instanceof ApplicationFailure) break;
    current = current.cause;
  }
  return message;
}

/** `rollback-production-20261128-130641-a1b2`: readable in the Web UI, unique enough to type. */
export function newWorkflowId(kind: 'rollback' | 'snapshot', environment: string, at = new Date()): string {
  const iso = at.toISOString();
  const stamp = `${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}`;
  return `${kind}-${environment}-${stamp}-${randomBytes(2).toString('hex')}`;
}

/** Checks a request against the manifest before anything starts, so mistakes fail at once. */
export function checkAgainstManifest(manifest: Manifest, environment: string, components?: string[]): void {
  const env = manifest.environments[environment];
  if (!env) {
    throw new RequestError(`unknown environment "${environment}" (the manifest declares: ${Object.keys(manifest.environments).join(', ')})`);
  }
  const unknown = (components ?? []).filter((c) => !(c in env.components));
  if (unknown.length) {
    throw new RequestError(
      `environment "${environment}" has no component ${unknown.map((c) => `"${c}"`).join(', ')} (it has: ${Object.keys(env.components).join(', ')})`,
    );
  }
}

function parseRequest<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RequestError(`${issue.path.join('.') || 'request'}: ${issue.message}`);
  }
  return parsed.data;
}

export interface LiveStep {
  component: string;
  activity: string;
  attempt: number;
  state: string;
  progress?: StepProgress;
  lastFailure?: string;
}

export interface RollbackView {
  status: RollbackStatus;
  /** Temporal's own status of the run: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT. */
  execution: string;
  /** Activities running right now, with their last heartbeat. */
  live: LiveStep[];
}

export class RewindClient {
  /**
   * With `store` (the repository is reachable and its password known), a rollback whose target
   * does not exist, or whose environment is busy, is refused before any run starts.
   */
  constructor(
    readonly client: Client,
    readonly manifest: Manifest,
    readonly store?: SnapshotStore,
  ) {}

  private get taskQueue(): string {
    return this.manifest.temporal.taskQueue;
  }

  async startSnapshot(input: unknown): Promise<WorkflowHandle> {
    const request: SnapshotRequest = parseRequest(snapshotRequestSchema, input);
    checkAgainstManifest(this.manifest, request.environment, request.components);
    return this.client.workflow.start('snapshotWorkflow', {
      taskQueue: this.taskQueue,
      workflowId: newWorkflowId('snapshot', request.environment),
      args: [request],
      typedSearchAttributes: [{ key: environmentAttribute, value: request.environment }],
    });
  }

  async snapshotResult(workflowId: string): Promise<CrossSectionResult> {
    return (await this.client.workflow.getHandle(workflowId).result()) as CrossSectionResult;
  }

  async snapshotProgress(workflowId: string) {
    return this.client.workflow.getHandle(workflowId).query(snapshotStatusQuery);
  }

  async startRollback(input: unknown): Promise<{ workflowId: string; request: RollbackRequest }> {
    const request: RollbackRequest = parseRequest(rollbackRequestSchema, input);
    checkAgainstManifest(this.manifest, request.environment, request.components);
    await this.precheckRollback(request);
    const workflowId = newWorkflowId('rollback', request.environment);
    const target = targetKeyword(request.target);
    await this.client.workflow.start('rollbackWorkflow', {
      taskQueue: this.taskQueue,
      workflowId,
      args: [request],
      memo: { dryRun: request.dryRun, requester: request.requester },
      typedSearchAttributes: [
        { key: environmentAttribute, value: request.environment },
        { key: phaseAttribute, value: 'decide' },
        { key: stateAttribute, value: 'running' },
        { key: triggerAttribute, value: request.trigger },
        { key: targetAttribute, value: target },
        { key: dryRunAttribute, value: request.dryRun },
      ],
    });
    return { workflowId, request };
  }

  /** The decide phase's checks, made early so that a doomed request leaves no failed run behind. */
  private async precheckRollback(request: RollbackRequest): Promise<void> {
    if (request.strategy !== undefined) {
      const env = this.manifest.environments[request.environment]!;
      const chosen = request.components ?? Object.keys(env.components);
      if (!chosen.some((c) => env.components[c]?.kind === 'postgres')) {
        throw new RequestError(`--strategy ${request.strategy} applies to postgres components, and this rollback has none`);
      }
      const withoutPitr = chosen.filter((c) => {
        const component = env.components[c];
        return component?.kind === 'postgres' && !component.pitr;
      });
      if (request.strategy === 'pitr' && withoutPitr.length > 0) {
        throw new RequestError(
          `--strategy pitr needs point-in-time recovery set up for every database in the rollback; ${withoutPitr.map((c) => `${request.environment}/${c}`).join(', ')} has none (environments.${request.environment}.components.${withoutPitr[0]}.pitr)`,
        );
      }
    }
    if (!request.dryRun) {
      const [busy] = await runningRollbacks(this.client, this.taskQueue, request.environment);
      if (busy) throw new RequestError(`rollback ${busy} is already running on ${request.environment}; wait for it or cancel it first`);
    }
    if (!this.store) return;
    if (!(await this.store.findTarget(request.environment, request.target))) {
      throw new RequestError(
        `no cross-section of ${request.environment} matches ${describeTarget(request.target)} (rewind snapshot list --env ${request.environment})`,
      );
    }
  }

  /**
   * Sends an approval or rejection, then waits until the workflow has recorded it, so the
   * caller learns whether it counted (non-approvers and self-approval are refused).
   */
  async decide(
    workflowId: string,
    action: 'approve' | 'reject',
    decision: { user: string; comment?: string; requestId?: string; acceptDataLoss?: boolean },
    timeoutMs = 15_000,
  ): Promise<{ accepted: boolean; reason?: string; status: RollbackStatus }> {
    const handle = this.client.workflow.getHandle(workflowId);
    const requestId = decision.requestId ?? randomUUID();
    const ended = (status: RollbackStatus) => ({ accepted: false, reason: `the rollback already ended (${status.state})`, status });
    // Whether this request (same id) was already recorded: a retried request gets its first answer.
    const outcomeOf = (status: RollbackStatus) => {
      const refusal = status.refusals.find((r) => r.requestId === requestId);
      if (refusal) return { accepted: false, reason: refusal.reason, status };
      const counted = status.approvals.some((a) => a.requestId === requestId) || status.rejection?.requestId === requestId;
      return counted ? { accepted: true, status } : undefined;
    };
    const before = await this.rollbackView(workflowId);
    const earlier = outcomeOf(before.status);
    if (earlier) return earlier;
    if (before.execution !== 'RUNNING') return ended(before.status);
    try {
      await handle.signal(action === 'approve' ? approveSignal : rejectSignal, {
        user: decision.user,
        requestId,
        ...(decision.comment ? { comment: decision.comment } : {}),
        ...(decision.acceptDataLoss ? { acceptDataLoss: true } : {}),
      });
    } catch (err) {
      // It closed between our look and our signal.
      if (err instanceof WorkflowNotFoundError) return ended((await this.rollbackView(workflowId)).status);
      throw err;
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { status } = await this.rollbackView(workflowId);
      const outcome = outcomeOf(status);
      if (outcome) return outcome;
      if (FINAL_STATES.includes(status.state)) return ended(status);
      if (Date.now() > deadline) throw new RequestError(`${action} was sent but not yet recorded by ${workflowId}; check its status`);
      await sleep(200);
    }
  }

  /** Requests cancellation; refuses, saying how it ended, when the run is already over. */
  async cancel(workflowId: string): Promise<void> {
    const { status, execution } = await this.rollbackView(workflowId);
    if (execution !== 'RUNNING') throw new RequestError(`${workflowId} already ended (${status.state}); there is nothing to cancel`);
    await this.client.workflow.getHandle(workflowId).cancel();
  }

  /** The rollback's status, from its query, or from its result once no worker can answer. */
  async rollbackView(workflowId: string): Promise<RollbackView> {
    const handle = this.client.workflow.getHandle(workflowId);
    let description: WorkflowExecutionDescription;
    try {
      description = await handle.describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new RequestError(`no rollback with id ${workflowId}`);
      throw err;
    }
    if (description.type !== 'rollbackWorkflow') throw new RequestError(`${workflowId} is a ${description.type}, not a rollback`);
    const execution = description.status.name;
    let status: RollbackStatus | undefined;
    if (execution === 'RUNNING') {
      status = await handle.query(rollbackStatusQuery).catch((err: unknown) => {
        throw new RequestError(
          `${workflowId} is running, but no control worker answers its status query (is \`rewind worker\` running on task queue ${this.taskQueue}?): ${err instanceof Error ? err.message : String(err)}`,
        );
      });
    } else {
      status = await finalStatus(handle).catch(() => undefined);
      status ??= await handle.query(rollbackStatusQuery).catch(() => undefined);
    }
    if (!status) throw new RequestError(`${workflowId} ended as ${execution} and left no status`);
    return { status, execution, live: liveSteps(description) };
  }

  /** Polls until the rollback reaches a phase or state the caller waits for. */
  async waitForRollback(
    workflowId: string,
    until: (s: RollbackStatus) => boolean,
    { timeoutMs = 600_000, intervalMs = 300, onUpdate }: { timeoutMs?: number; intervalMs?: number; onUpdate?: (v: RollbackView) => void } = {},
  ): Promise<RollbackView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const view = await this.rollbackView(workflowId);
      onUpdate?.(view);
      if (until(view.status) || FINAL_STATES.includes(view.status.state)) return view;
      if (Date.now() > deadline) throw new RequestError(`timed out waiting for ${workflowId} (phase ${view.status.phase}, state ${view.status.state})`);
      await sleep(intervalMs);
    }
  }

  /** Whether an agent polls the environment's task queue right now. */
  async agentIsPolling(environment: string): Promise<boolean> {
    const response = await this.client.workflowService.describeTaskQueue({
      namespace: this.client.options.namespace,
      taskQueue: { name: envTaskQueue(this.manifest, environment), kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    });
    return (response.pollers ?? []).length > 0;
  }

  async listRollbacks(environment?: string, limit = 20) {
    // Also keeps the visibility query below free of anything but a declared name.
    if (environment !== undefined) checkAgainstManifest(this.manifest, environment);
    const query = `WorkflowType = 'rollbackWorkflow' AND TaskQueue = '${this.taskQueue}'${environment ? ` AND RewindEnvironment = '${environment}'` : ''}`;
    const runs = [];
    for await (const run of this.client.workflow.list({ query, pageSize: limit })) {
      runs.push({
        workflowId: run.workflowId,
        execution: run.status.name,
        startTime: run.startTime.toISOString(),
        ...searchAttributesOf(run.typedSearchAttributes),
      });
      if (runs.length >= limit) break;
    }
    return runs;
  }
}

async function finalStatus(handle: WorkflowHandle): Promise<RollbackStatus | undefined> {
  try {
    return (await handle.result()) as RollbackStatus;
  } catch (err) {
    // Failed and compensated runs carry their status as failure details.
    let cause: unknown = err instanceof WorkflowFailedError ? err.cause : err;
    while (cause instanceof Error) {
      if (cause instanceof ApplicationFailure && cause.details?.[0]) return cause.details[0] as RollbackStatus;
      cause = cause.cause;
    }
    return undefined;
  }
}

function liveSteps(description: WorkflowExecutionDescription): LiveStep[] {
  const pending = description.raw.pendingActivities ?? [];
  return pending.map((a) => {
    const [stage, component] = (a.activityId ?? '').split('/');
    const details = a.heartbeatDetails?.payloads?.[0];
    let progress: StepProgress | undefined;
    if (details?.data) {
      try {
        progress = JSON.parse(Buffer.from(details.data).toString('utf8')) as StepProgress;
      } catch {
        progress = undefined;
      }
    }
    const stateName = temporal.api.enums.v1.PendingActivityState[a.state ?? 0] ?? 'UNSPECIFIED';
    return {
      component: progress?.component ?? component ?? '?',
      activity: a.activityType?.name ?? stage ?? '?',
      attempt: a.attempt ?? 1,
      // "scheduled" means no agent has picked the step up yet.
      state: stateName.replace('PENDING_ACTIVITY_STATE_', '').toLowerCase(),
      ...(progress ? { progress } : {}),
      ...(a.lastFailure?.message ? { lastFailure: a.lastFailure.message } : {}),
    };
  });
}

function searchAttributesOf(attrs: TypedSearchAttributes) {
  return {
    dryRun: attrs.get(dryRunAttribute) ?? false,
    environment: attrs.get(environmentAttribute),
    phase: attrs.get(phaseAttribute),
    state: attrs.get(stateAttribute),
    trigger: attrs.get(triggerAttribute),
    target: attrs.get(targetAttribute),
  };
}
