// Retention, applied: what Temporal says is running (rollbacks and snapshots, and the targets of
// running rollbacks), the policy's verdict on each cross-section, then `restic forget` of exactly
// the snapshots of the cross-sections to forget, and `restic prune`. Used by `rewind snapshot
// forget|prune` and by the prune schedule's workflow (on the control worker).
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { groupCrossSections } from '../domain/cross-section';
import {
  retentionVerdicts,
  TIER_NAMES,
  type KeepPolicy,
  type RetentionFacts,
  type RetentionVerdict,
} from '../domain/retention';
import { rollbackStatusQuery } from '../domain/messages';
import type { RollbackStatus } from '../domain/rollback';
import { environmentAttribute, targetAttribute } from '../domain/search-attributes';
import type { Manifest } from '../manifest/schema';
import type { ResticRepository } from '../snapshots/restic';
import { localSnapshotsFolder } from '../snapshots/snapshot-index';
import { keepPolicy } from './policy';

/** How long a running rollback has to say what it targets before its attribute is used instead. */
const QUERY_DEADLINE_MS = 3_000;

export interface RetentionReport {
  dryRun: boolean;
  environments: {
    environment: string;
    verdicts: RetentionVerdict[];
    kept: number;
    forgotten: number;
    /** restic snapshots forgotten (each cross-section has several). */
    snapshotsForgotten: number;
    /** Cross-sections of the cold and archive tiers copied to the cold repository (snapshots.cold). */
    copiedToCold?: number;
  }[];
  /** The cold repository's own retention, when there is one. */
  cold?: { environment: string; kept: number; forgotten: number }[];
}

/**
 * What must not be forgotten now: cross-sections of workflows still running on this install's
 * control task queue, and the targets of running rollbacks. A running rollback that does not
 * answer its status query is protected by its target attribute (every cross-section of the version
 * or id it names).
 */
export async function retentionFacts(
  client: Client,
  manifest: Manifest,
  sectionsByEnv: Map<string, { id: string; version?: string }[]>,
  now = new Date(),
): Promise<RetentionFacts> {
  const runningWorkflows = new Set<string>();
  const targets = new Map<string, string>();
  const query = `ExecutionStatus = 'Running' AND TaskQueue = '${manifest.temporal.taskQueue}'`;
  for await (const run of client.workflow.list({ query })) {
    runningWorkflows.add(run.workflowId);
    if (run.type !== 'rollbackWorkflow') continue;
    // Briefly: a run whose worker is down would hold the query until the RPC's own deadline.
    const status = await client.connection
      .withDeadline(Date.now() + QUERY_DEADLINE_MS, () =>
        client.workflow.getHandle(run.workflowId).query<RollbackStatus>(rollbackStatusQuery),
      )
      .catch(() => undefined);
    const id = status?.targetCrossSection?.crossSectionId;
    if (id) {
      targets.set(id, run.workflowId);
      continue;
    }
    // No answer: protect what its target attribute could name.
    const environment = run.typedSearchAttributes.get(environmentAttribute);
    const target = run.typedSearchAttributes.get(targetAttribute) ?? '';
    for (const s of sectionsByEnv.get(environment ?? '') ?? []) {
      if (target === s.id || target === `version:${s.version ?? ''}` || target.startsWith('time:'))
        targets.set(s.id, run.workflowId);
    }
  }
  return { now, runningWorkflows, targets };
}

/** Restic snapshot ids by environment and cross-section, and the cross-sections, of a repository. */
async function inventory(restic: ResticRepository, environments: string[]) {
  await restic.ensureInitialized();
  const all = await restic.snapshots(['rewind']);
  const snapshotIds = new Map<string, string[]>();
  for (const s of all) {
    const key = `${s.labels.environment}\u0000${s.labels.crossSectionId}`;
    snapshotIds.set(key, [...(snapshotIds.get(key) ?? []), s.id]);
  }
  const sections = new Map(
    environments.map((env) => [env, groupCrossSections(all.filter((s) => s.labels.environment === env))]),
  );
  const idsOf = (environment: string, verdicts: RetentionVerdict[]) =>
    verdicts.flatMap((v) => snapshotIds.get(`${environment}\u0000${v.id}`) ?? []);
  return { sections, idsOf };
}

/** Forgets in batches: a long history must not make one command line too long. */
async function forgetAll(restic: ResticRepository, ids: string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 200) await restic.forget(ids.slice(i, i + 200));
}

/**
 * Applies the manifest's retention to `environments` (default all); forgets unless `dryRun`.
 * With a cold repository, the scheduled cross-sections the cold and archive tiers keep are
 * copied there first and then leave this one, and the cold repository keeps them by its daily
 * and weekly rules.
 */
export async function applyRetention(deps: {
  client: Client;
  manifest: Manifest;
  restic: ResticRepository;
  cold?: ResticRepository | undefined;
  environments?: string[];
  dryRun: boolean;
  now?: Date;
}): Promise<RetentionReport> {
  const { manifest, restic, cold } = deps;
  const environments = deps.environments ?? Object.keys(manifest.environments);
  const primary = await inventory(restic, environments);
  const facts = await retentionFacts(deps.client, manifest, primary.sections, deps.now);
  const policy = keepPolicy(manifest.snapshots);
  const report: RetentionReport = { dryRun: deps.dryRun, environments: [] };
  for (const environment of environments) {
    let verdicts = retentionVerdicts(primary.sections.get(environment) ?? [], policy, facts);
    let copiedToCold = 0;
    if (cold) {
      const toCold = verdicts.filter(
        (v) => v.keep && v.origin === 'schedule' && (v.tier === 'daily' || v.tier === 'weekly'),
      );
      if (!deps.dryRun) await cold.copyFrom(restic, primary.idsOf(environment, toCold));
      copiedToCold = toCold.length;
      const moved = new Set(toCold.map((v) => v.id));
      verdicts = verdicts.map((v) =>
        moved.has(v.id)
          ? { ...v, keep: false, reason: `${TIER_NAMES[v.tier!]} tier: kept in the cold repository (snapshots.cold)` }
          : v,
      );
    }
    const gone = verdicts.filter((v) => !v.keep);
    const ids = primary.idsOf(environment, gone);
    if (!deps.dryRun) await forgetAll(restic, ids);
    report.environments.push({
      environment,
      verdicts,
      kept: verdicts.length - gone.length,
      forgotten: gone.length,
      snapshotsForgotten: ids.length,
      ...(cold ? { copiedToCold } : {}),
    });
  }
  if (cold) report.cold = await coldRetention(cold, environments, policy, deps.dryRun, deps.now ?? new Date());
  return report;
}

/** The cold repository keeps its scheduled cross-sections by the daily and weekly rules alone. */
async function coldRetention(
  cold: ResticRepository,
  environments: string[],
  policy: KeepPolicy,
  dryRun: boolean,
  now: Date,
): Promise<NonNullable<RetentionReport['cold']>> {
  const stored = await inventory(cold, environments);
  const facts = { now, runningWorkflows: new Set<string>(), targets: new Map<string, string>() };
  const result: NonNullable<RetentionReport['cold']> = [];
  for (const environment of environments) {
    const verdicts = retentionVerdicts(stored.sections.get(environment) ?? [], { ...policy, hourlyMs: 0 }, facts);
    const gone = verdicts.filter((v) => !v.keep);
    if (!dryRun) await forgetAll(cold, stored.idsOf(environment, gone));
    result.push({ environment, kept: verdicts.length - gone.length, forgotten: gone.length });
  }
  return result;
}

/**
 * The repository's size: on disk for a local repository (what prune frees shows there), else
 * restic's raw-data size (what the snapshots reference, compressed).
 */
export async function repositoryBytes(restic: ResticRepository): Promise<number> {
  const snapshots = localSnapshotsFolder(restic.location);
  if (snapshots) {
    let total = 0;
    for (const entry of await readdir(path.dirname(snapshots), { withFileTypes: true, recursive: true }))
      if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
    return total;
  }
  return Number((await restic.run(['stats', '--mode', 'raw-data', '--no-lock']))[0]?.total_size ?? 0);
}

/** `restic prune`: removes the data no snapshot references any more. Returns the sizes before and after. */
export async function pruneRepository(
  restic: ResticRepository,
  dryRun: boolean,
): Promise<{ dryRun: boolean; bytesBefore: number; bytesAfter: number }> {
  const bytesBefore = await repositoryBytes(restic);
  await restic.run(['prune', ...(dryRun ? ['--dry-run'] : [])], { lockWait: '10m' });
  return { dryRun, bytesBefore, bytesAfter: dryRun ? bytesBefore : await repositoryBytes(restic) };
}
