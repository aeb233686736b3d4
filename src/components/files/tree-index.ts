// A files component's index, kept by its agent on disk: every entry's type, mode, size, times,
// inode, content hash and link target, and a Merkle digest per directory. Refreshing it is a stat
// walk that hashes only files whose stat changed since the index was written (git's index does
// the same), so an agent restart does not re-hash a tree. Two environments' trees are compared
// by digest from the root down: identical subtrees cost one comparison.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { ContentHash, TreeWalkers } from './tree-walker';

const INDEX_FORMAT = 'rewind-tree-index-v2';
/** A directory with more children than this is answered by buckets of children, not in one piece. */
export const MAX_NODE_CHILDREN = 1000;
export const BUCKETS = 256;

export type TreeEntryType = 'f' | 'd' | 'l' | 'o';

/** One child of a directory as a comparison sees it. */
export interface TreeChild {
  /** Name within its directory. */
  n: string;
  t: TreeEntryType;
  /** Permission bits. */
  m: number;
  /** Content hash (files), Merkle digest (directories), hash of the target (links). */
  d: string;
  /** Bytes (files) or files beneath (directories). */
  s: number;
  /** Link target. */
  l?: string;
}

export interface RefreshStats {
  entries: number;
  files: number;
  /** Entries added, changed or removed since the last refresh. */
  changed: number;
  /** Files whose content was read and hashed in this refresh. */
  hashed: number;
  bytesHashed: number;
  /** Entries that could not be read, one line each (path: reason). */
  errors: string[];
  ms: number;
}

export class TreeIndex {
  /** Directories and their digests; computed from the entries after each change. */
  private dirs: DirIndex | undefined;
  /** Changed since it was last saved or loaded. */
  private dirty = false;

  private constructor(
    readonly root: string,
    private entries: Entries,
    /** Whether the component's directory exists at all. */
    public exists: boolean,
    /** How the files' contents were hashed; a refresh with walkers that hash otherwise starts over. */
    private hashedWith: ContentHash = 'sha256',
  ) {}

  static empty(root: string): TreeIndex {
    return new TreeIndex(root, new Entries(), false);
  }

  get contentHash(): ContentHash {
    return this.hashedWith;
  }

  /** The index saved at `file`, or an empty one when there is none or it is unreadable. */
  static async load(file: string, root: string): Promise<TreeIndex> {
    // Line by line: the file of a large tree is never held whole in memory.
    const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
    try {
      let header: { format: string; root: string; contentHash?: ContentHash } | undefined;
      const entries = new Entries();
      for await (const line of lines) {
        if (!header) {
          header = JSON.parse(line) as { format: string; root: string; contentHash?: ContentHash };
          if (header.format !== INDEX_FORMAT || header.root !== root) return TreeIndex.empty(root);
          continue;
        }
        if (!line) continue;
        const [p, type, mode, size, mtimeMs, ctimeMs, ino, hash, target] = JSON.parse(line) as SavedRow;
        if (!(type in TYPE_CODE)) return TreeIndex.empty(root);
        const i = entries.add(p, type, mode, size, mtimeMs, ctimeMs, ino, target);
        if (hash) entries.setHash(i, hash);
      }
      if (!header) return TreeIndex.empty(root);
      // An index saved before contents could be hashed with BLAKE3 names no hash: SHA-256.
      const index = new TreeIndex(root, entries, true, header.contentHash ?? 'sha256');
      index.computeDigests();
      return index;
    } catch {
      return TreeIndex.empty(root);
    } finally {
      lines.close();
    }
  }

  /** Writes the index (one JSON line per entry) unless nothing changed since it was last written. */
  async save(file: string): Promise<boolean> {
    if (!this.dirty) return false;
    await mkdir(path.dirname(file), { recursive: true });
    const out = createWriteStream(`${file}.tmp`);
    // A stream's error (the folder removed, a full disk) with no listener would end the agent:
    // it fails this save instead, and the next scan writes the index again.
    const failed = new Promise<never>((_, reject) => out.once('error', reject));
    failed.catch(() => undefined);
    const write = (line: string) =>
      out.write(line)
        ? Promise.resolve()
        : Promise.race([new Promise<void>((resolve) => out.once('drain', () => resolve())), failed]);
    await write(`${JSON.stringify({ format: INDEX_FORMAT, root: this.root, contentHash: this.hashedWith })}\n`);
    const e = this.entries;
    for (let i = 0; i < e.length; i++) {
      const row: unknown[] = [
        e.paths[i],
        e.type(i),
        e.mode(i),
        e.sizes[i],
        e.mtimes[i],
        e.ctimes[i],
        e.inos[i],
        e.hash(i),
      ];
      const target = e.targets.get(i);
      if (target !== undefined) row.push(target);
      await write(`${JSON.stringify(row)}\n`);
    }
    await Promise.race([
      new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve()))),
      failed,
    ]);
    await rename(`${file}.tmp`, file);
    this.dirty = false;
    return true;
  }

  /**
   * Brings the index in line with the tree: one stat walk, then hashes only files that are new
   * or whose inode, size, mtime or ctime changed. A file changed within the last two seconds is
   * hashed but not trusted next time (its mtime may not move on a second write in the same tick).
   */
  async refresh(walkers: TreeWalkers, options: { signal?: AbortSignal; now?: number } = {}): Promise<RefreshStats> {
    const started = Date.now();
    if (walkers.contentHash !== this.hashedWith) {
      // Digests of another hash say nothing here: every file is hashed anew.
      this.entries = new Entries();
      this.dirs = undefined;
      this.hashedWith = walkers.contentHash;
      this.dirty = true;
    }
    const rootStat = await stat(this.root).catch(() => undefined);
    if (!rootStat?.isDirectory()) {
      const changed = this.entries.length + (this.exists ? 1 : 0);
      this.entries = new Entries();
      this.exists = false;
      this.dirty ||= changed > 0;
      this.computeDigests();
      return { entries: 0, files: 0, changed, hashed: 0, bytesHashed: 0, errors: [], ms: Date.now() - started };
    }
    if (!this.exists) this.dirty = true;
    this.exists = true;
    const racyAfter = (options.now ?? Date.now()) - 2_000;
    // Updated in place: an unchanged tree allocates no second index, and keeps its digests.
    const e = this.entries;
    const known = e.length;
    // Built for this refresh only: the index itself keeps no map of its entries.
    let lookup: Map<string, number> | undefined = new Map();
    for (let j = 0; j < known; j++) lookup.set(e.paths[j]!, j);
    const seen = new Uint8Array(known);
    const toHash: { path: string; size: number; at: number }[] = [];
    let files = 0;
    let changed = 0;
    const { errors } = await walkers.walk(this.root, options.signal, (batch) => {
      const { paths, types, modes, sizes, mtimes, ctimes, inos, targets } = batch;
      for (let k = 0; k < paths.length; k++) {
        const p = paths[k]!;
        const type = types[k] as TreeEntryType;
        const mode = modes[k]!;
        const size = sizes[k]!;
        const mtimeMs = mtimes[k]!;
        const ctimeMs = ctimes[k]!;
        const ino = inos[k]!;
        const j = lookup!.get(p);
        if (type === 'f') files++;
        const link = type === 'l' ? (targets[k] ?? '') : undefined;
        if (j === undefined) {
          changed++;
          const i = e.add(p, type, mode, size, mtimeMs, ctimeMs, ino, link);
          if (type === 'f') toHash.push({ path: p, size, at: i });
          continue;
        }
        seen[j] = 1;
        const same =
          (e.kinds[j]! & ~HASH_KNOWN) === (TYPE_CODE[type] | ((mode & 0o7777) << 2)) &&
          (type !== 'f' || e.hasHash(j)) &&
          e.sizes[j] === size &&
          e.mtimes[j] === mtimeMs &&
          e.ctimes[j] === ctimeMs &&
          e.inos[j] === ino &&
          e.targets.get(j) === link;
        if (same) continue;
        changed++;
        e.set(j, type, mode, size, mtimeMs, ctimeMs, ino, link);
        if (type === 'f') toHash.push({ path: p, size, at: j });
      }
    });
    lookup = undefined;
    let removed = 0;
    for (let j = 0; j < known; j++) if (!seen[j]) removed++;
    changed += removed;
    if (changed > 0) this.dirs = undefined;
    const { digests, ok, errors: hashErrors } = await walkers.hash(this.root, toHash);
    let bytesHashed = 0;
    toHash.forEach((f, k) => {
      // Unreadable: the digest says so, and the next refresh tries again.
      if (ok[k]) {
        e.setHashBytes(f.at, digests, k * HASH_BYTES);
        bytesHashed += f.size;
      }
      // Racily clean entries keep their hash for this comparison but are hashed again next time.
      if (e.mtimes[f.at]! > racyAfter || e.ctimes[f.at]! > racyAfter) e.ctimes[f.at] = -1;
    });
    if (removed > 0) this.entries = e.kept(seen);
    if (!this.dirs) this.computeDigests();
    this.dirty ||= changed > 0;
    return {
      entries: this.entries.length,
      files,
      changed,
      hashed: toHash.length,
      bytesHashed,
      errors: [...errors, ...hashErrors],
      ms: Date.now() - started,
    };
  }

  /**
   * Groups the entries by directory (children sorted by name) and digests each directory from
   * its children, deepest first, so each child's digest is known before its parent's.
   */
  private computeDigests(): void {
    const e = this.entries;
    const byPath = new Map<string, number>([['', 0]]);
    for (let i = 0; i < e.length; i++) if (e.type(i) === 'd') byPath.set(e.paths[i]!, byPath.size);
    const count = byPath.size;
    // The directory each entry lies in; -1 when its parent could not be read.
    const parents = new Int32Array(e.length);
    const start = new Int32Array(count + 1);
    for (let i = 0; i < e.length; i++) {
      const p = e.paths[i]!;
      const slash = p.lastIndexOf('/');
      const parent = byPath.get(slash < 0 ? '' : p.slice(0, slash)) ?? -1;
      parents[i] = parent;
      if (parent >= 0) start[parent + 1]!++;
    }
    for (let k = 0; k < count; k++) start[k + 1]! += start[k]!;
    const list = new Int32Array(start[count]!);
    const fill = start.slice(0, count);
    for (let i = 0; i < e.length; i++) if (parents[i]! >= 0) list[fill[parents[i]!]!++] = i;
    // Siblings share their parent's prefix, so whole paths sort as their names do.
    for (let k = 0; k < count; k++)
      list.subarray(start[k], start[k + 1]).sort((x, y) => (e.paths[x]! < e.paths[y]! ? -1 : 1));

    const dirPaths = [...byPath.keys()];
    const order = Array.from({ length: count }, (_, k) => k).sort((a, b) => depth(dirPaths[b]!) - depth(dirPaths[a]!));
    const digests: string[] = new Array<string>(count).fill('');
    const files: number[] = new Array<number>(count).fill(0);
    const dirs: DirIndex = { byPath, start, list, digests, files };
    for (const k of order) {
      const hash = createHash('sha256');
      let n = 0;
      for (let c = start[k]!; c < start[k + 1]!; c++) {
        const child = this.child(dirs, list[c]!);
        if (child.t === 'd') n += child.s;
        else if (child.t === 'f') n++;
        hash.update(childLine(child));
      }
      digests[k] = hash.digest('hex');
      files[k] = n;
    }
    this.dirs = dirs;
  }

  /** One entry as its directory's child; a directory's digest and count must be known already. */
  private child(dirs: DirIndex, i: number): TreeChild {
    const e = this.entries;
    const p = e.paths[i]!;
    const t = e.type(i);
    const child: TreeChild = { n: p.slice(p.lastIndexOf('/') + 1), t, m: e.mode(i), d: '', s: 0 };
    if (t === 'f') {
      child.d = e.hash(i) || 'unreadable';
      child.s = e.sizes[i]!;
    } else if (t === 'd') {
      const k = dirs.byPath.get(p)!;
      child.d = dirs.digests[k]!;
      child.s = dirs.files[k]!;
    } else if (t === 'l') {
      child.l = e.targets.get(i) ?? '';
      child.d = sha256(`link:${child.l}`);
    }
    return child;
  }

  get rootDigest(): string {
    return this.exists && this.dirs ? this.dirs.digests[0]! : 'absent';
  }

  get fileCount(): number {
    return this.exists && this.dirs ? this.dirs.files[0]! : 0;
  }

  /** A directory's children, or one bucket of them; undefined when the directory is not there. */
  node(dir: string, bucket?: number): { digest: string; children?: TreeChild[]; buckets?: string[] } | undefined {
    const dirs = this.exists ? this.dirs : undefined;
    const k = dirs?.byPath.get(dir);
    if (!dirs || k === undefined) return undefined;
    const all = (): TreeChild[] => {
      const children: TreeChild[] = [];
      for (let c = dirs.start[k]!; c < dirs.start[k + 1]!; c++) children.push(this.child(dirs, dirs.list[c]!));
      return children;
    };
    if (bucket !== undefined) {
      const children = all().filter((c) => bucketOf(c.n) === bucket);
      return { digest: digestOfChildren(children), children };
    }
    const size = dirs.start[k + 1]! - dirs.start[k]!;
    if (size <= MAX_NODE_CHILDREN) return { digest: dirs.digests[k]!, children: all() };
    const groups: TreeChild[][] = Array.from({ length: BUCKETS }, () => []);
    for (const c of all()) groups[bucketOf(c.n)]!.push(c);
    return { digest: dirs.digests[k]!, buckets: groups.map(digestOfChildren) };
  }
}

/** A saved entry: `[path, type, mode, size, mtimeMs, ctimeMs, ino, hash, target?]`. */
type SavedRow = [string, TreeEntryType, number, number, number, number, number, string, string?];

const TYPE_CODE: Record<TreeEntryType, number> = { f: 0, d: 1, l: 2, o: 3 };
const TYPES: TreeEntryType[] = ['f', 'd', 'l', 'o'];
/** In an entry's kind word: its content hash is known. */
const HASH_KNOWN = 1 << 16;
const HASH_BYTES = 32;

/**
 * The entries, column by column: arrays of numbers (which V8 stores unboxed) and one buffer of
 * hashes, with no object per entry. A tree of 100,000 files costs a few tens of bytes per
 * entry beyond its path, where an object per entry cost several hundred.
 */
class Entries {
  readonly paths: string[] = [];
  /** Type code | permission bits << 2 | HASH_KNOWN. */
  readonly kinds: number[] = [];
  readonly sizes: number[] = [];
  /** Milliseconds with their fraction, as lstat gives them; ctime -1 marks an entry to hash again. */
  readonly mtimes: number[] = [];
  readonly ctimes: number[] = [];
  readonly inos: number[] = [];
  /** Link targets by entry. */
  readonly targets = new Map<number, string>();
  /** sha256 of each file, HASH_BYTES per entry. */
  private hashes = Buffer.alloc(0);

  get length(): number {
    return this.paths.length;
  }

  /** Appends an entry; its number is returned. */
  add(p: string, ...stat: Parameters<Entries['set']> extends [number, ...infer R] ? R : never): number {
    const i = this.paths.length;
    this.paths.push(p);
    // Assigning at the end appends: the arrays stay packed.
    this.set(i, ...stat);
    return i;
  }

  /** Replaces entry i's stat; its hash is unknown until set again. */
  set(
    i: number,
    type: TreeEntryType,
    mode: number,
    size: number,
    mtimeMs: number,
    ctimeMs: number,
    ino: number,
    target: string | undefined,
  ): void {
    this.kinds[i] = TYPE_CODE[type] | ((mode & 0o7777) << 2);
    this.sizes[i] = size;
    this.mtimes[i] = mtimeMs;
    this.ctimes[i] = ctimeMs;
    this.inos[i] = ino;
    if (target !== undefined) this.targets.set(i, target);
    else this.targets.delete(i);
  }

  /** A copy without the entries before `keep.length` whose flag in `keep` is 0. */
  kept(keep: Uint8Array): Entries {
    const out = new Entries();
    for (let j = 0; j < this.length; j++) {
      if (j < keep.length && !keep[j]) continue;
      const type = this.type(j);
      const i = out.add(
        this.paths[j]!,
        type,
        this.mode(j),
        this.sizes[j]!,
        this.mtimes[j]!,
        this.ctimes[j]!,
        this.inos[j]!,
        this.targets.get(j),
      );
      if (this.hasHash(j)) out.copyHash(i, this, j);
    }
    return out;
  }

  type(i: number): TreeEntryType {
    return TYPES[this.kinds[i]! & 3]!;
  }

  mode(i: number): number {
    return (this.kinds[i]! >> 2) & 0o7777;
  }

  hasHash(i: number): boolean {
    return (this.kinds[i]! & HASH_KNOWN) !== 0;
  }

  /** The hex sha256, or '' when the file was not (or could not be) hashed. */
  hash(i: number): string {
    return this.hasHash(i) ? this.hashes.toString('hex', i * HASH_BYTES, (i + 1) * HASH_BYTES) : '';
  }

  setHash(i: number, hex: string): void {
    this.reserve(i);
    if (this.hashes.write(hex, i * HASH_BYTES, HASH_BYTES, 'hex') !== HASH_BYTES) return;
    this.kinds[i]! |= HASH_KNOWN;
  }

  /** Sets entry i's hash from the HASH_BYTES bytes of `source` at `offset`. */
  setHashBytes(i: number, source: Uint8Array, offset: number): void {
    this.reserve(i);
    this.hashes.set(source.subarray(offset, offset + HASH_BYTES), i * HASH_BYTES);
    this.kinds[i]! |= HASH_KNOWN;
  }

  copyHash(i: number, from: Entries, j: number): void {
    this.reserve(i);
    from.hashes.copy(this.hashes, i * HASH_BYTES, j * HASH_BYTES, (j + 1) * HASH_BYTES);
    this.kinds[i]! |= HASH_KNOWN;
  }

  private reserve(i: number): void {
    if ((i + 1) * HASH_BYTES <= this.hashes.length) return;
    const grown = Buffer.alloc(Math.max((i + 1) * HASH_BYTES, this.hashes.length * 2, 1024 * HASH_BYTES));
    this.hashes.copy(grown);
    this.hashes = grown;
  }
}

interface DirIndex {
  /** Directory path → its number; the root is '' and 0. */
  byPath: Map<string, number>;
  /** The children of directory k are list[start[k]] … list[start[k + 1] - 1], entry numbers sorted by name. */
  start: Int32Array;
  list: Int32Array;
  digests: string[];
  /** Files beneath each directory, at any depth. */
  files: number[];
}

function childLine(c: TreeChild): string {
  return `${c.t} ${c.m.toString(8)} ${c.d} ${c.n}\n`;
}

function depth(p: string): number {
  if (p === '') return 0;
  let n = 1;
  for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) === 47) n++;
  return n;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A directory's (or bucket's) digest from its sorted children. */
export function digestOfChildren(children: TreeChild[]): string {
  const hash = createHash('sha256');
  for (const c of children) hash.update(childLine(c));
  return hash.digest('hex');
}

/** Which of the 256 buckets a name falls in: both sides compute the same. */
export function bucketOf(name: string): number {
  return createHash('sha256').update(name).digest()[0]!;
}
