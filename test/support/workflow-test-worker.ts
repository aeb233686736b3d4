// The fast layer's test environment (the dittofeed pattern): the real workflows, from the
// suite's prebuilt bundle, on a fresh task queue of the suite's dev server, with STUB control
// and agent activities that answer at once with plausible typed values. No restic, no files,
// no database: a rollback reaches awaiting-approval in a fraction of a second. Each test
// overrides the activities and the policy it is about (a restore that waits until cancelled,
// a verify that finds a mismatch, two required approvals) and drives the run through the real
// RewindClient. Every activity call is recorded, so a test can say what ran and in what order.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { NativeConnection, Worker } from '@temporalio/worker';
import type {
  AgentActivities,
  AssessComponentRequest,
  DescribeComponentRequest,
  RestoreComponentRequest,
  VerifyComponentRequest,
} from '../../src/activities/agent';
import type { AnnounceActivities } from '../../src/activities/announce';
import type { ControlActivities, PlanComponentRequest } from '../../src/activities/control';
import { RewindClient, type RollbackView } from '../../src/client/client';
import type { FilesFingerprintDetails, FilesPlanDetails, FilesRestoreDetails } from '../../src/components/files/kind';
import type { ComponentPlan, FingerprintSummary, RestoreOutcome, VerifyOutcome } from '../../src/components/core';
import type { ComponentSnapshot } from '../../src/domain/cross-section';
import type { DriftAnswer } from '../../src/components/drift';
import type { AppVersion } from '../../src/drift/app-version';
import type { RollbackContext, RollbackRequest, RollbackStatus } from '../../src/domain/rollback';
import type { SnapshotContext, SnapshotRequest } from '../../src/domain/snapshot';
import type { SnapshotComponentRequest, StageComponentRequest, StageOutcome } from '../../src/components/driver';
import { manifestSchema, type Manifest } from '../../src/manifest/schema';
import { lockHolder as findLockHolder } from '../../src/platform/rollback-runs';
import { workflowCode } from '../../src/workers/workflow-code';
import { tracingClientInterceptors, tracingWorkerOptions } from '../../src/platform/tracing';

/** The stub environment's components: `models` depends on `config`, as in the default manifest. */
export const STUB_COMPONENTS = [
  { name: 'config', format: 'config' as const, dependsOn: [] as string[] },
  { name: 'models', format: 'pickle' as const, dependsOn: ['config'] },
];
export const STUB_ENVIRONMENT = 'production';
export const STUB_TARGET_CROSS_SECTION = 'xs-20260101-000000-t1t1';

export interface StubPolicy {
  approvers?: string[];
  requiredApprovals?: number;
  /** Default: false in production, as the manifest's default. */
  allowSelfApproval?: boolean;
  approvalTimeoutMs?: number;
  heartbeatTimeoutMs?: number;
}

export interface WorkflowTestOverrides {
  policy?: StubPolicy;
  /**
   * Trace the client, the workflows and the activities (the traced bundle, Temporal's
   * OpenTelemetry interceptors); the test installs the tracer provider (installTracing) first.
   */
  traced?: boolean;
  /** Replace any control activity; the rest stay stubs. A function gets the stubs to delegate to. */
  control?:
    | Partial<ControlActivities & AnnounceActivities>
    | ((stubs: ControlActivities & AnnounceActivities) => Partial<ControlActivities & AnnounceActivities>);
  /** Replace any agent activity; the rest stay stubs. A function gets the stubs to delegate to. */
  agent?: Partial<AgentActivities> | ((stubs: AgentActivities) => Partial<AgentActivities>);
}

export interface ActivityCall {
  activity: string;
  args: unknown[];
  at: number;
}

export interface WorkflowTestEnv {
  /** The fresh control task queue `wt-<hex>`; the agent listens on `<taskQueue>-env-production`. */
  taskQueue: string;
  agentTaskQueue: string;
  manifest: Manifest;
  temporal: Client;
  /** The real client, on this environment's manifest. */
  client: RewindClient;
  /** Calls of one activity (or all), in the order they started. */
  calls(activity?: string): ActivityCall[];
  /** restoreComponent requests, optionally of one purpose, in the order they started. */
  restores(purpose?: RestoreComponentRequest['purpose']): RestoreComponentRequest[];
  /** A valid rollback request for the stub environment. */
  request(over?: Record<string, unknown>): Record<string, unknown>;
  /** Starts a rollback through the client (its pre-checks included). */
  start(over?: Record<string, unknown>, options?: { requestId?: string }): Promise<string>;
  /** Starts a rollback directly on Temporal, as a second alert firing at the same moment would. */
  startDirect(over?: Partial<RollbackRequest>): Promise<string>;
  handle(workflowId: string): WorkflowHandle;
  waitFor(workflowId: string, until: (s: RollbackStatus) => boolean, timeoutMs?: number): Promise<RollbackView>;
  /** Waits for the run to close and returns its final status. */
  finalStatus(workflowId: string, timeoutMs?: number): Promise<RollbackView>;
  /** The run's history events, by their short type name (`WorkflowExecutionUpdateAccepted`). */
  historyEvents(workflowId: string): Promise<string[]>;
  teardown(): Promise<void>;
}

// ---- stubs ----

const hex = (...parts: string[]) => createHash('sha256').update(parts.join('/')).digest('hex');

function stubFingerprint(component: string, state: string): FingerprintSummary {
  const details: FilesFingerprintDetails = { kind: 'files', files: 12, dirs: 2, symlinks: 0 };
  return { digest: hex('fingerprint', component, state), bytes: 48_213, entries: 14, details };
}

/** Stub control activities: a RollbackContext from the policy, plans, reports kept in memory. */
export function stubControlActivities(options: {
  taskQueue: string;
  dir: string;
  policy?: StubPolicy;
  temporal?: Client;
  reports?: Map<string, string>;
}): ControlActivities & AnnounceActivities {
  const policy = options.policy ?? {};
  const envTaskQueue = (environment: string) => `${options.taskQueue}-env-${environment}`;
  const componentPath = (name: string) => path.join(options.dir, 'envs', STUB_ENVIRONMENT, name);

  function resolveRollback(
    request: RollbackRequest & { workflowId: string; takesLock?: boolean },
  ): Promise<RollbackContext> {
    const chosen = STUB_COMPONENTS.filter((c) => !request.components || request.components.includes(c.name));
    const names = chosen.map((c) => c.name);
    return Promise.resolve({
      environment: request.environment,
      envTaskQueue: envTaskQueue(request.environment),
      target: {
        crossSectionId: STUB_TARGET_CROSS_SECTION,
        time: '2026-01-01T00:00:00.000Z',
        ...(request.target.kind === 'version' ? { version: request.target.version } : {}),
      },
      components: chosen.map((c) => ({
        name: c.name,
        kind: 'files',
        path: componentPath(c.name),
        dependsOn: c.dependsOn.filter((d) => names.includes(d)),
        targetSnapshotId: hex('data', c.name, 'target'),
        targetListingSnapshotId: hex('listing', c.name, 'target'),
        targetFingerprint: stubFingerprint(c.name, 'target'),
      })),
      approvers: policy.approvers ?? ['alice', 'bob', 'carol'],
      requiredApprovals: policy.requiredApprovals ?? 1,
      allowSelfApproval: policy.allowSelfApproval ?? request.environment !== 'production',
      approvalTimeoutMs: policy.approvalTimeoutMs ?? 600_000,
      heartbeatTimeoutMs: policy.heartbeatTimeoutMs ?? 5_000,
      previewPaths: 20,
    });
  }

  function resolveSnapshot(request: SnapshotRequest): Promise<SnapshotContext> {
    return Promise.resolve({
      environment: request.environment,
      envTaskQueue: envTaskQueue(request.environment),
      components: STUB_COMPONENTS.map((c) => c.name).filter(
        (n) => !request.components || request.components.includes(n),
      ),
      heartbeatTimeoutMs: policy.heartbeatTimeoutMs ?? 5_000,
    });
  }

  /** The real question, asked of the dev server: which rollback holds the lock workflow. */
  async function lockHolder(lockWorkflowId: string): Promise<string | undefined> {
    return options.temporal ? findLockHolder(options.temporal, lockWorkflowId) : undefined;
  }

  function planComponent(req: PlanComponentRequest): Promise<ComponentPlan> {
    return Promise.resolve(
      stubPlan({
        component: req.component.name,
        path: req.component.path,
        targetSnapshotId: req.component.targetSnapshotId,
        safetySnapshotId: req.safety.snapshotId,
        workflowId: req.workflowId,
      }),
    );
  }

  function confirmReadable(_snapshots: ComponentSnapshot[]): Promise<void> {
    return Promise.resolve();
  }

  function saveReport(req: { workflowId: string; markdown: string }): Promise<string> {
    options.reports?.set(req.workflowId, req.markdown);
    return Promise.resolve(path.join(options.dir, 'data', 'reports', `${req.workflowId}.md`));
  }

  /** Announcements go nowhere here; the Slack test covers them. */
  function announceRollback(_req: Parameters<AnnounceActivities['announceRollback']>[0]): Promise<void> {
    return Promise.resolve();
  }

  return { resolveSnapshot, resolveRollback, lockHolder, planComponent, confirmReadable, saveReport, announceRollback };
}

function stubPlan(p: {
  component: string;
  path: string;
  targetSnapshotId: string;
  safetySnapshotId: string;
  workflowId: string;
}): ComponentPlan {
  const details: FilesPlanDetails = { kind: 'files', modeChanged: 0 };
  return {
    component: p.component,
    kind: 'files',
    path: p.path,
    targetSnapshotId: p.targetSnapshotId,
    safetySnapshotId: p.safetySnapshotId,
    added: 1,
    changed: 1,
    removed: 0,
    bytesToWrite: 2_048,
    differences: [
      { op: 'change', subject: 'app.yaml' },
      { op: 'add', subject: 'feature-flags.yaml' },
    ],
    more: 0,
    changeListFile: `/tmp/plans/${p.workflowId}/${p.component}.txt`,
    destructive: false,
    details,
  };
}

/** Stub agent activities: snapshots with files fingerprints, plans, restores and verifies that match. */
export function stubAgentActivities(): AgentActivities {
  function snapshotComponent(req: SnapshotComponentRequest): Promise<ComponentSnapshot> {
    return Promise.resolve({
      component: req.component,
      snapshotId: hex('data', req.component, req.crossSectionId),
      listingSnapshotId: hex('listing', req.component, req.crossSectionId),
      fingerprint: stubFingerprint(req.component, 'current'),
    });
  }

  function assessComponent(req: AssessComponentRequest): Promise<ComponentPlan> {
    return Promise.resolve(
      stubPlan({
        component: req.component,
        path: `/srv/${req.environment}/${req.component}`,
        targetSnapshotId: req.target.snapshotId,
        safetySnapshotId: req.safety?.snapshotId ?? '',
        workflowId: req.workflowId,
      }),
    );
  }

  function restoreComponent(_req: RestoreComponentRequest): Promise<RestoreOutcome> {
    const details: FilesRestoreDetails = {
      kind: 'files',
      method: 'targeted',
      filesRestored: 2,
      filesSkipped: 10,
      filesDeleted: 0,
    };
    return Promise.resolve({ alreadyAtTarget: false, bytesWritten: 2_048, durationMs: 1, details });
  }

  function verifyComponent(req: VerifyComponentRequest): Promise<VerifyOutcome> {
    return Promise.resolve({ matches: true, actual: req.expected, differences: [] });
  }

  function stageComponent(_req: StageComponentRequest): Promise<StageOutcome> {
    return Promise.resolve({ readable: true, note: '2 files (2 KiB) read back, checked and staged', bytes: 2_048 });
  }

  function discardStaging(_req: { environment: string; workflowId: string }): Promise<void> {
    return Promise.resolve();
  }

  function describeComponent(_req: DescribeComponentRequest): Promise<DriftAnswer> {
    return Promise.resolve({ kind: 'files', root: { exists: true, digest: 'same', files: 0 } });
  }

  function describeAppVersion(_req: { environment: string }): Promise<AppVersion> {
    return Promise.resolve({});
  }

  return {
    snapshotComponent,
    restoreComponent,
    verifyComponent,
    assessComponent,
    stageComponent,
    discardStaging,
    describeComponent,
    describeAppVersion,
    // The workflow tests' manifest has no verification checks.
    runChecks: () => Promise.resolve([]),
    preflightChecks: () => Promise.resolve([]),
    followUpComponent: () => Promise.resolve('nothing to do'),
  };
}

// ---- activities that hold a phase ----

/**
 * Blocks the calling activity until it is cancelled (the rollback's cancellation, or the
 * worker's shutdown), heartbeating so that the cancellation reaches it; then fails as cancelled.
 */
export async function untilCancelled(): Promise<never> {
  const ctx = Context.current();
  const beat = setInterval(() => ctx.heartbeat(), 100);
  try {
    await new Promise<void>((resolve) => {
      if (ctx.cancellationSignal.aborted) resolve();
      else ctx.cancellationSignal.addEventListener('abort', () => resolve(), { once: true });
    });
    // Rejects with the activity's CancelledFailure.
    return await ctx.cancelled;
  } finally {
    clearInterval(beat);
  }
}

/** A gate a stub activity waits at until the test opens it (or the activity is cancelled). */
export interface Gate {
  open(): void;
  wait(): Promise<void>;
  readonly waiting: number;
}

export function gate(): Gate {
  let release!: () => void;
  const opened = new Promise<void>((resolve) => (release = resolve));
  let waiting = 0;
  return {
    open: () => release(),
    get waiting() {
      return waiting;
    },
    async wait() {
      const ctx = Context.current();
      waiting++;
      const beat = setInterval(() => ctx.heartbeat(), 100);
      try {
        await Promise.race([opened, ctx.cancelled]);
      } finally {
        clearInterval(beat);
        waiting--;
      }
    },
  };
}

// ---- the environment ----

export async function createWorkflowTestEnv(overrides: WorkflowTestOverrides = {}): Promise<WorkflowTestEnv> {
  const address = process.env.TEMPORAL_ADDRESS;
  if (!address)
    throw new Error(
      'TEMPORAL_ADDRESS is not set: run the tests through jest (test/support/global-setup.ts starts the dev server)',
    );
  const taskQueue = `wt-${randomBytes(4).toString('hex')}`;
  const agentTaskQueue = `${taskQueue}-env-${STUB_ENVIRONMENT}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rewind-wt-'));
  const policy = overrides.policy ?? {};

  for (const c of STUB_COMPONENTS) mkdirSync(path.join(dir, 'envs', STUB_ENVIRONMENT, c.name), { recursive: true });
  const manifest = manifestSchema.parse({
    repository: { path: path.join(dir, 'repo'), passwordEnv: 'REWIND_TEST_PASSWORD' },
    dataDir: path.join(dir, 'data'),
    approvers: policy.approvers ?? ['alice', 'bob', 'carol'],
    policy: {
      requiredApprovals: policy.requiredApprovals ?? 1,
      approvalTimeout: `${policy.approvalTimeoutMs ?? 600_000}ms`,
      heartbeatTimeout: `${policy.heartbeatTimeoutMs ?? 5_000}ms`,
    },
    temporal: { taskQueue },
    environments: {
      [STUB_ENVIRONMENT]: {
        ...(policy.allowSelfApproval !== undefined ? { allowSelfApproval: policy.allowSelfApproval } : {}),
        components: Object.fromEntries(
          STUB_COMPONENTS.map((c) => [
            c.name,
            {
              kind: 'files',
              path: path.join(dir, 'envs', STUB_ENVIRONMENT, c.name),
              format: c.format,
              dependsOn: c.dependsOn,
            },
          ]),
        ),
      },
    },
  });

  const connection = await Connection.connect({ address });
  const clientInterceptors = overrides.traced ? tracingClientInterceptors() : undefined;
  const temporalClient = new Client({
    connection,
    namespace: 'default',
    ...(clientInterceptors ? { interceptors: clientInterceptors } : {}),
  });
  const calls: ActivityCall[] = [];
  const reports = new Map<string, string>();

  const recorded = <T extends object>(activities: T): T =>
    Object.fromEntries(
      Object.entries(activities).map(([name, fn]) => [
        name,
        (...args: unknown[]): unknown => {
          calls.push({ activity: name, args, at: Date.now() });
          return (fn as (...a: unknown[]) => unknown)(...args);
        },
      ]),
    ) as T;

  const controlStubs = stubControlActivities({ taskQueue, dir, policy, temporal: temporalClient, reports });
  const agentStubs = stubAgentActivities();
  const control = recorded({ ...controlStubs, ...withStubs(overrides.control, controlStubs) });
  const agent = recorded({ ...agentStubs, ...withStubs(overrides.agent, agentStubs) });

  const nativeConnection = await NativeConnection.connect({ address });
  // Heartbeats reach the server at once, so a cancelled stub learns of it within ~100 ms.
  const heartbeats = { maxHeartbeatThrottleInterval: '100ms', defaultHeartbeatThrottleInterval: '100ms' } as const;
  const tracing = overrides.traced ? tracingWorkerOptions() : {};
  const code = workflowCode(process.env, overrides.traced);
  const workers = await Promise.all([
    Worker.create({
      connection: nativeConnection,
      taskQueue,
      ...code,
      ...tracing,
      interceptors: { ...code.interceptors, ...tracing.interceptors },
      activities: control,
      ...heartbeats,
    }),
    Worker.create({
      connection: nativeConnection,
      taskQueue: agentTaskQueue,
      activities: agent,
      ...tracing,
      ...heartbeats,
    }),
  ]);
  const running = workers.map((w) => w.run());
  const client = new RewindClient(temporalClient, manifest);
  const started = new Set<string>();

  const request = (over: Record<string, unknown> = {}) => ({
    environment: STUB_ENVIRONMENT,
    target: { kind: 'version', version: 'v1' },
    requester: 'alice',
    ...over,
  });

  const env: WorkflowTestEnv = {
    taskQueue,
    agentTaskQueue,
    manifest,
    temporal: temporalClient,
    client,
    calls: (activity) => calls.filter((c) => activity === undefined || c.activity === activity),
    restores: (purpose) =>
      calls
        .filter((c) => c.activity === 'restoreComponent')
        .map((c) => c.args[0] as RestoreComponentRequest)
        .filter((r) => purpose === undefined || r.purpose === purpose),
    request,
    async start(over = {}, options = {}) {
      const { workflowId } = await client.startRollback(request(over), options);
      started.add(workflowId);
      return workflowId;
    },
    async startDirect(over = {}) {
      const workflowId = `rollback-${STUB_ENVIRONMENT}-direct-${randomBytes(4).toString('hex')}`;
      started.add(workflowId);
      await temporalClient.workflow.start('rollbackWorkflow', {
        taskQueue,
        workflowId,
        args: [{ ...request(), trigger: 'alert', dryRun: false, acceptDataLoss: false, ...over }],
      });
      return workflowId;
    },
    handle: (workflowId) => temporalClient.workflow.getHandle(workflowId),
    waitFor: (workflowId, until, timeoutMs = 20_000) =>
      client.waitForRollback(workflowId, until, { timeoutMs, intervalMs: 50 }),
    async finalStatus(workflowId, timeoutMs = 20_000) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${workflowId} to close`)),
          timeoutMs,
        );
      });
      try {
        await Promise.race([
          temporalClient.workflow
            .getHandle(workflowId)
            .result()
            .catch(() => undefined),
          deadline,
        ]);
      } finally {
        clearTimeout(timer);
      }
      return client.rollbackView(workflowId);
    },
    async historyEvents(workflowId) {
      const history = await temporalClient.workflow.getHandle(workflowId).fetchHistory();
      return (history.events ?? []).map((e) => eventTypeName(e.eventType));
    },
    async teardown() {
      // Runs a failed test left behind would keep their lock; end them (their locks go with them).
      const leftover = new Set(started);
      try {
        for await (const run of temporalClient.workflow.list({
          query: `TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Running'`,
        })) {
          leftover.add(run.workflowId);
        }
      } catch {
        // Visibility is best effort here; the started ids are known anyway.
      }
      await Promise.allSettled(
        [...leftover].map((id) => temporalClient.workflow.getHandle(id).terminate('test teardown')),
      );
      workers.forEach((w) => w.shutdown());
      await Promise.allSettled(running);
      await nativeConnection.close();
      await connection.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}

function withStubs<T>(override: Partial<T> | ((stubs: T) => Partial<T>) | undefined, stubs: T): Partial<T> {
  return typeof override === 'function' ? override(stubs) : (override ?? {});
}

/** `EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED` → `WorkflowExecutionUpdateAccepted`. */
export function eventTypeName(type: temporal.api.enums.v1.EventType | null | undefined): string {
  const name = temporal.api.enums.v1.EventType[type ?? 0] ?? 'EVENT_TYPE_UNSPECIFIED';
  return name
    .replace(/^EVENT_TYPE_/, '')
    .toLowerCase()
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

/**
 * Runs `count` tasks with at most `concurrency` in flight; results in task order. After a task
 * fails no new one starts, the ones in flight are awaited, and the first failure is thrown.
 */
export async function inBatches<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lanes = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count && !failure) {
      const i = next++;
      try {
        results[i] = await task(i);
      } catch (error) {
        failure ??= { error };
      }
    }
  });
  await Promise.all(lanes);
  if (failure) throw failure.error;
  return results;
}
