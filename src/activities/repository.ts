// Control activities that keep the snapshot repository healthy, for the maintenance schedules:
// retention (forget what the tiers drop), prune, and restic check, each check recorded in the
// project store (metrics and alerts read the last one that passed).
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { parseDuration } from '../manifest/duration';
import type { Manifest } from '../manifest/schema';
import type { Logger } from '../platform/logger';
import { applyRetention, pruneRepository } from '../retention/apply';
import { COLD_REPOSITORY, PRIMARY_REPOSITORY } from '../retention/policy';
import type { ResticRepository } from '../snapshots/restic';
import type { SnapshotStore } from '../snapshots/store';
import type { ProjectStore } from '../store/project-store';

export interface RepositoryDeps {
  manifest: Manifest;
  store: SnapshotStore;
  client: Client;
  projectStore: () => Promise<ProjectStore>;
  logger: Logger;
  /** The cold repository (snapshots.cold), if the manifest has one. */
  cold?: ResticRepository | undefined;
}

export interface RetentionSummary {
  environments: { environment: string; kept: number; forgotten: number }[];
}

export interface CheckResult {
  repository: string;
  ok: boolean;
  /** The part of the data read, when this check read data. */
  readData?: string;
  message?: string;
  durationMs: number;
}

export function createRepositoryActivities(deps: RepositoryDeps) {
  const { manifest, store } = deps;

  /** Heartbeats while `work` runs: forget and prune can take minutes on a large repository. */
  async function heartbeating<T>(work: Promise<T>): Promise<T> {
    const timer = setInterval(() => Context.current().heartbeat(), 5_000);
    try {
      return await work;
    } finally {
      clearInterval(timer);
    }
  }

  async function forgetByRetention(): Promise<RetentionSummary> {
    const report = await heartbeating(
      applyRetention({ client: deps.client, manifest, restic: store.restic, cold: deps.cold, dryRun: false }),
    );
    for (const env of report.environments)
      deps.logger.info({ environment: env.environment, kept: env.kept, forgotten: env.forgotten }, 'retention applied');
    return {
      environments: report.environments.map(({ environment, kept, forgotten }) => ({ environment, kept, forgotten })),
    };
  }

  async function pruneSnapshots(): Promise<{ bytesBefore: number; bytesAfter: number }> {
    const { bytesBefore, bytesAfter } = await heartbeating(pruneRepository(store.restic, false));
    deps.logger.info({ repository: PRIMARY_REPOSITORY, bytesBefore, bytesAfter }, 'repository pruned');
    if (deps.cold) {
      const cold = await heartbeating(pruneRepository(deps.cold, false));
      deps.logger.info({ repository: COLD_REPOSITORY, ...cold }, 'repository pruned');
    }
    return { bytesBefore, bytesAfter };
  }

  /**
   * `restic check`; with part of the data read (--read-data-subset) when the last check that read
   * data is older than snapshots.check.readDataEvery. A failed check is a result, not an error.
   */
  async function checkRepository(): Promise<CheckResult> {
    const projectStore = await deps.projectStore();
    const { check } = manifest.snapshots;
    const readEvery = parseDuration(check.readDataEvery);
    const [lastRead] = await projectStore.query<{ finished_at: Date | string }>(
      `SELECT finished_at FROM repository_checks WHERE repository = $1 AND ok AND read_data IS NOT NULL
        ORDER BY finished_at DESC LIMIT 1`,
      [PRIMARY_REPOSITORY],
    );
    const readData =
      readEvery > 0 && (!lastRead || Date.now() - new Date(lastRead.finished_at).getTime() >= readEvery)
        ? check.readDataSubset
        : undefined;
    const startedAt = new Date();
    let ok = true;
    let message: string | undefined;
    try {
      await heartbeating(
        store.restic.run(['check', ...(readData ? ['--read-data-subset', readData] : [])], { lockWait: '10m' }),
      );
    } catch (err) {
      ok = false;
      message = (err instanceof Error ? err.message : String(err)).slice(0, 2000);
    }
    const finishedAt = new Date();
    await projectStore.query(
      `INSERT INTO repository_checks (repository, started_at, finished_at, ok, read_data, message)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [PRIMARY_REPOSITORY, startedAt, finishedAt, ok, readData ?? null, message ?? null],
    );
    (ok ? deps.logger.info : deps.logger.error).call(
      deps.logger,
      { repository: PRIMARY_REPOSITORY, readData, message },
      ok ? 'repository check passed' : 'repository check FAILED',
    );
    return {
      repository: PRIMARY_REPOSITORY,
      ok,
      ...(readData ? { readData } : {}),
      ...(message ? { message } : {}),
      durationMs: finishedAt.getTime() - startedAt.getTime(),
    };
  }

  return { forgetByRetention, pruneSnapshots, checkRepository };
}

export type RepositoryActivities = ReturnType<typeof createRepositoryActivities>;
