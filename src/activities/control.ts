// Activities of the control worker (task queue "rewind"): they read the manifest and the
// snapshot repository and write plans and reports, but never touch an environment's files.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { ComponentSnapshot } from '../domain/cross-section';
import { ErrorType } from '../domain/errors';
import {
  type ComponentPlan,
  type RollbackComponent,
  type RollbackContext,
  type RollbackRequest,
} from '../domain/rollback';
import {
  autoApprovalOf,
  drillApprovalOf,
  chosenComponents,
  environmentBusyMessage,
  environmentProblem,
  manifestMismatch,
  rollbackRequestProblem,
  targetNotFoundMessage,
} from '../domain/rollback-rules';
import type { SnapshotContext, SnapshotRequest } from '../domain/snapshot';
import { diffListings, toChange } from '../components/files/listing';
import type { FilesPlanDetails } from '../components/files/kind';
import { componentLocation, stepOptionsOf } from '../components/registry';
import { manifestDigest } from '../manifest/digest';
import { parseDuration } from '../manifest/duration';
import { allowsSelfApproval, envTaskQueue, type Manifest } from '../manifest/schema';
import type { Logger } from '../platform/logger';
import { lockHolder as findLockHolder, runningRollbacks } from '../platform/rollback-runs';
import type { SnapshotStore } from '../snapshots/store';
import { summarizeChanges } from '../components/change-list';
import { toApplicationFailure } from './failures';
import { verificationOf } from '../verify/section';

export interface ControlDeps {
  manifest: Manifest;
  store: SnapshotStore;
  logger: Logger;
  /** Used to refuse a second rollback of an environment while one runs. */
  client?: Client;
}

export interface PlanComponentRequest {
  workflowId: string;
  component: RollbackComponent;
  safety: ComponentSnapshot;
  previewPaths: number;
}

export function createControlActivities(deps: ControlDeps) {
  const { manifest } = deps;

  /** The request's environment and components, checked against the manifest. */
  const chosen = (environment: string, requested: string[] | undefined): string[] => {
    const problem = environmentProblem(manifest, environment, requested);
    if (problem) throw ApplicationFailure.nonRetryable(problem, ErrorType.InvalidRequest);
    return chosenComponents(manifest, environment, requested);
  };

  const digest = manifestDigest(manifest);
  /** A request made with another manifest would act on a partial or stale view of it. */
  const refuseOtherManifest = (request: { manifestDigest?: string | undefined }) => {
    const mismatch = manifestMismatch(digest, request.manifestDigest);
    if (mismatch) throw ApplicationFailure.nonRetryable(mismatch, ErrorType.InvalidRequest);
  };

  function resolveSnapshot(request: SnapshotRequest): Promise<SnapshotContext> {
    refuseOtherManifest(request);
    return Promise.resolve({
      environment: request.environment,
      envTaskQueue: envTaskQueue(manifest, request.environment),
      components: chosen(request.environment, request.components),
      heartbeatTimeoutMs: parseDuration(manifest.policy.heartbeatTimeout),
    });
  }

  async function resolveRollback(
    request: RollbackRequest & { workflowId: string; takesLock?: boolean },
  ): Promise<RollbackContext> {
    try {
      refuseOtherManifest(request);
      const problem = rollbackRequestProblem(manifest, request);
      if (problem) throw ApplicationFailure.nonRetryable(problem, ErrorType.InvalidRequest);
      const autoApproval = autoApprovalOf(manifest, request) ?? drillApprovalOf(manifest, request);
      if (autoApproval && 'problem' in autoApproval)
        throw ApplicationFailure.nonRetryable(autoApproval.problem, ErrorType.InvalidRequest);
      const env = manifest.environments[request.environment]!;
      const names = chosenComponents(manifest, request.environment, request.components);
      // A run that takes the environment lock itself (see workflows/lock.ts) needs no check of
      // the running list, which two runs started together could both pass.
      if (!request.dryRun && !request.takesLock)
        await refuseConcurrentRollback(request.environment, request.workflowId);

      const target = await deps.store.findTarget(request.environment, request.target);
      if (!target) {
        const recent = (await deps.store.crossSections(request.environment))
          .filter((s) => s.origin !== 'safety' && s.origin !== 'dry-run')
          .slice(0, 5);
        const hint = recent.length
          ? `recent: ${recent.map((s) => (s.version ? `${s.id} (${s.version})` : s.id)).join(', ')}`
          : 'there are no snapshots yet (rewind snapshot create)';
        throw ApplicationFailure.nonRetryable(
          targetNotFoundMessage(request.environment, request.target, hint),
          ErrorType.TargetNotFound,
        );
      }
      const missing = names.filter((n) => !target.components[n]);
      if (missing.length > 0) {
        throw ApplicationFailure.nonRetryable(
          `cross-section ${target.id} has no snapshot of ${missing.join(', ')}; choose components with --components`,
          ErrorType.CrossSectionIncomplete,
        );
      }
      return {
        environment: request.environment,
        envTaskQueue: envTaskQueue(manifest, request.environment),
        target: {
          crossSectionId: target.id,
          time: target.time,
          ...(target.version !== undefined ? { version: target.version } : {}),
        },
        components: names.map((name) => {
          const component = env.components[name]!;
          const snap = target.components[name]!;
          const time = request.target.kind === 'time' ? request.target.time : undefined;
          return {
            name,
            kind: component.kind,
            ...stepOptionsOf(component, {
              ...(request.strategy !== undefined ? { strategy: request.strategy } : {}),
              ...(time ? { time } : {}),
              crossSectionTime: target.time,
            }),
            path: componentLocation(component),
            dependsOn: component.dependsOn.filter((d) => names.includes(d)),
            targetSnapshotId: snap.snapshotId,
            targetListingSnapshotId: snap.listingSnapshotId,
            targetFingerprint: snap.fingerprint,
          };
        }),
        approvers: manifest.approvers,
        requiredApprovals: manifest.policy.requiredApprovals,
        allowSelfApproval: allowsSelfApproval(request.environment, env),
        approvalTimeoutMs: parseDuration(manifest.policy.approvalTimeout),
        heartbeatTimeoutMs: parseDuration(manifest.policy.heartbeatTimeout),
        previewPaths: manifest.policy.planPreviewPaths,
        ...(autoApproval ? { autoApproval } : {}),
        ...(env.verify ? { verification: verificationOf(env.verify, names) } : {}),
      };
    } catch (err) {
      throw toApplicationFailure(err);
    }
  }

  /** The rollback holding an environment's lock workflow, if it still runs. */
  async function lockHolder(lockWorkflowId: string): Promise<string | undefined> {
    return deps.client ? findLockHolder(deps.client, lockWorkflowId) : undefined;
  }

  async function refuseConcurrentRollback(environment: string, self: string): Promise<void> {
    if (!deps.client) return;
    const other = (await runningRollbacks(deps.client, manifest.temporal.taskQueue, environment)).find(
      (id) => id !== self,
    );
    if (other) {
      throw ApplicationFailure.nonRetryable(environmentBusyMessage(other, environment), ErrorType.InvalidRequest);
    }
  }

  /**
   * Legacy: the plan of a files component made on the control worker, for runs started before
   * plans moved to the agents (patch plan-components-on-agent; docs/versioning.md).
   */
  async function planComponent(req: PlanComponentRequest): Promise<ComponentPlan> {
    try {
      const [current, target] = await Promise.all([
        deps.store.readListing(req.safety.listingSnapshotId),
        deps.store.readListing(req.component.targetListingSnapshotId),
      ]);
      const changes = diffListings(current, target);
      const summary = await summarizeChanges(
        {
          plansDir: path.join(manifest.dataDir, 'plans'),
          workflowId: req.workflowId,
          component: req.component.name,
          previewPaths: req.previewPaths,
        },
        changes.map(toChange),
      );
      const details: FilesPlanDetails = { kind: 'files', modeChanged: changes.filter((c) => c.op === 'mode').length };
      return {
        component: req.component.name,
        kind: req.component.kind,
        path: req.component.path,
        targetSnapshotId: req.component.targetSnapshotId,
        safetySnapshotId: req.safety.snapshotId,
        ...summary,
        destructive: false,
        details,
      };
    } catch (err) {
      throw toApplicationFailure(err);
    }
  }

  /** No destructive step runs before the safety cross-section is confirmed readable. */
  async function confirmReadable(snapshots: ComponentSnapshot[]): Promise<void> {
    try {
      for (const s of snapshots) await deps.store.confirmReadable(s);
    } catch (err) {
      throw toApplicationFailure(err);
    }
  }

  async function saveReport(req: { workflowId: string; markdown: string }): Promise<string> {
    const dir = path.join(manifest.dataDir, 'reports');
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, `${safeFileName(req.workflowId)}.md`);
    await writeFile(file, req.markdown);
    // Never at the cost of the report: what is left here, the next prune forgets.
    await forgetDryRunSnapshots(req.workflowId).catch((err: unknown) =>
      deps.logger.warn({ err, workflowId: req.workflowId }, "could not forget a dry run's snapshots"),
    );
    return file;
  }

  /**
   * A dry run's cross-section served its plan; once the run has ended (its report is the last
   * thing it writes) nothing needs it, so it is not kept. Only snapshots the dry run took carry
   * its cross-section id: one it reused (a component already at its target) keeps its own.
   */
  async function forgetDryRunSnapshots(workflowId: string): Promise<void> {
    const taken = (await deps.store.restic.snapshots(['rewind', 'origin=dry-run'])).filter(
      (s) => s.labels.workflowId === workflowId,
    );
    if (taken.length === 0) return;
    await deps.store.restic.forget(taken.map((s) => s.id));
    deps.logger.info({ workflowId, snapshots: taken.length }, "forgot the dry run's snapshots");
  }

  return { resolveSnapshot, resolveRollback, lockHolder, planComponent, confirmReadable, saveReport };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;

function safeFileName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, '_');
}
