// The typed client for rewind: what the CLI uses, and what incident tooling imports to start,
// approve and follow rollbacks and snapshots.
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  isGrpcServiceError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import {
  ApplicationFailure,
  WorkflowExecutionAlreadyStartedError,
  type TypedSearchAttributes,
} from '@temporalio/common';
import type { StepProgress } from '../activities/progress';
import { markdownSafe } from '../domain/display-text';
import { describeFailure } from '../domain/errors';
import {
  approveUpdate,
  cancelUpdate,
  planReadyUpdate,
  rejectUpdate,
  verificationDecisionUpdate,
  rollbackStatusQuery,
  snapshotStatusQuery,
  driftScanStatusQuery,
  syncStatusQuery,
  type DecisionOutcome,
} from '../domain/messages';
import {
  describeTarget,
  FINAL_STATES,
  keyedRollbackId,
  requestIdSchema,
  rollbackRequestSchema,
  type RollbackRequest,
  type RollbackState,
  type RollbackStatus,
} from '../domain/rollback';
import {
  environmentBusyMessage,
  environmentProblem,
  requestKeyConflict,
  rollbackRequestProblem,
  whereTheRunIs,
} from '../domain/rollback-rules';
import { driftScanWorkflow, rollbackWorkflow, snapshotWorkflow, syncWorkflow } from '../workflows';
import { syncRequestSchema, syncWorkflowId, type SyncRequest, type SyncStatus } from '../domain/sync';
import {
  driftScanRequestSchema,
  driftScanWorkflowId,
  scanIdFor,
  type DriftScanRequest,
  type DriftScanStatus,
  type DriftScanSummary,
} from '../domain/drift-scan';
import { resolvePair, scanComponents, syncRequestProblem } from '../drift/pairs';
import type { CrossSectionResult, SnapshotRequest } from '../domain/snapshot';
import { snapshotRequestSchema } from '../domain/snapshot';
import {
  dryRunAttribute,
  environmentAttribute,
  phaseAttribute,
  startingRollbackSearchAttributes,
  stateAttribute,
  targetAttribute,
  triggerAttribute,
} from '../domain/search-attributes';
import { manifestDigest } from '../manifest/digest';
import { envTaskQueue, type Manifest } from '../manifest/schema';
import { hostsAmong, hostTaskQueue } from '../domain/hosts';
import { runningRollbacks } from '../platform/rollback-runs';
import type { SnapshotStore } from '../snapshots/store';
import { temporal } from '@temporalio/proto';
import { z } from 'zod';

export class RequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RequestError';
  }
}

/** The innermost message of a failure chain (workflow → activity → application failure). */
export const failureMessage = describeFailure;

/** `rollback-production-20261128-130641-a1b2`: readable in the Web UI, unique enough to type. */
export function newWorkflowId(kind: 'rollback' | 'snapshot', environment: string, at = new Date()): string {
  const iso = at.toISOString();
  const stamp = `${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}`;
  return `${kind}-${environment}-${stamp}-${randomBytes(2).toString('hex')}`;
}

/** Checks a request against the manifest before anything starts, so mistakes fail at once. */
export function checkAgainstManifest(manifest: Manifest, environment: string, components?: string[]): void {
  const problem = environmentProblem(manifest, environment, components);
  if (problem) throw new RequestError(problem);
}

/** What a decision or a cancel came to, as the CLI and incident tooling read it. */
/** A decision on a run: approve or reject before execute; accept or compensate a failed verification that waits. */
export type DecisionVerb = 'approve' | 'reject' | 'accept' | 'compensate';

export interface DecisionResult extends DecisionOutcome {
  workflowId: string;
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

/** How long a started drift scan is asked for its id (a worker answers in milliseconds). */
const SCAN_ID_WAIT_MS = 3000;

export class RewindClient {
  /**
   * With `store` (the repository is reachable and its password known), a rollback whose target
   * does not exist, or whose environment is busy, is refused before any run starts.
   */
  /** Sent with every request: the workers refuse one made with another manifest. */
  readonly manifestDigest: string;

  constructor(
    readonly client: Client,
    readonly manifest: Manifest,
    readonly store?: SnapshotStore,
  ) {
    this.manifestDigest = manifestDigest(manifest);
  }

  private get taskQueue(): string {
    return this.manifest.temporal.taskQueue;
  }

  async startSnapshot(input: unknown): Promise<WorkflowHandle> {
    const request: SnapshotRequest = {
      ...parseRequest(snapshotRequestSchema, input),
      manifestDigest: this.manifestDigest,
    };
    checkAgainstManifest(this.manifest, request.environment, request.components);
    return this.client.workflow.start(snapshotWorkflow, {
      taskQueue: this.taskQueue,
      workflowId: newWorkflowId('snapshot', request.environment),
      args: [request],
      typedSearchAttributes: [{ key: environmentAttribute, value: request.environment }],
    });
  }

  /**
   * Starts a drift scan of a pair of environments, or attaches to the one already running for
   * that pair (`attached`; `running` then says what that scan compares, `components` absent:
   * all, which may be less than this request asked for). Checks the pair and components
   * against the manifest first.
   */
  async startDriftScan(input: unknown): Promise<{
    workflowId: string;
    /**
     * The scan's id, which reports are found by; absent only when the request attached to a
     * scheduled scan and no worker answered within 3 s.
     */
    scanId?: string;
    attached: boolean;
    from: string;
    to: string;
    running?: { components?: string[]; trigger?: string };
  }> {
    const request: DriftScanRequest = {
      ...parseRequest(driftScanRequestSchema, input),
      manifestDigest: this.manifestDigest,
    };
    let pair: { from: string; to: string };
    try {
      pair = resolvePair(this.manifest, request);
      scanComponents(this.manifest, pair, request.components);
    } catch (err) {
      throw new RequestError((err as Error).message);
    }
    const workflowId = driftScanWorkflowId(this.taskQueue, pair.from, pair.to);
    const described = await this.client.workflow
      .getHandle(workflowId)
      .describe()
      .catch(() => undefined);
    const running = described?.status.name === 'RUNNING';
    // Chosen here, so that the scan can be named at once; a request that attaches learns the
    // running scan's from its memo.
    const newScanId = scanIdFor(new Date(), randomBytes(3).toString('hex'));
    const handle = await this.client.workflow.start(driftScanWorkflow, {
      taskQueue: this.taskQueue,
      workflowId,
      args: [{ ...request, ...pair, scanId: newScanId }],
      // What the scan compares, for a request that attaches to it (scheduled scans compare all).
      memo: {
        scanId: newScanId,
        trigger: request.trigger,
        ...(request.components ? { components: [...request.components].sort() } : {}),
      },
      // A scan of the pair already running is the answer to this request too.
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
    const memo = (described?.memo ?? {}) as { components?: unknown; trigger?: unknown; scanId?: unknown };
    const scope = {
      ...(Array.isArray(memo.components) ? { components: memo.components.map(String) } : {}),
      ...(typeof memo.trigger === 'string' ? { trigger: memo.trigger } : {}),
    };
    // Attached when the start found the run described before it (it may have ended in between).
    const attached = running && handle.firstExecutionRunId === described.runId;
    // A scan a schedule started has no id in its memo: it says its id when a worker answers.
    const scanId = !attached
      ? newScanId
      : typeof memo.scanId === 'string'
        ? memo.scanId
        : await this.client.connection
            .withDeadline(Date.now() + SCAN_ID_WAIT_MS, () => handle.query(driftScanStatusQuery))
            .then(
              (status) => status.scanId,
              () => undefined,
            );
    return {
      workflowId,
      ...(scanId ? { scanId } : {}),
      attached,
      ...pair,
      ...(attached ? { running: scope } : {}),
    };
  }

  /** Starts a sync of chosen components of `to` (regression) from `from` (production). */
  async startSync(input: unknown): Promise<{ workflowId: string; from: string; to: string }> {
    const request: SyncRequest = { ...parseRequest(syncRequestSchema, input), manifestDigest: this.manifestDigest };
    const problem = syncRequestProblem(this.manifest, request);
    if (problem) throw new RequestError(problem);
    const pair = resolvePair(this.manifest, request);
    const workflowId = syncWorkflowId(pair.to, new Date(), randomBytes(2).toString('hex'));
    await this.client.workflow.start(syncWorkflow, {
      taskQueue: this.taskQueue,
      workflowId,
      args: [{ ...request, ...pair }],
      typedSearchAttributes: [{ key: environmentAttribute, value: pair.to }],
    });
    return { workflowId, ...pair };
  }

  /** Waits until the sync ends or awaits approval. */
  async waitForSync(workflowId: string, { intervalMs = 300 }: { intervalMs?: number } = {}): Promise<SyncStatus> {
    const handle = this.client.workflow.getHandle(workflowId);
    for (;;) {
      const description = await handle.describe();
      if (description.status.name !== 'RUNNING') return this.syncResult(workflowId);
      const status = await handle.query(syncStatusQuery);
      if (status.state === 'awaiting-approval') return status;
      await sleep(intervalMs);
    }
  }

  async syncStatus(workflowId: string): Promise<SyncStatus> {
    const handle = this.client.workflow.getHandle(workflowId);
    const description = await handle.describe().catch((err: unknown) => {
      if (err instanceof WorkflowNotFoundError) throw new RequestError(`no sync with id ${workflowId}`);
      throw err;
    });
    if (description.type !== syncWorkflow.name)
      throw new RequestError(`${workflowId} is a ${description.type}, not a sync`);
    // An ended sync answers from its result, also when no worker is there to answer a query.
    if (description.status.name !== 'RUNNING') {
      const ended = await this.syncResult(workflowId).catch(() => undefined);
      if (ended) return ended;
    }
    return handle.query(syncStatusQuery);
  }

  /** The sync's final status, whether it completed, ended early or failed (its failure carries it). */
  async syncResult(workflowId: string): Promise<SyncStatus> {
    try {
      return await this.client.workflow.getHandle<typeof syncWorkflow>(workflowId).result();
    } catch (err) {
      const details =
        err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure ? err.cause.details : undefined;
      if (details?.[0]) return details[0] as SyncStatus;
      throw err;
    }
  }

  /**
   * Recent syncs, newest first, each with where it stands (from its query while it runs, from
   * its result once it has ended; absent when neither answers, e.g. no control worker).
   */
  async listSyncs(environment?: string, limit = 20) {
    // Also keeps the visibility query below free of anything but a declared name.
    if (environment !== undefined) checkAgainstManifest(this.manifest, environment);
    const query = `WorkflowType = '${syncWorkflow.name}' AND TaskQueue = '${this.taskQueue}'${environment ? ` AND RewindEnvironment = '${environment}'` : ''}`;
    const runs: { workflowId: string; execution: string; startTime: string }[] = [];
    for await (const run of this.client.workflow.list({ query, pageSize: limit })) {
      runs.push({ workflowId: run.workflowId, execution: run.status.name, startTime: run.startTime.toISOString() });
      if (runs.length >= limit) break;
    }
    return Promise.all(
      runs.map(async (run) => {
        const status = await this.syncStatus(run.workflowId).catch(() => undefined);
        return {
          ...run,
          ...(status
            ? {
                from: status.from,
                to: status.to,
                state: status.state,
                phase: status.phase,
                requestedBy: status.requestedBy,
                components: Object.keys(status.components),
              }
            : {}),
        };
      }),
    );
  }

  async driftScanResult(workflowId: string): Promise<DriftScanSummary> {
    return this.client.workflow.getHandle<typeof driftScanWorkflow>(workflowId).result();
  }

  async driftScanStatus(workflowId: string): Promise<DriftScanStatus> {
    return this.client.workflow.getHandle(workflowId).query(driftScanStatusQuery);
  }

  async snapshotResult(workflowId: string): Promise<CrossSectionResult> {
    return this.client.workflow.getHandle<typeof snapshotWorkflow>(workflowId).result();
  }

  async snapshotProgress(workflowId: string) {
    return this.client.workflow.getHandle(workflowId).query(snapshotStatusQuery);
  }

  /**
   * Starts a rollback. With `requestId`, the run's id comes from the environment and the key,
   * so the same request sent again, or many times at once, finds the same run (`existing` is
   * true when it was found before starting; callers racing to start it all get its id).
   */
  async startRollback(
    input: unknown,
    options: { requestId?: string } = {},
  ): Promise<{ workflowId: string; request: RollbackRequest; existing: boolean }> {
    const request: RollbackRequest = {
      ...parseRequest(rollbackRequestSchema, input),
      manifestDigest: this.manifestDigest,
    };
    const requestId =
      options.requestId === undefined
        ? undefined
        : parseRequest(z.object({ requestId: requestIdSchema }), options).requestId;
    const problem = rollbackRequestProblem(this.manifest, request);
    if (problem) throw new RequestError(problem);
    const workflowId = requestId
      ? keyedRollbackId(request.environment, requestId)
      : newWorkflowId('rollback', request.environment);
    // Both questions at once (a webhook burst waits on this start): a run the key already
    // names answers the request, whatever the checks would say of a new one.
    const [found, checked] = await Promise.allSettled([
      requestId ? this.exists(workflowId) : Promise.resolve(false),
      this.precheckRollback(request, workflowId),
    ]);
    if (found.status === 'rejected') throw found.reason;
    if (requestId && found.value) {
      const conflict = requestKeyConflict(requestId, (await this.rollbackView(workflowId)).status, request);
      if (conflict) throw new RequestError(conflict);
      return { workflowId, request, existing: true };
    }
    if (checked.status === 'rejected') throw checked.reason;
    try {
      await this.client.workflow.start(rollbackWorkflow, {
        taskQueue: this.taskQueue,
        workflowId,
        args: [request],
        // A keyed request joins the run its key names, running or ended, instead of starting one.
        // FAIL, not USE_EXISTING: of several clients racing past the check above (processes of
        // the API, CLIs), the server starts one and tells the others, so only one says "started".
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: requestId ? 'REJECT_DUPLICATE' : 'ALLOW_DUPLICATE',
        memo: { dryRun: request.dryRun, requester: request.requester },
        // The Web UI renders these as Markdown: what people typed is escaped.
        staticSummary: `Roll ${request.environment} back to ${markdownSafe(describeTarget(request.target))}${request.dryRun ? ' (dry run)' : ''}`,
        staticDetails: `requested by ${markdownSafe(request.requester)} (${request.trigger})${request.reason ? `: ${markdownSafe(request.reason)}` : ''}`,
        typedSearchAttributes: startingRollbackSearchAttributes(request),
      });
      return { workflowId, request, existing: false };
    } catch (err) {
      if (requestId && err instanceof WorkflowExecutionAlreadyStartedError)
        return { workflowId, request, existing: true };
      throw err;
    }
  }

  private async exists(workflowId: string): Promise<boolean> {
    try {
      await this.client.workflow.getHandle(workflowId).describe();
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  /** The decide phase's checks, made early so that a doomed request leaves no failed run behind. */
  private async precheckRollback(request: RollbackRequest, workflowId: string): Promise<void> {
    // Both questions at once: every round trip is time to safety.
    const [running, target] = await Promise.all([
      request.dryRun ? [] : runningRollbacks(this.client, this.taskQueue, request.environment),
      this.store ? this.store.findTarget(request.environment, request.target) : true,
    ]);
    const busy = running.find((id) => id !== workflowId);
    if (busy) throw new RequestError(environmentBusyMessage(busy, request.environment));
    if (!target) {
      throw new RequestError(
        `no cross-section of ${request.environment} matches ${describeTarget(request.target)} (rewind snapshot list --env ${request.environment})`,
      );
    }
  }

  /**
   * Approves or rejects, as one Update whose id is the request id: the answer says at once
   * whether it counted, and why not; the server counts a repeated request id once.
   */
  async decide(
    workflowId: string,
    action: DecisionVerb,
    decision: { user: string; comment?: string; requestId?: string; acceptDataLoss?: boolean },
  ): Promise<DecisionResult> {
    const requestId = decision.requestId ?? randomUUID();
    const handle = this.client.workflow.getHandle(workflowId);
    const comment = decision.comment ? { comment: decision.comment } : {};
    // accept and compensate settle a failed verification that waits (verify.onFailure: ask).
    if (action === 'accept' || action === 'compensate')
      return this.sendDecision(workflowId, () =>
        handle.executeUpdate(verificationDecisionUpdate, {
          updateId: requestId,
          args: [{ decision: action, user: decision.user, requestId, ...comment }],
        }),
      );
    return this.sendDecision(workflowId, () =>
      handle.executeUpdate(action === 'approve' ? approveUpdate : rejectUpdate, {
        updateId: requestId,
        args: [
          {
            user: decision.user,
            requestId,
            ...comment,
            ...(decision.acceptDataLoss ? { acceptDataLoss: true } : {}),
          },
        ],
      }),
    );
  }

  /**
   * Cancels a rollback: records who and why (an Update, refused when the run already ended),
   * then requests the run's cancellation. Before execute it stops cleanly; during execute it
   * stops the running steps and compensates.
   */
  async cancel(workflowId: string, by: { user: string; reason?: string; requestId?: string }): Promise<DecisionResult> {
    const requestId = by.requestId ?? randomUUID();
    const handle = this.client.workflow.getHandle(workflowId);
    const outcome = await this.sendDecision(workflowId, () =>
      handle.executeUpdate(cancelUpdate, {
        updateId: requestId,
        args: [{ user: by.user, requestId, ...(by.reason ? { reason: by.reason } : {}) }],
      }),
    );
    if (!outcome.accepted) {
      throw new RequestError(
        FINAL_STATES.includes(outcome.state)
          ? `${workflowId} already ended (${outcome.state}); there is nothing to cancel`
          : `cannot cancel ${workflowId}: ${outcome.reason ?? 'refused'}`,
      );
    }
    await handle.cancel();
    return outcome;
  }

  private async sendDecision(workflowId: string, send: () => Promise<DecisionOutcome>): Promise<DecisionResult> {
    try {
      return { workflowId, ...(await retryWhileBusy(send)) };
    } catch (err) {
      // A validator's refusal (malformed, too early, too late) never reached history.
      if (err instanceof WorkflowUpdateFailedError) {
        const { where } = await this.decidedRun(workflowId);
        return { workflowId, accepted: false, reason: describeFailure(err.cause ?? err), ...where };
      }
      if (
        err instanceof WorkflowNotFoundError ||
        /already completed|workflow execution.*(completed|not found)/i.test(describeFailure(err))
      ) {
        const { noun, ended, where } = await this.decidedRun(workflowId);
        return { workflowId, accepted: false, reason: `the ${noun} already ended (${ended})`, ...where };
      }
      throw err;
    }
  }

  /** Where a run a decision was refused for is: a rollback, or a sync (which takes the same Updates). */
  private async decidedRun(
    workflowId: string,
  ): Promise<{ noun: string; ended: string; where: Omit<DecisionOutcome, 'accepted' | 'reason'> }> {
    const type = await this.client.workflow
      .getHandle(workflowId)
      .describe()
      .then(
        (d) => d.type,
        (err: unknown) => {
          if (err instanceof WorkflowNotFoundError) throw new RequestError(`no rollback or sync with id ${workflowId}`);
          throw err;
        },
      );
    if (type === syncWorkflow.name) {
      const sync = await this.syncStatus(workflowId);
      const state: RollbackState = sync.state === 'in-line' ? 'completed' : sync.state;
      return {
        noun: 'sync',
        ended: sync.state,
        where: {
          state,
          phase: sync.phase === 'scan' ? 'decide' : sync.phase === 'snapshot' ? 'prepare' : sync.phase,
          approvals: sync.approvedBy ? 1 : 0,
          requiredApprovals: 1,
        },
      };
    }
    const { status } = await this.rollbackView(workflowId);
    return { noun: 'rollback', ended: status.state, where: whereTheRunIs(status) };
  }

  /** The rollback's status, from its query, or from its result once no worker can answer. */
  async rollbackView(workflowId: string): Promise<RollbackView> {
    const handle = this.client.workflow.getHandle<typeof rollbackWorkflow>(workflowId);
    let description: WorkflowExecutionDescription;
    try {
      description = await handle.describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new RequestError(`no rollback with id ${workflowId}`);
      throw err;
    }
    if (description.type !== rollbackWorkflow.name)
      throw new RequestError(`${workflowId} is a ${description.type}, not a rollback`);
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
    {
      timeoutMs = 600_000,
      intervalMs = 300,
      onUpdate,
    }: { timeoutMs?: number; intervalMs?: number; onUpdate?: (v: RollbackView) => void } = {},
  ): Promise<RollbackView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const view = await this.rollbackView(workflowId);
      onUpdate?.(view);
      if (until(view.status) || FINAL_STATES.includes(view.status.state)) return view;
      if (Date.now() > deadline)
        throw new RequestError(
          `timed out waiting for ${workflowId} (phase ${view.status.phase}, state ${view.status.state})`,
        );
      await sleep(intervalMs);
    }
  }

  /**
   * Waits until the run awaits approval or ended, then returns its view. One Update the run
   * answers the moment it gets there; runs started before it existed are asked over and over.
   */
  async waitForPlan(workflowId: string, { intervalMs = 300 }: { intervalMs?: number } = {}): Promise<RollbackView> {
    try {
      await this.client.workflow
        .getHandle(workflowId)
        .executeUpdate(planReadyUpdate, { updateId: `plan-ready-${randomUUID()}` });
    } catch {
      // No such handler (an older run), or the run ended meanwhile: the view says where it is.
      return this.waitForRollback(workflowId, (s) => s.state === 'awaiting-approval', {
        timeoutMs: 3_600_000,
        intervalMs,
      });
    }
    return this.rollbackView(workflowId);
  }

  /**
   * The agents of an environment that do not poll their task queue right now, as the command that
   * starts each (`rewind agent --env production --host web2`): the environment's own, and one per
   * host its components run on.
   */
  async agentsMissing(environment: string): Promise<string[]> {
    const hosts = hostsAmong(Object.keys(this.manifest.environments[environment]?.components ?? {}));
    const missing = await Promise.all(
      [undefined, ...hosts].map(async (host) => {
        const response = await this.client.workflowService.describeTaskQueue({
          namespace: this.client.options.namespace,
          taskQueue: {
            name: hostTaskQueue(envTaskQueue(this.manifest, environment), host),
            kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL,
          },
          taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        });
        if ((response.pollers ?? []).length > 0) return [];
        return [`rewind agent --env ${environment}${host !== undefined ? ` --host ${host}` : ''}`];
      }),
    );
    return missing.flat();
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
        ...(typeof run.memo?.requester === 'string' ? { requester: run.memo.requester } : {}),
        ...searchAttributesOf(run.typedSearchAttributes),
      });
      if (runs.length >= limit) break;
    }
    return runs;
  }
}

/** gRPC's status code for "resource exhausted". */
const GRPC_RESOURCE_EXHAUSTED = 8;

/**
 * Sends again while the server says the run is busy: it holds at most a few Updates in flight
 * at once (10 by default), and a burst of clicks or webhooks must get answers, not errors.
 */
async function retryWhileBusy<T>(send: () => Promise<T>, { attempts = 20, firstDelayMs = 100 } = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      const busy =
        err instanceof Error &&
        (isGrpcServiceError(err.cause)
          ? Number(err.cause.code) === GRPC_RESOURCE_EXHAUSTED
          : /RESOURCE_EXHAUSTED/.test(err.message));
      if (!busy || attempt >= attempts) throw err;
      await sleep(Math.min(2_000, firstDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2));
    }
  }
}

async function finalStatus(handle: WorkflowHandle<typeof rollbackWorkflow>): Promise<RollbackStatus | undefined> {
  try {
    return await handle.result();
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
    // Step activities are named `<stage>/<component>`; others (numbered by the SDK) are shown by type.
    const [stage, component] = (a.activityId ?? '').includes('/') ? (a.activityId ?? '').split('/') : [];
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
      component: progress?.component ?? component ?? '',
      activity: a.activityType?.name ?? stage ?? 'activity',
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
