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
import type { TreeWalkers } from './tree-walker';

const INDEX_FORMAT = 'rewind-tree-index-v2';
/** A directory with more children than this is answered by buckets of children, not in one piece. */
export const MAX_NODE_CHILDREN = 1000;
export const BUCKETS = 256;

export type TreeEntryType = 'f' | 'd' | 'l' | 'o';

export interface TreeEntry {
  type: TreeEntryType;
  mode: number;
  size: number;
  /** Milliseconds with their fraction, as lstat gives them; -1 marks an entry to hash again. */
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  /** Content sha256 (files); empty until hashed, or when the file could not be read. */
  hash: string;
  target?: string;
}

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

interface DirNode {
  digest: string;
  /** Sorted by name. */
  children: TreeChild[];
  /** Files beneath, at any depth. */
  files: number;
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
  private dirs = new Map<string, DirNode>();
  /** Changed since it was last saved or loaded. */
  private dirty = false;

  private constructor(
    readonly root: string,
    private entries: Map<string, TreeEntry>,
    /** Whether the component's directory exists at all. */
    public exists: boolean,
  ) {}

  static empty(root: string): TreeIndex {
    return new TreeIndex(root, new Map(), false);
  }

  /** The index saved at `file`, or an empty one when there is none or it is unreadable. */
  static async load(file: string, root: string): Promise<TreeIndex> {
    // Line by line: the file of a large tree is never held whole in memory.
    const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
    try {
      let header: { format: string; root: string } | undefined;
      const entries = new Map<string, TreeEntry>();
      for await (const line of lines) {
        if (!header) {
          header = JSON.parse(line) as { format: string; root: string };
          if (header.format !== INDEX_FORMAT || header.root !== root) return TreeIndex.empty(root);
          continue;
        }
        if (!line) continue;
        const [p, type, mode, size, mtimeMs, ctimeMs, ino, hash, target] = JSON.parse(line) as [
          string,
          TreeEntryType,
          number,
          number,
          number,
          number,
          number,
          string,
          string?,
        ];
        entries.set(p, { type, mode, size, mtimeMs, ctimeMs, ino, hash, ...(target !== undefined ? { target } : {}) });
      }
      if (!header) return TreeIndex.empty(root);
      const index = new TreeIndex(root, entries, true);
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
    const write = (line: string) =>
      out.write(line) ? Promise.resolve() : new Promise<void>((resolve) => out.once('drain', () => resolve()));
    await write(`${JSON.stringify({ format: INDEX_FORMAT, root: this.root })}\n`);
    for (const [p, e] of this.entries) {
      const row: unknown[] = [p, e.type, e.mode, e.size, e.mtimeMs, e.ctimeMs, e.ino, e.hash];
      if (e.target !== undefined) row.push(e.target);
      await write(`${JSON.stringify(row)}\n`);
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
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
    const rootStat = await stat(this.root).catch(() => undefined);
    if (!rootStat?.isDirectory()) {
      const changed = this.entries.size + (this.exists ? 1 : 0);
      this.entries = new Map();
      this.exists = false;
      this.dirty ||= changed > 0;
      this.computeDigests();
      return { entries: 0, files: 0, changed, hashed: 0, bytesHashed: 0, errors: [], ms: Date.now() - started };
    }
    if (!this.exists) this.dirty = true;
    this.exists = true;
    const racyAfter = (options.now ?? Date.now()) - 2_000;
    const next = new Map<string, TreeEntry>();
    const toHash: { path: string; size: number; entry: TreeEntry }[] = [];
    let files = 0;
    let changed = 0;
    const { errors } = await walkers.walk(this.root, options.signal, (rows) => {
      for (const [p, type, mode, size, mtimeMs, ctimeMs, ino, target] of rows) {
        const old = this.entries.get(p);
        if (type === 'f') files++;
        const same =
          old !== undefined &&
          old.type === type &&
          old.mode === mode &&
          old.size === size &&
          old.mtimeMs === mtimeMs &&
          old.ctimeMs === ctimeMs &&
          old.ino === ino &&
          (type !== 'f' || old.hash !== '') &&
          (type !== 'l' || old.target === target);
        if (same) {
          next.set(p, old);
          continue;
        }
        changed++;
        const entry: TreeEntry = { type, mode, size, mtimeMs, ctimeMs, ino, hash: '' };
        if (type === 'l') entry.target = target ?? '';
        if (type === 'f') toHash.push({ path: p, size, entry });
        next.set(p, entry);
      }
    });
    for (const p of this.entries.keys()) if (!next.has(p)) changed++;
    const { hashes, errors: hashErrors } = await walkers.hash(this.root, toHash);
    let bytesHashed = 0;
    toHash.forEach((f, i) => {
      const hash = hashes[i];
      // Unreadable: the digest says so, and the next refresh tries again.
      f.entry.hash = hash ?? '';
      if (hash) bytesHashed += f.size;
    });
    this.entries = next;
    if (changed > 0 || this.dirs.size === 0) this.computeDigests();
    // Racily clean entries keep their hash for this comparison but are hashed again next time.
    for (const f of toHash) if (f.entry.mtimeMs > racyAfter || f.entry.ctimeMs > racyAfter) f.entry.ctimeMs = -1;
    this.dirty ||= changed > 0;
    return {
      entries: next.size,
      files,
      changed,
      hashed: toHash.length,
      bytesHashed,
      errors: [...errors, ...hashErrors],
      ms: Date.now() - started,
    };
  }

  private computeDigests(): void {
    const byDir = new Map<string, TreeChild[]>([['', []]]);
    for (const [p, e] of this.entries) if (e.type === 'd') byDir.set(p, []);
    for (const [p, e] of this.entries) {
      const slash = p.lastIndexOf('/');
      const parent = slash < 0 ? '' : p.slice(0, slash);
      const siblings = byDir.get(parent);
      if (!siblings) continue; // a parent the walk could not read
      siblings.push({
        n: p.slice(slash + 1),
        t: e.type,
        m: e.mode,
        d: e.type === 'l' ? sha256(`link:${e.target ?? ''}`) : e.type === 'f' ? e.hash || 'unreadable' : '',
        s: e.type === 'f' ? e.size : 0,
        ...(e.type === 'l' ? { l: e.target ?? '' } : {}),
      });
    }
    // Deepest directories first, so each child's digest is known before its parent's.
    const order = [...byDir.keys()].sort((a, b) => depth(b) - depth(a));
    const dirs = new Map<string, DirNode>();
    for (const dir of order) {
      const children = byDir.get(dir)!.sort((a, b) => (a.n < b.n ? -1 : a.n > b.n ? 1 : 0));
      let files = 0;
      for (const child of children) {
        if (child.t === 'd') {
          const sub = dirs.get(dir === '' ? child.n : `${dir}/${child.n}`)!;
          child.d = sub.digest;
          child.s = sub.files;
          files += sub.files;
        } else if (child.t === 'f') files++;
      }
      dirs.set(dir, { digest: digestOfChildren(children), children, files });
    }
    this.dirs = dirs;
  }

  get rootDigest(): string {
    return this.exists ? this.dirs.get('')!.digest : 'absent';
  }

  get fileCount(): number {
    return this.exists ? this.dirs.get('')!.files : 0;
  }

  /** A directory's children, or one bucket of them; undefined when the directory is not there. */
  node(dir: string, bucket?: number): { digest: string; children?: TreeChild[]; buckets?: string[] } | undefined {
    const node = this.exists ? this.dirs.get(dir) : undefined;
    if (!node) return undefined;
    if (bucket !== undefined) {
      const children = node.children.filter((c) => bucketOf(c.n) === bucket);
      return { digest: digestOfChildren(children), children };
    }
    if (node.children.length <= MAX_NODE_CHILDREN) return { digest: node.digest, children: node.children };
    const groups: TreeChild[][] = Array.from({ length: BUCKETS }, () => []);
    for (const c of node.children) groups[bucketOf(c.n)]!.push(c);
    return { digest: node.digest, buckets: groups.map(digestOfChildren) };
  }

  entry(relPath: string): TreeEntry | undefined {
    return this.entries.get(relPath);
  }
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
  for (const c of children) hash.update(`${c.t} ${c.m.toString(8)} ${c.d} ${c.n}\n`);
  return hash.digest('hex');
}

/** Which of the 256 buckets a name falls in: both sides compute the same. */
export function bucketOf(name: string): number {
  return createHash('sha256').update(name).digest()[0]!;
}
