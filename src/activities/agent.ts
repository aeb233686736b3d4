// Activities that touch an environment's components. They run in that environment's agent
// (task queue "<taskQueue>-env-<environment>"), the only process allowed to write there.
// Each one checks the state before acting, so a retry after a crash never applies twice.
// What to do depends on the component's kind: see src/components.
import { createHmac } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { ComponentPlan, RestoreOutcome } from '../components/core';
import type {
  AssessComponentRequest,
  FollowUpRequest,
  ListingDocuments,
  RestoreComponentRequest,
  SnapshotComponentRequest,
  StageComponentRequest,
  StageOutcome,
  StepContext,
  VerifyComponentRequest,
  VerifyOutcome,
} from '../components/driver';
import { discardStaged, stagedRun, sweepStaging } from '../components/files/staging';
import { createDrivers } from '../components/drivers';
import type { DriftAnswer, DriftQuestion } from '../components/drift';
import type { ComponentSnapshot } from '../domain/cross-section';
import { repositoryPassword } from '../manifest/load';
import { readAppVersion, type AppVersion } from '../drift/app-version';
import { ErrorType } from '../domain/errors';
import type { Component, Manifest } from '../manifest/schema';
import type { Logger } from '../platform/logger';
import { ResticError } from '../snapshots/restic';
import type { SnapshotStore } from '../snapshots/store';
import { toApplicationFailure } from './failures';
import type { Check, CheckResult } from '../verify/section';
import { preflightProblem, runCheck } from '../verify/run-checks';
import { reportProgress, type ProgressReporter } from './progress';

export type {
  AssessComponentRequest,
  StageComponentRequest,
  StageOutcome,
  RestoreComponentRequest,
  SnapshotComponentRequest,
  VerifyComponentRequest,
  VerifyOutcome,
};

export interface DescribeComponentRequest {
  environment: string;
  component: string;
  scanId: string;
  question: DriftQuestion;
}

export interface AgentDeps {
  environment: string;
  manifest: Manifest;
  store: SnapshotStore;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
}

/** Staged data older than this belongs to no run that can still use it (approval waits are shorter). */
const STAGING_MAX_AGE_MS = 7 * 24 * 3600_000;

export function createAgentActivities(deps: AgentDeps) {
  const agentDir = path.join(deps.manifest.dataDir, 'agent', deps.environment);
  const driverFor = createDrivers({ env: deps.env ?? process.env });

  const refuseOtherEnvironment = (environment: string): void => {
    if (environment !== deps.environment) {
      throw ApplicationFailure.nonRetryable(
        `this agent serves environment "${deps.environment}", not "${environment}"`,
        ErrorType.WrongAgent,
      );
    }
  };

  const componentOf = (environment: string, name: string): Component => {
    refuseOtherEnvironment(environment);
    const component = deps.manifest.environments[environment]?.components[name];
    if (!component) {
      throw ApplicationFailure.nonRetryable(
        `environment "${environment}" has no component "${name}"`,
        ErrorType.InvalidRequest,
      );
    }
    return component;
  };

  // Listings never change once stored, so the agent keeps a copy of each one it has written
  // or read: a restore then needs no extra restic run (each costs its key derivation).
  const listingDir = path.join(agentDir, 'listings');
  const listingFile = (id: string) => {
    if (!/^[0-9a-f]{8,64}$/.test(id))
      throw ApplicationFailure.nonRetryable(`"${id}" is not a restic snapshot id`, ErrorType.InvalidRequest);
    return path.join(listingDir, `${id}.txt`);
  };
  const listings: ListingDocuments = {
    async save(id, text) {
      await mkdir(listingDir, { recursive: true });
      const file = listingFile(id);
      await writeFile(`${file}.tmp`, text);
      await rename(`${file}.tmp`, file);
    },
    async load(id) {
      const file = listingFile(id);
      try {
        return await readFile(file, 'utf8');
      } catch {
        const text = await deps.store.readListingText(id);
        await listings.save(id, text);
        return text;
      }
    },
  };

  const stagingRoot = path.join(agentDir, 'staging');

  const contextFor = async (component: string, progress: ProgressReporter): Promise<StepContext> => {
    const lockDir = path.join(agentDir, 'locks');
    await mkdir(lockDir, { recursive: true });
    return {
      environment: deps.environment,
      store: deps.store,
      logger: deps.logger,
      progress,
      plansDir: path.join(agentDir, 'plans'),
      lockFile: path.join(lockDir, `${component}.lock`),
      listings,
      stagingRoot,
    };
  };

  /** Runs one step with progress heartbeats, and turns what it throws into typed failures. */
  const step = async <T>(
    component: string,
    stage: string,
    fn: (progress: ProgressReporter) => Promise<T>,
  ): Promise<T> => {
    const progress = reportProgress(component, stage);
    try {
      return await fn(progress);
    } catch (err) {
      throw await cleanUpAndConvert(err, deps);
    } finally {
      progress.stop();
    }
  };

  async function snapshotComponent(req: SnapshotComponentRequest): Promise<ComponentSnapshot> {
    const component = componentOf(req.environment, req.component);
    return step(req.component, 'snapshot', async (progress) => {
      const { found, partial } = await deps.store.completeComponentSnapshot(
        req.environment,
        req.component,
        req.crossSectionId,
      );
      if (found) return found;
      if (partial.length > 0) await deps.store.restic.forget(partial);
      const ctx = await contextFor(req.component, progress);
      const snapshot = await driverFor(component).snapshot(component, req, ctx);
      deps.logger.info(
        {
          component: req.component,
          crossSectionId: req.crossSectionId,
          snapshotId: snapshot.snapshotId,
          kind: component.kind,
        },
        'snapshot taken',
      );
      return snapshot;
    });
  }

  async function restoreComponent(req: RestoreComponentRequest): Promise<RestoreOutcome> {
    const component = componentOf(req.environment, req.component);
    const started = Date.now();
    return step(req.component, 'check', async (progress) => {
      const ctx = await contextFor(req.component, progress);
      const outcome = await driverFor(component).restore(component, req, ctx);
      if (outcome.alreadyAtTarget) {
        deps.logger.info({ component: req.component, purpose: req.purpose }, 'already at target; nothing to restore');
      } else {
        deps.logger.info({ component: req.component, purpose: req.purpose, ...outcome }, 'restored');
      }
      return { ...outcome, durationMs: Date.now() - started };
    });
  }

  /** The plan of one component, made where its current and target listings are at hand. */
  async function assessComponent(req: AssessComponentRequest): Promise<ComponentPlan> {
    const component = componentOf(req.environment, req.component);
    return step(req.component, 'plan', async (progress) => {
      const ctx = await contextFor(req.component, progress);
      return driverFor(component).assess(component, req, ctx);
    });
  }

  async function verifyComponent(req: VerifyComponentRequest): Promise<VerifyOutcome> {
    const component = componentOf(req.environment, req.component);
    return step(req.component, 'verify', async (progress) => {
      const ctx = await contextFor(req.component, progress);
      const started = Date.now();
      const outcome = await driverFor(component).verify(component, req, ctx);
      deps.logger.info({ component: req.component, matches: outcome.matches, ms: Date.now() - started }, 'verified');
      return outcome;
    });
  }

  /** Before approval: reads (and keeps, where the kind can) what a rollback would write. */
  async function stageComponent(req: StageComponentRequest): Promise<StageOutcome> {
    const component = componentOf(req.environment, req.component);
    const driver = driverFor(component);
    if (!driver.stage) return { readable: true, note: 'not checked before approval', bytes: 0 };
    return step(req.component, 'stage', async (progress) => {
      await sweepStaging(stagingRoot, STAGING_MAX_AGE_MS);
      const started = Date.now();
      const outcome = await driver.stage!(component, req, await contextFor(req.component, progress));
      deps.logger.info({ component: req.component, ...outcome, ms: Date.now() - started }, 'target read back');
      return outcome;
    });
  }

  // Both agents of a scan derive the same key from the repository password, so equal secret
  // values hash equal without either side revealing them.
  let driftKey: string | undefined;
  const hashKey = () =>
    (driftKey ??= createHmac('sha256', repositoryPassword(deps.manifest, deps.env ?? process.env))
      .update('rewind-drift-v1')
      .digest('hex'));

  /** A drift scan's question about one component, answered from the component as it is now. */
  async function describeComponent(req: DescribeComponentRequest): Promise<DriftAnswer> {
    const component = componentOf(req.environment, req.component);
    return step(req.component, 'describe', async (progress) => {
      const started = Date.now();
      const answer = await driverFor(component).describe(component, req.question, {
        environment: req.environment,
        component: req.component,
        scanId: req.scanId,
        hashKey: hashKey(),
        secretKeys: deps.manifest.drift.secretKeys,
        stateDir: path.join(agentDir, 'drift', req.component),
        signal: progress.signal,
        logger: deps.logger,
      });
      deps.logger.debug({ component: req.component, scanId: req.scanId, ms: Date.now() - started }, 'described');
      return answer;
    });
  }

  /** The running application's version, from the environment's `version` source. */
  async function describeAppVersion(req: { environment: string }): Promise<AppVersion> {
    refuseOtherEnvironment(req.environment);
    return readAppVersion(deps.manifest.environments[req.environment]!.version);
  }

  const checksNamed = (environment: string, names: string[]): Check[] => {
    refuseOtherEnvironment(environment);
    const all = deps.manifest.environments[environment]?.verify?.checks ?? [];
    return names.map((name) => {
      const check = all.find((c) => c.name === name);
      if (!check)
        throw ApplicationFailure.nonRetryable(
          `environment "${environment}" has no verification check "${name}" (the manifest changed during the run?)`,
          ErrorType.InvalidRequest,
        );
      return check;
    });
  };

  /** Runs verification checks, one after the other, heartbeating; a failed check is a result, not an error. */
  async function runChecks(req: { environment: string; checks: string[]; wave?: string }): Promise<CheckResult[]> {
    const checks = checksNamed(req.environment, req.checks);
    return step('checks', 'checks', async (progress) => {
      const results: CheckResult[] = [];
      for (const check of checks) {
        progress.update({ stage: `check ${check.name}` });
        results.push(
          await runCheck(check, { ...(req.wave !== undefined ? { wave: req.wave } : {}), signal: progress.signal }),
        );
      }
      return results;
    });
  }

  /** Before approval: the checks that could not judge at all (Prometheus unreachable, a refused query). */
  async function preflightChecks(req: { environment: string; checks: string[] }): Promise<string[]> {
    const checks = checksNamed(req.environment, req.checks);
    const problems = await Promise.all(
      checks.map(async (c) => {
        const problem = await preflightProblem(c);
        return problem ? `check ${c.name}: ${problem}` : undefined;
      }),
    );
    return problems.filter((p): p is string => p !== undefined);
  }

  /** What a completed step asked for later (driver.followUp), e.g. stopping the previous colour. */
  async function followUpComponent(req: FollowUpRequest): Promise<string> {
    const component = componentOf(req.environment, req.component);
    return step(req.component, 'follow-up', async (progress) => {
      const driver = driverFor(component);
      if (!driver.followUp) return 'nothing to do';
      const note = await driver.followUp(component, req, await contextFor(req.component, progress));
      deps.logger.info({ component: req.component, note }, 'followed up');
      return note;
    });
  }

  /** What a run staged and did not use (it was rejected, timed out, or failed before execute). */
  async function discardStaging(req: { environment: string; workflowId: string }): Promise<void> {
    refuseOtherEnvironment(req.environment);
    await discardStaged(stagedRun(stagingRoot, req.workflowId));
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
    runChecks,
    preflightChecks,
    followUpComponent,
  };
}

export type AgentActivities = ReturnType<typeof createAgentActivities>;

async function cleanUpAndConvert(err: unknown, deps: AgentDeps): Promise<unknown> {
  // An incomplete backup still writes a snapshot; a retry must not find it and trust it.
  if (err instanceof ResticError && err.kind === 'incomplete' && err.snapshotId) {
    await deps.store.restic
      .forget([err.snapshotId])
      .catch((e: unknown) => deps.logger.error({ err: e }, 'could not forget an incomplete snapshot'));
  }
  return toApplicationFailure(err);
}
