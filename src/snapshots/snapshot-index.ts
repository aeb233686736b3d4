// What `restic snapshots` would answer, kept on disk so that finding a cross-section costs no
// restic run (each one pays about 0.7 s of key derivation before it reads anything).
//
// The index is trusted only while it names exactly the snapshots the repository holds: a local
// repository keeps one file per snapshot, named by its id, in its `snapshots` folder, and that
// folder is read (not decrypted: names only) every time. A snapshot added or removed by anyone
// (another host, restic by hand) changes the folder, and the next reader refreshes the index
// from restic. Writers replace the file atomically; two writers racing can only lose an update,
// which the next reader notices the same way. Remote repositories have no folder to compare
// against, so they get no index.
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface IndexedSnapshot {
  id: string;
  /** Exactly as `restic snapshots --json` prints it. */
  time: string;
  tags: string[];
}

interface IndexFile {
  version: 1;
  snapshots: IndexedSnapshot[];
}

const SNAPSHOT_FILE = /^[0-9a-f]{64}$/;

/** The folder of a repository's snapshot files, when the repository is on a local file system. */
export function localSnapshotsFolder(repository: string): string | undefined {
  const scheme = /^([A-Za-z0-9]+):/.exec(repository)?.[1];
  if (scheme !== undefined && scheme !== 'local') return undefined;
  const location = scheme === 'local' ? repository.slice('local:'.length) : repository;
  return path.join(path.resolve(location), 'snapshots');
}

export class SnapshotIndex {
  /** The last file read, so that an unchanged file is not parsed again. */
  private memory?: { stamp: string; snapshots: IndexedSnapshot[] };
  /** Writes of this process, one at a time (other processes can only cost a refresh). */
  private writes: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly snapshotsFolder: string,
  ) {}

  /** Every snapshot of the repository, or undefined when the index does not match it. */
  async current(): Promise<IndexedSnapshot[] | undefined> {
    const [held, indexed] = await Promise.all([this.heldIds(), this.read()]);
    if (held?.size === 0) return [];
    if (!held || !indexed || held.size !== indexed.length) return undefined;
    return indexed.every((s) => held.has(s.id)) ? indexed : undefined;
  }

  /** After a full `restic snapshots`: its answer. */
  replace(snapshots: IndexedSnapshot[]): Promise<void> {
    return this.update(() => snapshots);
  }

  /** After a backup: the snapshot it wrote. */
  add(snapshot: IndexedSnapshot): Promise<void> {
    return this.update(async (known) => {
      // The first snapshot of a new repository starts the index.
      const held = known ? undefined : await this.heldIds();
      const base = known ?? (held?.size === 1 && held.has(snapshot.id) ? [] : undefined);
      return base ? [...base.filter((s) => s.id !== snapshot.id), snapshot] : undefined;
    });
  }

  /** After a forget: the snapshots it removed. */
  remove(ids: readonly string[]): Promise<void> {
    const gone = new Set(ids);
    return this.update((known) => known?.filter((s) => !gone.has(s.id)));
  }

  private update(
    change: (
      known: IndexedSnapshot[] | undefined,
    ) => IndexedSnapshot[] | undefined | Promise<IndexedSnapshot[] | undefined>,
  ): Promise<void> {
    const next = this.writes.then(async () => {
      const snapshots = await change(await this.read());
      if (!snapshots) return;
      await mkdir(path.dirname(this.file), { recursive: true });
      const temporary = `${this.file}.${randomUUID()}.tmp`;
      await writeFile(temporary, JSON.stringify({ version: 1, snapshots } satisfies IndexFile));
      await rename(temporary, this.file);
    });
    // An index that cannot be written only costs restic runs later; it never fails the caller.
    this.writes = next.catch(() => undefined);
    return this.writes.then(() => undefined);
  }

  private async heldIds(): Promise<Set<string> | undefined> {
    try {
      return new Set((await readdir(this.snapshotsFolder)).filter((name) => SNAPSHOT_FILE.test(name)));
    } catch {
      return undefined;
    }
  }

  private async read(): Promise<IndexedSnapshot[] | undefined> {
    try {
      const info = await stat(this.file);
      const stamp = `${info.ino}:${info.size}:${info.mtimeMs}`;
      if (this.memory?.stamp === stamp) return this.memory.snapshots;
      const parsed = JSON.parse(await readFile(this.file, 'utf8')) as Partial<IndexFile>;
      if (parsed.version !== 1 || !Array.isArray(parsed.snapshots)) return undefined;
      const snapshots = parsed.snapshots.filter(
        (s): s is IndexedSnapshot =>
          typeof s?.id === 'string' &&
          typeof s.time === 'string' &&
          Array.isArray(s.tags) &&
          s.tags.every((t) => typeof t === 'string'),
      );
      this.memory = { stamp, snapshots };
      return snapshots;
    } catch {
      return undefined;
    }
  }
}
