// The `files` driver: config files, pickle files, any directory. A snapshot is a restic
// snapshot of the directory plus its listing; a restore changes only the paths whose content
// differs from the target's listing.
import { chmod, lstat, mkdir, mkdtemp, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { encodeTags, type ComponentSnapshot } from '../../domain/cross-section';
import { ErrorType } from '../../domain/errors';
import { symbolicLinkRefusal } from '../../manifest/load';
import {
  diffListings,
  fingerprintOf,
  listDirectory,
  parseListing,
  serializeListing,
  toChange,
  type HashCache,
  type ListingEntry,
} from './listing';
import { includePatterns, planTargetedRestore, type TargetedRestorePlan } from './targeted-restore';
import { discardStaged, placeStaged, recordStaged, stagedArea, within, type StagedArea } from './staging';
import type { FilesComponent, FilesPlanDetails, FilesRestoreDetails } from './kind';
import { createFilesDescriber, type FilesDriftQuestion } from './drift';
import { keepsAnything, restoreKeeping } from './sync-keep';
import { inlineListing } from '../../snapshots/inline-listing';
import { ResticError, type RestoreSummary } from '../../snapshots/restic';
import { EMPTY_MARKER_FILE, EMPTY_MARKER_TEXT, LISTING_FILE } from '../../snapshots/store';
import { summarizeChanges } from '../change-list';
import { playbookFailure, releaseOf, runPlaybook } from './ansible';
import type { Change, ComponentPlan, Difference } from '../core';
import {
  snapshotLabels,
  type ComponentDriver,
  type RestoreResult,
  type StageOutcome,
  type StepContext,
} from '../driver';
import { count, formatBytes } from '../../domain/format';

/** Attempts to take a snapshot while files keep changing under it. */
const STABLE_SNAPSHOT_ATTEMPTS = 3;

export function createFilesDriver(): ComponentDriver<FilesComponent> {
  // Hashes by path, inode, size, mtime and ctime: lives as long as the agent.
  const cache: HashCache = new Map();
  const describe = createFilesDescriber();

  const listing = (dir: string, ctx: StepContext) =>
    listDirectory(dir, {
      cache,
      signal: ctx.progress.signal,
      onProgress: (p) =>
        ctx.progress.update({
          stage: 'fingerprint',
          percent: p.bytesTotal ? p.bytesHashed / p.bytesTotal : 1,
          bytesDone: p.bytesHashed,
          bytesTotal: p.bytesTotal,
          filesDone: p.filesHashed,
          filesTotal: p.filesTotal,
        }),
    });

  const loadListing = async (id: string, ctx: StepContext): Promise<ListingEntry[]> =>
    parseListing(await ctx.listings.load(id));

  /** The component's folder, made if missing, listed: a restore's first look. */
  const currentListing = async (
    component: FilesComponent,
    req: Parameters<ComponentDriver<FilesComponent>['restore']>[1],
    ctx: StepContext,
  ): Promise<ListingEntry[]> => {
    await refuseSymbolicLink(component.path, req);
    await mkdir(component.path, { recursive: true });
    return listing(component.path, ctx);
  };

  /** Restores the whole component to the snapshot (a sync that keeps paths wraps it). */
  const restoreWhole = async (
    component: FilesComponent,
    req: Parameters<ComponentDriver<FilesComponent>['restore']>[1],
    ctx: StepContext,
  ): Promise<RestoreResult> => {
    const current = await currentListing(component, req, ctx);
    if (fingerprintOf(current).digest === req.fingerprint.digest) return ALREADY_AT_TARGET;

    const restic = (includeFile?: string) =>
      ctx.store.restic.restore(
        { snapshotId: req.snapshotId, target: component.path, ...(includeFile ? { includeFile } : {}) },
        {
          lockFile: ctx.lockFile,
          signal: ctx.progress.signal,
          onProgress: (p) => ctx.progress.update({ stage: 'restore', percent: p.percentDone, ...sizes(p) }),
        },
      );
    const target = await loadListing(req.listingSnapshotId, ctx);
    // An empty target was stored as a marker file, not a tree: restoring it means emptying.
    const wholeTree = async (note: string): Promise<RestoreResult> =>
      target.length === 0
        ? { ...toResult(undefined, 'whole-tree', await emptyDirectory(component.path)), note }
        : { ...toResult(await restic(), 'whole-tree'), note };

    const plan = planTargetedRestore(diffListings(current, target), current, target);
    if ('fallback' in plan) return wholeTree(plan.fallback);
    const staged = req.stagedFor ? stagedArea(ctx.stagingRoot, req.stagedFor, req.component) : undefined;
    const outcome = await restoreTargeted(
      component.path,
      plan,
      restic,
      staged && { area: staged, snapshotId: req.snapshotId },
    );
    const after = fingerprintOf(await listing(component.path, ctx));
    if (after.digest === req.fingerprint.digest) return outcome;
    // Never expected; the whole-tree restore is the safe answer if it happens.
    ctx.logger.warn(
      { component: req.component },
      'targeted restore did not reach the target; restoring the whole tree',
    );
    return wholeTree('the targeted restore did not reach the target fingerprint');
  };

  const assessListing = async (
    component: FilesComponent,
    req: Parameters<ComponentDriver<FilesComponent>['assess']>[1],
    ctx: StepContext,
  ): Promise<ComponentPlan> => {
    // Without its safety snapshot yet, the component as it is now: the same listing that snapshot stores.
    const current = req.safety
      ? await loadListing(req.safety.listingSnapshotId, ctx)
      : (await isDirectory(component.path))
        ? await listing(component.path, ctx)
        : [];
    const target = await loadListing(req.target.listingSnapshotId, ctx);
    const changes = diffListings(current, target);
    const summary = await summarizeChanges(
      {
        plansDir: ctx.plansDir,
        workflowId: req.workflowId,
        component: req.component,
        previewPaths: req.previewPaths,
      },
      changes.map(toChange),
    );
    const details: FilesPlanDetails = { kind: 'files', modeChanged: changes.filter((c) => c.op === 'mode').length };
    return {
      component: req.component,
      kind: 'files' as const,
      path: component.path,
      targetSnapshotId: req.target.snapshotId,
      safetySnapshotId: req.safety?.snapshotId ?? '',
      ...summary,
      destructive: false,
      details,
    };
  };

  const stageTarget = async (
    component: FilesComponent,
    req: Parameters<NonNullable<ComponentDriver<FilesComponent>['stage']>>[1],
    ctx: StepContext,
  ): Promise<StageOutcome> => {
    await refuseSymbolicLink(component.path, req);
    const current = (await isDirectory(component.path)) ? await listing(component.path, ctx) : [];
    const target = await loadListing(req.target.listingSnapshotId, ctx);
    const area = stagedArea(ctx.stagingRoot, req.workflowId, req.component);
    await discardStaged(area.root);
    const plan = planTargetedRestore(diffListings(current, target), current, target);
    // A fallback plan restores the whole tree (names restic would read as patterns): read all of it.
    const whole = 'fallback' in plan;
    const include = whole ? target.filter((e) => !e.path.includes('/')).map((e) => e.path) : plan.include;
    if (include.length === 0) return { readable: true, note: 'nothing to read: no content differs', bytes: 0 };
    await mkdir(area.root, { recursive: true });
    try {
      await withIncludeFile(include, (includeFile) =>
        ctx.store.restic.restore(
          {
            snapshotId: req.target.snapshotId,
            target: area.root,
            withoutLock: true,
            ...(whole ? {} : { includeFile }),
          },
          {
            signal: ctx.progress.signal,
            onProgress: (p) => ctx.progress.update({ stage: 'stage', percent: p.percentDone, ...sizes(p) }),
          },
        ),
      );
    } catch (err) {
      await discardStaged(area.root);
      if (err instanceof ResticError && (err.kind === 'damaged' || err.kind === 'refused'))
        return { readable: false, note: `the target snapshot cannot be read: ${err.message}`, bytes: 0 };
      throw err;
    }
    const checked = await recordStaged(area, req.target.snapshotId, include, target);
    if (checked.problem) {
      await discardStaged(area.root);
      return { readable: false, note: checked.problem, bytes: checked.bytes };
    }
    return {
      readable: true,
      note: `${count(checked.files, 'file')} (${formatBytes(checked.bytes)}) read back, checked and staged`,
      bytes: checked.bytes,
    };
  };

  /** Config applied by ansible-playbook with the release of the snapshot returned to (ansible.ts). */
  const restoreWithAnsible = async (
    component: FilesComponent,
    req: Parameters<ComponentDriver<FilesComponent>['restore']>[1],
    ctx: StepContext,
  ): Promise<RestoreResult> => {
    const current = await currentListing(component, req, ctx);
    if (fingerprintOf(current).digest === req.fingerprint.digest) return ALREADY_AT_TARGET;
    const release = await releaseOf(ctx.store, req);
    if (release === undefined) {
      if (req.purpose === 'compensation')
        return {
          ...(await restoreWhole(component, req, ctx)),
          note: 'no release matches the files before the rollback, so they were restored from the safety snapshot instead of by ansible-playbook',
        };
      throw ApplicationFailure.nonRetryable(
        `${req.component} is applied by ansible-playbook, but the target cross-section names no release to give it`,
        ErrorType.CrossSectionIncomplete,
      );
    }
    ctx.progress.update({ stage: `ansible-playbook (release ${release})` });
    const run = await runPlaybook(component.ansible!, release, {
      check: false,
      where: { path: component.path, environment: req.environment },
      signal: ctx.progress.signal,
    });
    if (!run.ok) throw playbookFailure(run);
    const details: FilesRestoreDetails = {
      kind: 'files',
      method: 'ansible',
      release,
      filesRestored: 0,
      filesSkipped: 0,
      filesDeleted: 0,
    };
    return {
      alreadyAtTarget: false,
      bytesWritten: 0,
      details,
      ...(req.purpose === 'compensation'
        ? { note: `ansible-playbook applied release ${release}, the release before the rollback` }
        : {}),
    };
  };

  /** Plan: what ansible-playbook --check --diff says applying the target's release would do. */
  const ansibleCheck = async (
    component: FilesComponent,
    req: Parameters<ComponentDriver<FilesComponent>['assess']>[1],
    ctx: StepContext,
  ): Promise<NonNullable<ComponentPlan['toolCheck']>> => {
    const release = await releaseOf(ctx.store, {
      environment: req.environment,
      component: req.component,
      ...req.target,
    });
    if (release === undefined)
      throw ApplicationFailure.nonRetryable(
        `${req.component} is applied by ansible-playbook, but the target cross-section names no release to give it`,
        ErrorType.CrossSectionIncomplete,
      );
    ctx.progress.update({ stage: `ansible-playbook --check --diff (release ${release})` });
    const check = await runPlaybook(component.ansible!, release, {
      check: true,
      where: { path: component.path, environment: req.environment },
      signal: ctx.progress.signal,
    });
    if (!check.ok) throw playbookFailure(check);
    return { title: `ansible-playbook --check --diff with release ${release}`, text: check.output };
  };

  return {
    describe: (component, question, ctx) => describe(component, question as FilesDriftQuestion, ctx),

    async snapshot(component, req, ctx): Promise<ComponentSnapshot> {
      await refuseSymbolicLink(component.path, req);
      const present = await isDirectory(component.path);
      // A safety snapshot must capture whatever is there, even nothing: a deleted component
      // directory is exactly what a rollback may have to repair. It is recorded as empty.
      if (!present && req.origin !== 'safety' && req.origin !== 'dry-run') {
        throw ApplicationFailure.nonRetryable(
          `${req.environment}/${req.component}: ${component.path} does not exist or is not a directory`,
          ErrorType.ComponentUnavailable,
        );
      }
      const list = () => (present ? listing(component.path, ctx) : Promise.resolve([]));
      if (req.unlessAt && fingerprintOf(await list()).digest === req.unlessAt.fingerprint.digest) return req.unlessAt;
      for (let attempt = 1; attempt <= STABLE_SNAPSHOT_ATTEMPTS; attempt++) {
        const before = await list();
        const fingerprint = fingerprintOf(before);
        const text = serializeListing(before);
        const inline = inlineListing(text);
        const labels = {
          ...snapshotLabels(req, fingerprint),
          ...(inline !== undefined ? { inlineListing: inline } : {}),
        };
        const restic = ctx.store.restic;
        const [data, listed] = await Promise.all([
          before.length === 0
            ? // restic refuses to store an empty directory; the listing alone says it was empty.
              restic.backupStdin({
                data: EMPTY_MARKER_TEXT,
                filename: EMPTY_MARKER_FILE,
                host: req.environment,
                tags: encodeTags(labels),
              })
            : restic.backup(
                { directory: component.path, host: req.environment, tags: encodeTags(labels) },
                {
                  lockFile: ctx.lockFile,
                  signal: ctx.progress.signal,
                  onProgress: (p) => ctx.progress.update({ stage: 'snapshot', percent: p.percentDone, ...sizes(p) }),
                },
              ),
          // A small listing rides in the data snapshot's tags: no second restic run.
          inline !== undefined
            ? Promise.resolve(undefined)
            : restic.backupStdin({
                data: text,
                filename: LISTING_FILE,
                host: req.environment,
                tags: encodeTags({ ...labels, role: 'listing' }),
              }),
        ]);
        const listingSnapshotId = listed?.snapshotId ?? data.snapshotId;
        const after = fingerprintOf(await list());
        if (after.digest === fingerprint.digest) {
          await ctx.listings.save(listingSnapshotId, text);
          return { component: req.component, snapshotId: data.snapshotId, listingSnapshotId, fingerprint };
        }
        ctx.logger.warn(
          { component: req.component, attempt },
          'files changed while the snapshot was taken; taking it again',
        );
        await restic.forget([...new Set([data.snapshotId, listingSnapshotId])]);
      }
      throw ApplicationFailure.retryable(
        `${req.component}: files kept changing during ${STABLE_SNAPSHOT_ATTEMPTS} snapshot attempts`,
        ErrorType.FilesChanging,
      );
    },

    restore(component, req, ctx): Promise<RestoreResult> {
      if (component.ansible && !keepsAnything(req.keep)) return restoreWithAnsible(component, req, ctx);
      if (!keepsAnything(req.keep)) return restoreWhole(component, req, ctx);
      const { keep, ...plain } = req;
      return restoreKeeping(component.path, keep, ctx.stagingRoot, req.idempotencyKey ?? req.snapshotId, () =>
        restoreWhole(component, plain, ctx),
      );
    },

    async assess(component, req, ctx) {
      const plan = await assessListing(component, req, ctx);
      return component.ansible ? { ...plan, toolCheck: await ansibleCheck(component, req, ctx) } : plan;
    },

    async stage(component, req, ctx): Promise<StageOutcome> {
      if (component.ansible)
        return { readable: true, note: 'applied by ansible-playbook: nothing to read back', bytes: 0 };
      return stageTarget(component, req, ctx);
    },

    async verify(component, req, ctx) {
      // A link in place of the directory is not what was snapshotted, whatever it points to.
      const link = await linkTarget(component.path);
      if (link !== undefined) {
        const actual = fingerprintOf([]);
        return {
          matches: false,
          actual,
          differences: [
            { op: 'change', subject: component.path, detail: `a symbolic link to ${link}, not a directory` },
          ],
        };
      }
      const entries = await listing(component.path, ctx);
      const actual = fingerprintOf(entries);
      if (actual.digest === req.expected.digest) return { matches: true, actual, differences: [] };
      const target = await loadListing(req.listingSnapshotId, ctx);
      return {
        matches: false,
        actual,
        differences: diffListings(entries, target)
          .slice(0, 10)
          .map((c) => withoutBytes(toChange(c))),
      };
    },
  };
}

const ALREADY_AT_TARGET: RestoreResult = { alreadyAtTarget: true, bytesWritten: 0 };

function withoutBytes({ bytes: _bytes, ...difference }: Change): Difference {
  return difference;
}

async function restoreTargeted(
  root: string,
  plan: TargetedRestorePlan,
  restic: (includeFile?: string) => Promise<RestoreSummary>,
  staged?: { area: StagedArea; snapshotId: string },
): Promise<RestoreResult> {
  for (const p of plan.remove) await rm(path.join(root, p), { recursive: true, force: true });
  for (const { path: p, mode } of plan.chmod) await chmod(path.join(root, p), mode);
  // What prepare staged and nobody touched since goes into place by rename; restic does the rest.
  const moved = staged ? await placeStaged(staged.area, staged.snapshotId, plan.include, root) : undefined;
  if (staged) await discardStaged(staged.area.root);
  const rest = plan.include.filter((p) => !moved?.placed.some((m) => within(p, m)));
  const summary = rest.length > 0 ? await withIncludeFile(rest, restic) : undefined;
  const result = toResult(summary, 'targeted', plan.remove.length);
  if (!moved || moved.placed.length === 0) return result;
  const details = result.details as FilesRestoreDetails;
  const withStaged: FilesRestoreDetails = {
    ...details,
    filesRestored: details.filesRestored + moved.placed.length,
    staged: moved.placed.length,
  };
  return { ...result, bytesWritten: result.bytesWritten + moved.bytes, details: withStaged };
}

/** Runs `fn` with a restic include file (one anchored pattern a line) for `paths`, removed afterwards. */
async function withIncludeFile<T>(paths: readonly string[], fn: (includeFile: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rewind-include-'));
  try {
    const includeFile = path.join(dir, 'include');
    await writeFile(includeFile, includePatterns(paths));
    return await fn(includeFile);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Removes everything inside a directory; returns how many top-level entries went. */
async function emptyDirectory(dir: string): Promise<number> {
  const names = await readdir(dir);
  for (const name of names) await rm(path.join(dir, name), { recursive: true, force: true });
  return names.length;
}

async function linkTarget(p: string): Promise<string | undefined> {
  const st = await lstat(p).catch(() => undefined);
  return st?.isSymbolicLink() ? readlink(p) : undefined;
}

/** rewind works on the directory at the path itself: through a link, restic would replace the link. */
async function refuseSymbolicLink(p: string, req: { environment: string; component: string }): Promise<void> {
  const target = await linkTarget(p);
  if (target !== undefined) {
    throw ApplicationFailure.nonRetryable(
      `${req.environment}/${req.component}: ${symbolicLinkRefusal(p, target)}`,
      ErrorType.ComponentUnavailable,
    );
  }
}

async function isDirectory(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

function toResult(
  summary: RestoreSummary | undefined,
  method: FilesRestoreDetails['method'],
  deleted = 0,
): RestoreResult {
  const details: FilesRestoreDetails = {
    kind: 'files',
    method,
    filesRestored: summary?.filesRestored ?? 0,
    filesSkipped: summary?.filesSkipped ?? 0,
    filesDeleted: deleted + (summary?.filesDeleted ?? 0),
  };
  return { alreadyAtTarget: false, bytesWritten: summary?.bytesRestored ?? 0, details };
}

function sizes(p: { filesDone: number; filesTotal: number; bytesDone: number; bytesTotal: number }) {
  return { filesDone: p.filesDone, filesTotal: p.filesTotal, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal };
}
