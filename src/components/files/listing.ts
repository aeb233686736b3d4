// A listing is what rewind knows of a directory without restoring it: every entry's path, type,
// mode, content hash and link target. Its digest is the component's fingerprint. restic's own
// tree ids cannot serve: they change with ctime and inode, which every restore touches.
import { createHash } from 'node:crypto';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import type { Change, FingerprintSummary } from '../core';
import type { FilesFingerprintDetails } from './kind';

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface ListingEntry {
  /** Relative to the component root, '/'-separated. */
  path: string;
  type: EntryType;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  size?: number;
  sha256?: string;
  target?: string;
}

export interface ListingProgress {
  filesHashed: number;
  filesTotal: number;
  bytesHashed: number;
  bytesTotal: number;
}

/**
 * Hashes already computed, keyed by path and by what any write would change (inode, size,
 * mtime and ctime in nanoseconds), as git's index does. Lives as long as the agent.
 */
export type HashCache = Map<string, { key: string; sha256: string }>;

export interface ListOptions {
  cache?: HashCache;
  onProgress?: (progress: ListingProgress) => void;
  signal?: AbortSignal;
  /** Files hashed at once. Two keeps both cores busy without thrashing a disk. */
  concurrency?: number;
}

const FINGERPRINT_VERSION = 'rewind-listing-v1';
const HASH_BUFFER_BYTES = 4 << 20;

export async function listDirectory(root: string, options: ListOptions = {}): Promise<ListingEntry[]> {
  const entries: ListingEntry[] = [];
  const toHash: { entry: ListingEntry; absolute: string; key: string }[] = [];

  const walk = async (dir: string, relative: string): Promise<void> => {
    options.signal?.throwIfAborted();
    const names = (await readdir(dir)).sort(compareNames);
    for (const name of names) {
      const absolute = path.join(dir, name);
      const rel = relative ? `${relative}/${name}` : name;
      const stat = await lstat(absolute, { bigint: true });
      const mode = Number(stat.mode & 0o7777n);
      if (stat.isSymbolicLink()) {
        entries.push({ path: rel, type: 'symlink', mode, target: await readlink(absolute) });
      } else if (stat.isDirectory()) {
        entries.push({ path: rel, type: 'dir', mode });
        await walk(absolute, rel);
      } else if (stat.isFile()) {
        const entry: ListingEntry = { path: rel, type: 'file', mode, size: Number(stat.size) };
        entries.push(entry);
        toHash.push({ entry, absolute, key: `${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}` });
      } else {
        entries.push({ path: rel, type: 'other', mode });
      }
    }
  };
  await walk(root, '');

  const progress: ListingProgress = {
    filesHashed: 0,
    filesTotal: toHash.length,
    bytesHashed: 0,
    bytesTotal: toHash.reduce((sum, f) => sum + (f.entry.size ?? 0), 0),
  };
  let next = 0;
  const worker = async () => {
    const buffer = Buffer.allocUnsafe(HASH_BUFFER_BYTES);
    while (next < toHash.length) {
      const item = toHash[next++]!;
      const cached = options.cache?.get(item.absolute);
      item.entry.sha256 =
        cached?.key === item.key ? cached.sha256 : await hashFile(item.absolute, buffer, options.signal);
      options.cache?.set(item.absolute, { key: item.key, sha256: item.entry.sha256 });
      progress.filesHashed += 1;
      progress.bytesHashed += item.entry.size ?? 0;
      options.onProgress?.({ ...progress });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 2) }, worker));
  return entries;
}

/**
 * Reads into one reused buffer per hashing lane: streams would allocate a fresh buffer per
 * chunk, and on gigabytes the garbage collector then costs more than the hashing.
 */
async function hashFile(file: string, buffer: Buffer, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file, 'r');
  try {
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

/** Byte order of UTF-8 names, the same on every machine and locale. */
function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function fingerprintOf(entries: readonly ListingEntry[]): FingerprintSummary {
  const hash = createHash('sha256').update(`${FINGERPRINT_VERSION}\n`);
  const details: FilesFingerprintDetails = { kind: 'files', files: 0, dirs: 0, symlinks: 0 };
  let bytes = 0;
  for (const e of entries) {
    hash.update(`${e.type}\0${e.path}\0${e.mode.toString(8)}\0${e.sha256 ?? ''}\0${e.target ?? ''}\n`);
    if (e.type === 'file') {
      details.files += 1;
      bytes += e.size ?? 0;
    } else if (e.type === 'dir') details.dirs += 1;
    else if (e.type === 'symlink') details.symlinks += 1;
  }
  return { digest: hash.digest('hex'), bytes, entries: details.files + details.dirs + details.symlinks, details };
}

/** One JSON object a line: a header, then the entries. Stored next to each snapshot. */
export function serializeListing(entries: readonly ListingEntry[]): string {
  return (
    [
      JSON.stringify({ format: FINGERPRINT_VERSION, entries: entries.length }),
      ...entries.map((e) => JSON.stringify(e)),
    ].join('\n') + '\n'
  );
}

export function parseListing(text: string): ListingEntry[] {
  const lines = text.split('\n').filter(Boolean);
  const header = JSON.parse(lines[0] ?? '{}') as { format?: string; entries?: number };
  if (header.format !== FINGERPRINT_VERSION) throw new Error(`not a rewind listing (format ${String(header.format)})`);
  const entries = lines.slice(1).map((l) => JSON.parse(l) as ListingEntry);
  if (entries.length !== header.entries)
    throw new Error(`truncated listing: ${entries.length} of ${header.entries} entries`);
  return entries;
}

export interface ListingChange {
  /** `mode`: equal content, other permission bits. */
  op: 'add' | 'change' | 'remove' | 'mode';
  path: string;
  /** Bytes the restore writes for this entry (the target file's size). */
  bytes: number;
}

/** What restoring `target` over `current` changes, sorted by path. */
export function diffListings(current: readonly ListingEntry[], target: readonly ListingEntry[]): ListingChange[] {
  const now = new Map(current.map((e) => [e.path, e]));
  const changes: ListingChange[] = [];
  for (const t of target) {
    const c = now.get(t.path);
    now.delete(t.path);
    const bytes = t.type === 'file' ? (t.size ?? 0) : 0;
    if (!c) changes.push({ op: 'add', path: t.path, bytes });
    else if (c.type !== t.type || c.sha256 !== t.sha256 || c.target !== t.target)
      changes.push({ op: 'change', path: t.path, bytes });
    else if (c.mode !== t.mode) changes.push({ op: 'mode', path: t.path, bytes: 0 });
  }
  for (const c of now.values()) changes.push({ op: 'remove', path: c.path, bytes: 0 });
  return changes.sort((a, b) => compareNames(a.path, b.path));
}

/** A listing change in the terms every kind shares: a mode-only change is a change with a detail. */
export function toChange(c: ListingChange): Change {
  return c.op === 'mode'
    ? { op: 'change', subject: c.path, detail: 'mode only', bytes: c.bytes }
    : { op: c.op, subject: c.path, bytes: c.bytes };
}
