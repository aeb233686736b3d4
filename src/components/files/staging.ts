// Staging: before approval, the target's changed paths are restored from the repository into a
// folder of the agent's own, and every staged file is hashed against the target's listing. That
// proves the data the rollback will write can be read (a damaged pack shows in the plan, not
// half-way through execute), and execute then only moves the staged entries into place: no
// restic run, and each file is replaced by one rename. Whatever was not staged, or changed
// since (checked by inode, size, mtime and ctime, as the hash cache does), is restored from
// the repository as before.
import { execFile } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { listDirectory, type HashCache, type ListingEntry } from './listing';

const run = promisify(execFile);

/** What was staged for one component of one run, written beside the staged folder. */
interface StagingRecord {
  targetSnapshotId: string;
  /** Paths (as in the include list) whose whole subtree was staged and checked. */
  paths: string[];
  /** Every staged file: its content hash and the stat key it had when hashed. */
  files: Record<string, { sha256: string; key: string }>;
}

export interface StagedArea {
  /** The folder restic restores the target's paths into. */
  root: string;
  record: string;
}

export function stagedArea(stagingRoot: string, workflowId: string, component: string): StagedArea {
  const run = path.join(stagingRoot, safeName(workflowId));
  return { root: path.join(run, safeName(component)), record: path.join(run, `${safeName(component)}.json`) };
}

export function stagedRun(stagingRoot: string, workflowId: string): string {
  return path.join(stagingRoot, safeName(workflowId));
}

/**
 * Checks what restic restored into `area.root` against the target listing and records it.
 * Returns the problem when a staged entry is not what the target holds.
 */
export async function recordStaged(
  area: StagedArea,
  targetSnapshotId: string,
  include: readonly string[],
  target: readonly ListingEntry[],
): Promise<{ problem?: string; files: number; bytes: number }> {
  const cache: HashCache = new Map();
  const staged = new Map((await listDirectory(area.root, { cache })).map((e) => [e.path, e]));
  const files: StagingRecord['files'] = {};
  let count = 0;
  let bytes = 0;
  for (const wanted of target.filter((e) => include.some((p) => within(e.path, p)))) {
    const got = staged.get(wanted.path);
    if (!got || got.type !== wanted.type || got.sha256 !== wanted.sha256 || got.target !== wanted.target) {
      return {
        problem: `${wanted.path} read back from snapshot ${targetSnapshotId.slice(0, 8)} is not what its listing records`,
        files: count,
        bytes,
      };
    }
    if (wanted.type === 'file') {
      const hashed = cache.get(path.join(area.root, wanted.path))!;
      files[wanted.path] = hashed;
      count += 1;
      bytes += wanted.size ?? 0;
    }
  }
  const record: StagingRecord = { targetSnapshotId, paths: [...include], files };
  await writeFile(area.record, JSON.stringify(record));
  return { files: count, bytes };
}

/**
 * Moves the staged entries among `include` into `root`, when they are still exactly what was
 * staged from `targetSnapshotId`. Returns the paths it placed; the rest is left to restic.
 */
export async function placeStaged(
  area: StagedArea,
  targetSnapshotId: string,
  include: readonly string[],
  root: string,
): Promise<{ placed: string[]; bytes: number }> {
  const record = await readRecord(area.record);
  if (record?.targetSnapshotId !== targetSnapshotId) return { placed: [], bytes: 0 };
  const placed: string[] = [];
  let bytes = 0;
  // An entry inside another included path moves with it.
  const tops = include.filter((p) => !include.some((q) => q !== p && within(p, q)));
  for (const p of tops) {
    if (!record.paths.some((staged) => within(p, staged))) continue;
    const files = Object.entries(record.files).filter(([f]) => within(f, p));
    if (!(await unchanged(area.root, files))) continue;
    await place(path.join(area.root, p), path.join(root, p));
    placed.push(p);
    for (const [f] of files) bytes += (await lstat(path.join(root, f))).size;
  }
  return { placed, bytes };
}

export async function discardStaged(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Removes runs' staged folders older than `maxAgeMs` (a run that ended without discarding them). */
export async function sweepStaging(stagingRoot: string, maxAgeMs: number): Promise<void> {
  const names = await readdir(stagingRoot).catch(() => [] as string[]);
  for (const name of names) {
    const dir = path.join(stagingRoot, name);
    const st = await lstat(dir).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > maxAgeMs) await rm(dir, { recursive: true, force: true });
  }
}

async function unchanged(root: string, files: [string, { key: string }][]): Promise<boolean> {
  for (const [file, { key }] of files) {
    const st = await lstat(path.join(root, file), { bigint: true }).catch(() => undefined);
    if (!st?.isFile() || `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}` !== key) return false;
  }
  return true;
}

/** One rename; across file systems, a copy beside the destination (cp -a keeps owner, mode and times) renamed over it. */
async function place(from: string, to: string): Promise<void> {
  await mkdir(path.dirname(to), { recursive: true });
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    const beside = path.join(path.dirname(to), `.${path.basename(to)}.rewind-${process.pid}`);
    await rm(beside, { recursive: true, force: true });
    await run('cp', ['-a', '--no-target-directory', from, beside]);
    await rename(beside, to);
  }
}

async function readRecord(file: string): Promise<StagingRecord | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as StagingRecord;
  } catch {
    return undefined;
  }
}

/** `p` is `ancestor` or inside it (relative, '/'-separated paths). */
export function within(p: string, ancestor: string): boolean {
  return p === ancestor || p.startsWith(`${ancestor}/`);
}

function safeName(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]/g, '_');
}
