// Retention, applied: what Temporal says is running (rollbacks and snapshots, and the targets of
// running rollbacks), the policy's verdict on each cross-section, then `restic forget` of exactly
// the snapshots of the cross-sections to forget, and `restic prune`. Used by `rewind snapshot
// forget|prune` and by the prune schedule's workflow (on the control worker).
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { groupCrossSections } from '../domain/cross-section';
import { retentionVerdicts, type RetentionFacts, type RetentionVerdict } from '../domain/retention';
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
  }[];
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

/** Applies the manifest's retention to `environments` (default all); forgets unless `dryRun`. */
export async function applyRetention(deps: {
  client: Client;
  manifest: Manifest;
  restic: ResticRepository;
  environments?: string[];
  dryRun: boolean;
  now?: Date;
}): Promise<RetentionReport> {
  const { manifest, restic } = deps;
  const environments = deps.environments ?? Object.keys(manifest.environments);
  await restic.ensureInitialized();
  const all = await restic.snapshots(['rewind']);
  const snapshotIds = new Map<string, string[]>();
  for (const s of all) {
    const key = `${s.labels.environment}\u0000${s.labels.crossSectionId}`;
    snapshotIds.set(key, [...(snapshotIds.get(key) ?? []), s.id]);
  }
  const sectionsByEnv = new Map(
    environments.map((env) => [env, groupCrossSections(all.filter((s) => s.labels.environment === env))]),
  );
  const facts = await retentionFacts(deps.client, manifest, sectionsByEnv, deps.now);
  const policy = keepPolicy(manifest.snapshots);
  const report: RetentionReport = { dryRun: deps.dryRun, environments: [] };
  for (const environment of environments) {
    const verdicts = retentionVerdicts(sectionsByEnv.get(environment) ?? [], policy, facts);
    const gone = verdicts.filter((v) => !v.keep);
    const ids = gone.flatMap((v) => snapshotIds.get(`${environment}\u0000${v.id}`) ?? []);
    // Bounded command lines: a long history goes in batches.
    if (!deps.dryRun) for (let i = 0; i < ids.length; i += 200) await restic.forget(ids.slice(i, i + 200));
    report.environments.push({
      environment,
      verdicts,
      kept: verdicts.length - gone.length,
      forgotten: gone.length,
      snapshotsForgotten: ids.length,
    });
  }
  return report;
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
