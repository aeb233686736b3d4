// Activities that touch an environment's files. They run in that environment's agent
// (task queue "<taskQueue>-env-<environment>"), the only process allowed to write there.
// Each one checks the state before acting, so a retry after a crash never applies twice.
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { ComponentSnapshot, FingerprintSummary, SnapshotOrigin } from '../domain/cross-section';
import { encodeTags, type SnapshotLabels } from '../domain/cross-section';
import { ErrorType } from '../domain/errors';
import type { RestoreOutcome } from '../domain/rollback';
import {
  diffListings,
  fingerprintOf,
  listDirectory,
  parseListing,
  serializeListing,
  type HashCache,
  type ListingChange,
  type ListingEntry,
} from '../files/listing';
import { includePatterns, planTargetedRestore, type TargetedRestorePlan } from '../files/targeted-restore';
import type { Manifest } from '../manifest/schema';
import type { Logger } from '../platform/logger';
import { ResticError, type RestoreSummary } from '../snapshots/restic';
import { EMPTY_MARKER_FILE, EMPTY_MARKER_TEXT, LISTING_FILE, type SnapshotStore } from '../snapshots/store';
import { Faults, type FaultPoint } from './faults';
import { reportProgress, type ProgressReporter } from './progress';
import { toApplicationFailure } from './failures';

export interface AgentDeps {
  environment: string;
  manifest: Manifest;
  store: SnapshotStore;
  logger: Logger;
  faults?: Faults;
}

export interface SnapshotComponentRequest {
  environment: string;
  component: string;
  crossSectionId: string;
  members: string[];
  origin: SnapshotOrigin;
  version?: string;
  reason?: string;
  workflowId?: string;
}

export interface RestoreComponentRequest {
  environment: string;
  component: string;
  snapshotId: string;
  listingSnapshotId: string;
  fingerprint: FingerprintSummary;
  purpose: 'rollback' | 'compensation';
}

export interface VerifyComponentRequest {
  environment: string;
  component: string;
  expected: FingerprintSummary;
  listingSnapshotId: string;
}

export interface VerifyOutcome {
  matches: boolean;
  actual: FingerprintSummary;
  /** The first differences from the target, when it does not match. */
  differences: ListingChange[];
}

/** Attempts to take a snapshot while files keep changing under it. */
const STABLE_SNAPSHOT_ATTEMPTS = 3;

export function createAgentActivities(deps: AgentDeps) {
  const faults = deps.faults ?? Faults.none();
  const cache: HashCache = new Map();
  const lockDir = path.join(deps.manifest.dataDir, 'agent', deps.environment, 'locks');

  const componentOf = (environment: string, name: string) => {
    if (environment !== deps.environment) {
      throw ApplicationFailure.nonRetryable(
        `this agent serves environment "${deps.environment}", not "${environment}"`,
        ErrorType.WrongAgent,
      );
    }
    const component = deps.manifest.environments[environment]?.components[name];
    if (!component) {
      throw ApplicationFailure.nonRetryable(`environment "${environment}" has no component "${name}"`, ErrorType.InvalidRequest);
    }
    return component;
  };

  // Listings never change once stored, so the agent keeps a copy of each one it has written
  // or read: restoring then needs no extra restic run (each costs its key derivation).
  const listingDir = path.join(deps.manifest.dataDir, 'agent', deps.environment, 'listings');
  const listingFile = (listingSnapshotId: string) => {
    if (!/^[0-9a-f]{8,64}$/.test(listingSnapshotId)) {
      throw ApplicationFailure.nonRetryable(`"${listingSnapshotId}" is not a restic snapshot id`, ErrorType.InvalidRequest);
    }
    return path.join(listingDir, `${listingSnapshotId}.jsonl`);
  };
  const saveListing = async (listingSnapshotId: string, entries: readonly ListingEntry[]) => {
    await mkdir(listingDir, { recursive: true });
    const file = listingFile(listingSnapshotId);
    await writeFile(`${file}.tmp`, serializeListing(entries));
    await rename(`${file}.tmp`, file);
  };
  const loadListing = async (listingSnapshotId: string): Promise<ListingEntry[]> => {
    const file = listingFile(listingSnapshotId);
    try {
      return parseListing(await readFile(file, 'utf8'));
    } catch {
      const entries = await deps.store.readListing(listingSnapshotId);
      await saveListing(listingSnapshotId, entries);
      return entries;
    }
  };

  const lockFileFor = async (component: string) => {
    await mkdir(lockDir, { recursive: true });
    return path.join(lockDir, `${component}.lock`);
  };

  const listing = async (dir: string, progress: ProgressReporter) =>
    listDirectory(dir, {
      cache,
      signal: progress.signal,
      onProgress: (p) =>
        progress.update({
          stage: 'fingerprint',
          percent: p.bytesTotal ? p.bytesHashed / p.bytesTotal : 1,
          bytesDone: p.bytesHashed,
          bytesTotal: p.bytesTotal,
          filesDone: p.filesHashed,
          filesTotal: p.filesTotal,
        }),
    });

  async function snapshotComponent(req: SnapshotComponentRequest): Promise<ComponentSnapshot> {
    const component = componentOf(req.environment, req.component);
    const progress = reportProgress(req.component, 'snapshot');
    try {
      await faults.fire('before-snapshot', req.component, { attempt: progress.attempt, path: component.path });
      const present = await isDirectory(component.path);
      // A safety snapshot must capture whatever is there, even nothing: a deleted component
      // directory is exactly what a rollback may have to repair. It is recorded as empty.
      if (!present && req.origin !== 'safety' && req.origin !== 'dry-run') {
        throw ApplicationFailure.nonRetryable(
          `${req.environment}/${req.component}: ${component.path} does not exist or is not a directory`,
          ErrorType.ComponentUnavailable,
        );
      }
      const list = (progressReporter: ProgressReporter) => (present ? listing(component.path, progressReporter) : Promise.resolve([]));
      const { found, partial } = await deps.store.completeComponentSnapshot(req.environment, req.component, req.crossSectionId);
      if (found) return found;
      if (partial.length > 0) await deps.store.restic.forget(partial);

      const lockFile = await lockFileFor(req.component);
      for (let attempt = 1; attempt <= STABLE_SNAPSHOT_ATTEMPTS; attempt++) {
        const before = await list(progress);
        const fingerprint = fingerprintOf(before);
        const labels: SnapshotLabels = {
          environment: req.environment,
          component: req.component,
          crossSectionId: req.crossSectionId,
          role: 'data',
          origin: req.origin,
          members: req.members,
          fingerprint,
          ...(req.version !== undefined ? { version: req.version } : {}),
          ...(req.reason !== undefined ? { reason: req.reason } : {}),
          ...(req.workflowId !== undefined ? { workflowId: req.workflowId } : {}),
        };
        const [data, listed] = await Promise.all([
          before.length === 0
            ? // restic refuses to store an empty directory; the listing alone says it was empty.
              deps.store.restic.backupStdin({ data: EMPTY_MARKER_TEXT, filename: EMPTY_MARKER_FILE, host: req.environment, tags: encodeTags(labels) })
            : deps.store.restic.backup(
                { directory: component.path, host: req.environment, tags: encodeTags(labels) },
                {
                  lockFile,
                  signal: progress.signal,
                  onProgress: (p) => progress.update({ stage: 'snapshot', percent: p.percentDone, ...sizes(p) }),
                },
              ),
          deps.store.restic.backupStdin({
            data: serializeListing(before),
            filename: LISTING_FILE,
            host: req.environment,
            tags: encodeTags({ ...labels, role: 'listing' }),
          }),
        ]);
        const after = fingerprintOf(await list(progress));
        if (after.digest === fingerprint.digest) {
          await saveListing(listed.snapshotId, before);
          deps.logger.info(
            { component: req.component, crossSectionId: req.crossSectionId, snapshotId: data.snapshotId, files: fingerprint.files },
            'snapshot taken',
          );
          return { component: req.component, snapshotId: data.snapshotId, listingSnapshotId: listed.snapshotId, fingerprint };
        }
        deps.logger.warn({ component: req.component, attempt }, 'files changed while the snapshot was taken; taking it again');
        await deps.store.restic.forget([data.snapshotId, listed.snapshotId]);
      }
      throw ApplicationFailure.retryable(
        `${req.component}: files kept changing during ${STABLE_SNAPSHOT_ATTEMPTS} snapshot attempts`,
        ErrorType.FilesChanging,
      );
    } catch (err) {
      throw await cleanUpAndConvert(err, deps);
    } finally {
      progress.stop();
    }
  }

  async function restoreComponent(req: RestoreComponentRequest): Promise<RestoreOutcome> {
    const component = componentOf(req.environment, req.component);
    const started = Date.now();
    const progress = reportProgress(req.component, 'check');
    const onPause = () => progress.update({ stage: 'paused by REWIND_FAULTS' });
    const [beforePoint, afterPoint] =
      req.purpose === 'rollback' ? (['before-restore', 'after-restore'] as const) : (['before-compensate', 'after-compensate'] as const);
    const fire = (point: FaultPoint) =>
      faults.fire(point, req.component, { attempt: progress.attempt, path: component.path, signal: progress.signal, onPause });
    try {
      await fire(beforePoint);
      await mkdir(component.path, { recursive: true });
      const current = await listing(component.path, progress);
      if (fingerprintOf(current).digest === req.fingerprint.digest) {
        deps.logger.info({ component: req.component, purpose: req.purpose }, 'already at target; nothing to restore');
        return { alreadyAtTarget: true, filesRestored: 0, filesSkipped: 0, filesDeleted: 0, bytesRestored: 0, durationMs: Date.now() - started };
      }
      const lockFile = await lockFileFor(req.component);
      const restic = (includeFile?: string) =>
        deps.store.restic.restore(
          { snapshotId: req.snapshotId, target: component.path, ...(includeFile ? { includeFile } : {}) },
          { lockFile, signal: progress.signal, onProgress: (p) => progress.update({ stage: 'restore', percent: p.percentDone, ...sizes(p) }) },
        );

      const target = await loadListing(req.listingSnapshotId);
      // An empty target was stored as a marker file, not a tree: restoring it means emptying.
      const wholeTree = async (note: string): Promise<Omit<RestoreOutcome, 'durationMs'>> =>
        target.length === 0
          ? { ...toOutcome(undefined), filesDeleted: await emptyDirectory(component.path), method: 'whole-tree', note }
          : { ...toOutcome(await restic()), method: 'whole-tree', note };
      const plan = planTargetedRestore(diffListings(current, target), current, target);
      let outcome: Omit<RestoreOutcome, 'durationMs'>;
      if ('fallback' in plan) {
        outcome = await wholeTree(plan.fallback);
      } else {
        outcome = await restoreTargeted(component.path, plan, restic);
        const after = fingerprintOf(await listing(component.path, progress));
        if (after.digest !== req.fingerprint.digest) {
          // Never expected; the whole-tree restore is the safe answer if it happens.
          deps.logger.warn({ component: req.component }, 'targeted restore did not reach the target; restoring the whole tree');
          outcome = await wholeTree('the targeted restore did not reach the target fingerprint');
        }
      }
      deps.logger.info({ component: req.component, purpose: req.purpose, ...outcome }, 'restored');
      await fire(afterPoint);
      return { ...outcome, durationMs: Date.now() - started };
    } catch (err) {
      throw await cleanUpAndConvert(err, deps);
    } finally {
      progress.stop();
    }
  }

  async function restoreTargeted(
    root: string,
    plan: TargetedRestorePlan,
    restic: (includeFile?: string) => Promise<RestoreSummary>,
  ): Promise<Omit<RestoreOutcome, 'durationMs'>> {
    for (const p of plan.remove) await rm(path.join(root, p), { recursive: true, force: true });
    for (const { path: p, mode } of plan.chmod) await chmod(path.join(root, p), mode);
    let summary: RestoreSummary | undefined;
    if (plan.include.length > 0) {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'rewind-include-'));
      try {
        const includeFile = path.join(dir, 'include');
        await writeFile(includeFile, includePatterns(plan.include));
        summary = await restic(includeFile);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    return {
      ...toOutcome(summary),
      filesDeleted: plan.remove.length,
      method: 'targeted',
    };
  }

  async function verifyComponent(req: VerifyComponentRequest): Promise<VerifyOutcome> {
    const component = componentOf(req.environment, req.component);
    const progress = reportProgress(req.component, 'verify');
    try {
      const started = Date.now();
      const entries = await listing(component.path, progress);
      const actual = fingerprintOf(entries);
      deps.logger.info({ component: req.component, files: actual.files, bytes: actual.bytes, ms: Date.now() - started }, 'verified');
      if (actual.digest === req.expected.digest) return { matches: true, actual, differences: [] };
      const target = await loadListing(req.listingSnapshotId);
      return { matches: false, actual, differences: diffListings(entries, target).slice(0, 10) };
    } catch (err) {
      throw await cleanUpAndConvert(err, deps);
    } finally {
      progress.stop();
    }
  }

  return { snapshotComponent, restoreComponent, verifyComponent };
}

export type AgentActivities = ReturnType<typeof createAgentActivities>;

/** Removes everything inside a directory; returns how many top-level entries went. */
async function emptyDirectory(dir: string): Promise<number> {
  const names = await readdir(dir);
  for (const name of names) await rm(path.join(dir, name), { recursive: true, force: true });
  return names.length;
}

async function isDirectory(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

function toOutcome(summary: RestoreSummary | undefined): Omit<RestoreOutcome, 'durationMs'> {
  return {
    alreadyAtTarget: false,
    filesRestored: summary?.filesRestored ?? 0,
    filesSkipped: summary?.filesSkipped ?? 0,
    filesDeleted: summary?.filesDeleted ?? 0,
    bytesRestored: summary?.bytesRestored ?? 0,
  };
}

function sizes(p: { filesDone: number; filesTotal: number; bytesDone: number; bytesTotal: number }) {
  return { filesDone: p.filesDone, filesTotal: p.filesTotal, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal };
}

async function cleanUpAndConvert(err: unknown, deps: AgentDeps): Promise<unknown> {
  // An incomplete backup still writes a snapshot; a retry must not find it and trust it.
  if (err instanceof ResticError && err.kind === 'incomplete' && err.snapshotId) {
    await deps.store.restic.forget([err.snapshotId]).catch((e: unknown) => deps.logger.error({ err: e }, 'could not forget an incomplete snapshot'));
  }
  return toApplicationFailure(err);
}
