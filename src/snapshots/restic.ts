// restic, driven with --json. restic does the hard parts (content-defined chunking,
// deduplication, compression, encryption, integrity); this class only runs it and reads its
// JSON lines. The password travels in the child's environment, never in arguments or logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { countToolBytes, timedTool } from '../metrics/tool-metrics';
import { resolveTool } from '../platform/tools';
import { decodeTags, type TaggedSnapshot } from '../domain/cross-section';
import { localSnapshotsFolder, SnapshotIndex, type IndexedSnapshot } from './snapshot-index';

export interface ResticOptions {
  repository: string;
  password: string;
  binary?: string;
  /** Extra environment for restic (e.g. S3 credentials); merged over process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Serialises `restic init` between processes of this host. Two inits racing on one
   * repository each write a key and a config, and the loser's key then fails to decrypt it.
   */
  initLockFile?: string;
  /**
   * Where to keep the index of the repository's snapshots (snapshot-index.ts), so that listing
   * them costs no restic run. Used only for repositories on a local file system.
   */
  indexFile?: string;
}

export interface ResticProgress {
  percentDone: number;
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface BackupSummary {
  snapshotId: string;
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dataAdded: number;
  totalFiles: number;
  totalBytes: number;
}

export interface RestoreSummary {
  totalFiles: number;
  filesRestored: number;
  filesSkipped: number;
  filesDeleted: number;
  totalBytes: number;
  bytesRestored: number;
  bytesSkipped: number;
}

export interface RunOptions {
  onProgress?: (p: ResticProgress) => void;
  signal?: AbortSignal;
  cwd?: string;
  stdin?: string | Buffer;
  /** Holds an exclusive flock on this file for as long as restic runs (see `restore`). */
  lockFile?: string;
  /** Environment for restic and the commands it runs (e.g. PGPASSWORD for pg_dump). */
  extraEnv?: NodeJS.ProcessEnv;
  /**
   * If the repository is locked by a live process even after stale locks were cleared, wait
   * this long for it (restic's `--retry-lock`) before failing. Not waited on the first try, so
   * that a stale lock is cleared at once instead of waited on.
   */
  lockWait?: string;
}

/** Fatal errors about the request itself, which the same request would meet again. */
const REFUSALS =
  /no matching ID found|snapshot is empty|invalid (id|pattern|snapshot)|is not a directory|unknown flag/i;

/**
 * Repository data that does not read back as written: a corrupted, truncated or missing pack,
 * index or key (restic 0.19's wording). Retrying reads the same bytes again.
 */
const DAMAGED =
  /ciphertext verification failed|invalid data returned|file is too short|pack [0-9a-f]+ contains \d+ errors|(pack|blob|tree) ID does not match|hash of data does not match|pack (header )?size does not match|config or key \S+ is damaged|checksum mismatch|<(data|index)\/[0-9a-f]+>\): open [^:]+: no such file or directory/i;

/** A file system restic writes to that is full or read-only; it stays so until someone acts. */
const NO_SPACE = /no space left on device|disk quota exceeded/i;
const READ_ONLY = /read-only file system/i;

/**
 * restic's documented exit codes (restic 0.17+): 0 success, 1 fatal error, 2 Go runtime error
 * (a crash), 3 backup could not read some source data (or forget could not remove some
 * snapshots), 10 no repository, 11 failed to lock, 12 wrong password, 130 interrupted.
 */
const EXIT = {
  crashed: 2,
  incomplete: 3,
  noRepository: 10,
  lockFailed: 11,
  wrongPassword: 12,
  interrupted: 130,
} as const;

export type ResticErrorKind =
  | 'no-repository'
  | 'wrong-password'
  /** Another restic holds the repository's lock, and it is not stale: a retry may succeed. */
  | 'locked'
  | 'incomplete'
  | 'refused'
  /** The repository's data does not read back as written (a corrupted or missing pack). */
  | 'damaged'
  /** A file system restic writes to (a restore's target) is full or read-only. */
  | 'unwritable'
  /** The repository's own file system is full or read-only. */
  | 'repository-unwritable'
  /** restic itself crashed (Go runtime error, exit code 2). */
  | 'crashed'
  | 'failed'
  | 'cancelled';

export class ResticError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly kind: ResticErrorKind,
    /** For an incomplete backup: the partial snapshot restic wrote anyway. */
    readonly snapshotId?: string,
  ) {
    super(message);
    this.name = 'ResticError';
  }
}

export class ResticRepository {
  private resolvedBinary?: string;
  private initialized = false;
  private readonly index?: SnapshotIndex;

  constructor(private readonly options: ResticOptions) {
    const folder = localSnapshotsFolder(options.repository);
    if (options.indexFile && folder) this.index = new SnapshotIndex(options.indexFile, folder);
  }

  /**
   * The restic binary, found (and its version checked, which costs a run) on first use: a
   * command the snapshot index answers never needs it.
   */
  get binary(): string {
    this.resolvedBinary ??= this.options.binary ?? resolveTool('restic');
    return this.resolvedBinary;
  }

  get location(): string {
    return this.options.repository;
  }

  /** Creates the repository on first use; safe when several processes race to do it. */
  async ensureInitialized(): Promise<void> {
    if (this.initialized) return;
    // A local repository with a config file exists; its password is checked by the first real run.
    const folder = localSnapshotsFolder(this.options.repository);
    if (folder && existsSync(path.join(path.dirname(folder), 'config'))) {
      this.initialized = true;
      return;
    }
    const lockFile = this.options.initLockFile;
    if (lockFile) await mkdir(path.dirname(lockFile), { recursive: true });
    try {
      await this.run(['cat', 'config']);
    } catch (err) {
      if (!(err instanceof ResticError) || err.kind !== 'no-repository') throw err;
      try {
        // `init` fails when the repository exists, so under the lock the second process's init
        // fails cleanly instead of racing the first.
        await this.run(['init'], lockFile ? { lockFile } : {});
      } catch (initErr) {
        if (!(initErr instanceof ResticError) || !/already (exists|initialized)/i.test(initErr.message)) throw initErr;
      }
      await this.run(['cat', 'config']);
    }
    this.initialized = true;
  }

  async backup(
    args: { directory: string; tags: string[]; host: string },
    options: RunOptions = {},
  ): Promise<BackupSummary> {
    if (!existsSync(args.directory)) throw new ResticError(`${args.directory} does not exist`, null, 'failed');
    const lines = await this.run(['backup', '.', '--host', args.host, ...args.tags.flatMap((t) => ['--tag', t])], {
      ...options,
      cwd: args.directory,
    });
    return this.indexed(toBackupSummary(lines), lines, args.tags);
  }

  async backupStdin(args: { data: string; filename: string; tags: string[]; host: string }): Promise<BackupSummary> {
    const lines = await this.run(
      [
        'backup',
        '--stdin',
        '--stdin-filename',
        args.filename,
        '--host',
        args.host,
        ...args.tags.flatMap((t) => ['--tag', t]),
      ],
      { stdin: args.data },
    );
    return this.indexed(toBackupSummary(lines), lines, args.tags);
  }

  /**
   * Stores what a command writes to stdout as one file, as it is produced (restic runs the
   * command and fails the backup if it fails). Used for database dumps, which then never land
   * on disk.
   */
  async backupFromCommand(
    args: { command: string[]; filename: string; tags: string[]; host: string },
    options: RunOptions & { commandEnv?: NodeJS.ProcessEnv } = {},
  ): Promise<BackupSummary> {
    const lines = await this.run(
      [
        'backup',
        '--stdin-from-command',
        '--stdin-filename',
        args.filename,
        '--host',
        args.host,
        ...args.tags.flatMap((t) => ['--tag', t]),
        '--',
        ...args.command,
      ],
      { ...options, ...(options.commandEnv ? { extraEnv: options.commandEnv } : {}) },
    );
    return this.indexed(toBackupSummary(lines), lines, args.tags);
  }

  /**
   * Streams one file of a snapshot into `consumer`'s stdin (e.g. pg_restore), so reading the
   * repository and loading the data overlap. Fails if either side fails.
   */
  async dumpInto(
    args: { snapshotId: string; file: string; consumer: { command: string; args: string[]; env?: NodeJS.ProcessEnv } },
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    options.signal?.throwIfAborted();
    const dump = spawn(this.binary, ['dump', '--no-lock', args.snapshotId, args.file], {
      env: this.childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const consumer = spawn(args.consumer.command, args.consumer.args, {
      env: { ...process.env, ...args.consumer.env },
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    dump.stdout.pipe(consumer.stdin);
    let streamed = 0;
    dump.stdout.on('data', (chunk: Buffer) => (streamed += chunk.length));
    consumer.stdin.on('error', () => undefined); // a consumer that fails closes its stdin early
    const outcome = (child: ChildProcess, name: string, isRestic: boolean) =>
      new Promise<void>((resolve, reject) => {
        let stderr = '';
        child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-8192)));
        child.on('error', (err) => reject(new ResticError(`could not run ${name}: ${err.message}`, null, 'failed')));
        child.on('close', (code) => {
          if (code === 0) return resolve();
          if (isRestic) return reject(toResticError(['dump'], code, stderr, '', this.options.repository));
          reject(new ResticError(`${name} exited with ${String(code)}: ${errorMessage(stderr)}`, code, 'failed'));
        });
      });
    const onAbort = () => {
      dump.kill('SIGINT');
      consumer.kill('SIGINT');
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await timedTool('restic', 'dump', () =>
        Promise.all([
          outcome(dump, 'restic dump', true),
          outcome(consumer, path.basename(args.consumer.command), false),
        ]),
      );
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      countToolBytes('restic', 'dump', streamed);
    }
  }

  /**
   * Restores a snapshot in place. By default the whole tree: writing only what differs
   * (`--overwrite if-changed`) and deleting what the snapshot does not hold (`--delete`).
   * With `includeFile`, only the listed paths, each checked block by block
   * (`--overwrite always` compares content, not size and mtime) and nothing deleted.
   */
  async restore(
    args: {
      snapshotId: string;
      target: string;
      includeFile?: string;
      /**
       * Reads without taking the repository's lock, as `dump` and `ls` do here: taking one costs
       * restic a 200 ms wait (it checks for a racing exclusive lock). For reads whose failure is
       * harmless, such as prepare's read-back: a `restic prune` run by hand at that moment
       * would make it fail, and the plan say "not possible", before anything was changed.
       */
      withoutLock?: boolean;
    },
    options: RunOptions = {},
  ): Promise<RestoreSummary> {
    const selection = args.includeFile
      ? ['--include-file', args.includeFile, '--overwrite', 'always']
      : ['--overwrite', 'if-changed', '--delete'];
    const lock = args.withoutLock ? ['--no-lock'] : [];
    const lines = await this.run(['restore', ...lock, args.snapshotId, '--target', args.target, ...selection], options);
    const summary = lines.find((l) => l.message_type === 'summary');
    if (!summary) throw new ResticError('restic restore printed no summary', 0, 'failed');
    return {
      totalFiles: num(summary.total_files),
      filesRestored: num(summary.files_restored),
      filesSkipped: num(summary.files_skipped),
      filesDeleted: num(summary.files_deleted),
      totalBytes: num(summary.total_bytes),
      bytesRestored: num(summary.bytes_restored),
      bytesSkipped: num(summary.bytes_skipped),
    };
  }

  /** rewind's snapshots whose tags include every given tag. */
  async snapshots(tags: string[] = []): Promise<TaggedSnapshot[]> {
    const listed = this.index
      ? ((await this.index.current()) ?? (await this.refreshIndex())).filter((s) =>
          tags.every((t) => s.tags.includes(t)),
        )
      : await this.listSnapshots(tags);
    const tagged: TaggedSnapshot[] = [];
    for (const s of listed) {
      const labels = decodeTags(s.tags);
      if (labels) tagged.push({ id: s.id, time: s.time, labels });
    }
    return tagged;
  }

  /** Every snapshot, from restic itself; the index then holds them. */
  private async refreshIndex(): Promise<IndexedSnapshot[]> {
    const all = await this.listSnapshots([]);
    await this.index?.replace(all);
    return all;
  }

  private async listSnapshots(tags: string[]): Promise<IndexedSnapshot[]> {
    const lines = await this.run(['snapshots', '--no-lock', ...(tags.length ? ['--tag', tags.join(',')] : [])]);
    const list = (lines[0] ?? []) as unknown as { id: string; time: string; tags?: string[] }[];
    return (Array.isArray(list) ? list : []).map((s) => ({ id: s.id, time: s.time, tags: s.tags ?? [] }));
  }

  /** Records a backup's snapshot in the index, as `restic snapshots` will show it. */
  private async indexed(
    summary: BackupSummary,
    lines: Record<string, unknown>[],
    tags: string[],
  ): Promise<BackupSummary> {
    // restic stamps the snapshot with the moment the backup started, which its summary reports.
    const started = lines.find((l) => l.message_type === 'summary')?.backup_start;
    if (this.index && typeof started === 'string') {
      // `--tag a,b` is two tags to restic.
      const split = tags.flatMap((t) => t.split(',')).filter((t) => t !== '');
      await this.index.add({ id: summary.snapshotId, time: started, tags: split });
    }
    return summary;
  }

  /** The bytes of one file of a snapshot. */
  async dump(snapshotId: string, file: string): Promise<string> {
    return (await this.runRaw(['dump', '--no-lock', snapshotId, file])).toString('utf8');
  }

  /** Counts the nodes of a snapshot's tree; reading every tree proves the snapshot readable. */
  async countNodes(snapshotId: string): Promise<number> {
    const lines = await this.run(['ls', '--no-lock', snapshotId]);
    return lines.filter((l) => l.message_type === 'node' || l.struct_type === 'node').length;
  }

  async forget(snapshotIds: string[]): Promise<void> {
    if (snapshotIds.length === 0) return;
    // forget needs the exclusive lock; a backup running beside it is waited for (lockWait).
    await this.run(['forget', ...snapshotIds], { lockWait: '2m' });
    await this.index?.remove(snapshotIds);
  }

  /**
   * Copies snapshots of `source` here (`restic copy --from-repo`), tags and all; restic skips
   * the ones already copied. They get ids of their own here.
   */
  async copyFrom(source: ResticRepository, snapshotIds: string[]): Promise<void> {
    if (snapshotIds.length === 0) return;
    await this.ensureInitialized();
    await this.run(['copy', '--from-repo', source.location, ...snapshotIds], {
      extraEnv: { RESTIC_FROM_PASSWORD: source.options.password },
      lockWait: '10m',
    });
    if (this.index) await this.refreshIndex();
  }

  /** Runs restic with --json and returns its JSON stdout lines. */
  async run(args: string[], options: RunOptions = {}): Promise<Record<string, unknown>[]> {
    const command = subcommand(args);
    const out = await timedTool('restic', command, () => this.runRaw(['--json', ...args], options));
    const lines: Record<string, unknown>[] = [];
    for (const line of out.toString('utf8').split('\n')) {
      if (!line.startsWith('{') && !line.startsWith('[')) continue;
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // restic interleaves the odd plain-text warning; those are not results.
      }
    }
    const summary = lines.find((l) => l.message_type === 'summary');
    if (summary) countToolBytes('restic', command, num(summary.total_bytes_processed ?? summary.bytes_restored));
    return lines;
  }

  private childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...this.options.env,
      ...extra,
      RESTIC_REPOSITORY: this.options.repository,
      RESTIC_PASSWORD: this.options.password,
      RESTIC_PROGRESS_FPS: '2',
    };
    delete env.RESTIC_PASSWORD_FILE;
    delete env.RESTIC_PASSWORD_COMMAND;
    return env;
  }

  /**
   * Runs restic once more after a lock failure, having cleared stale locks: a restic killed
   * with its agent (SIGKILL cannot be caught) leaves its lock behind, and restic waits on it or
   * fails on it for ever. `restic unlock` without `--remove-all` removes only locks that restic
   * itself calls stale: of processes that no longer run on this host, or older than 30 minutes
   * (live restic refreshes its locks every 5). A live lock stays, and the second failure says
   * whose it is.
   */
  private async runRaw(args: string[], options: RunOptions = {}): Promise<Buffer> {
    try {
      return await this.spawnCacheSafe(args, options);
    } catch (err) {
      const command = subcommand(args);
      if (!(err instanceof ResticError) || err.kind !== 'locked' || command === 'unlock') throw err;
      await this.unlockStale(options.signal);
      const again = options.lockWait ? withFlag(args, '--retry-lock', options.lockWait) : args;
      try {
        return await this.spawnRestic(again, options);
      } catch (second) {
        if (!(second instanceof ResticError) || second.kind !== 'locked') throw second;
        throw new ResticError(liveLockMessage(`restic ${command}`, second.message), second.exitCode, 'locked');
      }
    }
  }

  /**
   * Runs restic once more when it could not open its cache because another restic was creating
   * it: restic writes the cache's version file in place, so a second process starting at that
   * moment (two agents of one host starting together) reads it empty and gives up.
   */
  private async spawnCacheSafe(args: string[], options: RunOptions): Promise<Buffer> {
    try {
      return await this.spawnRestic(args, options);
    } catch (err) {
      if (!(err instanceof ResticError) || !CACHE_RACE.test(err.message)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
      return this.spawnRestic(args, options);
    }
  }

  /** `restic unlock`: removes stale locks only. Its failure is left to the retry to report. */
  private async unlockStale(signal?: AbortSignal): Promise<void> {
    try {
      await this.spawnRestic(['unlock'], signal ? { signal } : {});
    } catch (err) {
      if (err instanceof ResticError && err.kind === 'cancelled') throw err;
    }
  }

  private spawnRestic(args: string[], options: RunOptions = {}): Promise<Buffer> {
    const env = this.childEnv(options.extraEnv);
    // `flock --no-fork` becomes restic itself, so the lock lives exactly as long as restic:
    // a restic left running by a killed agent keeps it, and the next attempt waits its turn.
    const [command, argv] = options.lockFile
      ? ['flock', ['--exclusive', '--no-fork', options.lockFile, this.binary, ...args]]
      : [this.binary, args];

    return new Promise((resolve, reject) => {
      options.signal?.throwIfAborted();
      const child = spawn(command, argv, { cwd: options.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
      const stdout: Buffer[] = [];
      const stderr = new BoundedText();
      let pending = '';
      let cancelled = false;

      const onAbort = () => {
        cancelled = true;
        child.kill('SIGINT'); // restic removes its lock on SIGINT
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });

      child.stdout.on('data', (chunk: Buffer) => {
        if (!options.onProgress) {
          stdout.push(chunk);
          return;
        }
        // Progress lines are many; keep only the others.
        pending += chunk.toString('utf8');
        const parts = pending.split('\n');
        pending = parts.pop() ?? '';
        for (const line of parts) {
          if (line.startsWith('{"message_type":"status"')) {
            const progress = toProgress(line);
            if (progress) options.onProgress(progress);
          } else stdout.push(Buffer.from(line + '\n'));
        }
      });
      child.stderr.on('data', (chunk: Buffer) => stderr.append(chunk.toString('utf8')));
      child.on('error', (err) => {
        options.signal?.removeEventListener('abort', onAbort);
        reject(new ResticError(`could not run ${command}: ${err.message}`, null, 'failed'));
      });
      child.on('close', (code) => {
        options.signal?.removeEventListener('abort', onAbort);
        if (pending) stdout.push(Buffer.from(pending));
        if (code === 0) return resolve(Buffer.concat(stdout));
        if (cancelled) return reject(new ResticError('restic was cancelled', code, 'cancelled'));
        reject(
          toResticError(args, code, stderr.text(), Buffer.concat(stdout).toString('utf8'), this.options.repository),
        );
      });
      child.stdin.on('error', () => undefined); // restic may exit before reading stdin
      child.stdin.end(options.stdin ?? '');
    });
  }
}

/** restic's words when its cache's version file was read while another restic wrote it. */
const CACHE_RACE = /unable to open cache: readVersion/;

/**
 * A failed restic run as a ResticError whose kind says whether retrying can help: by restic's
 * exit code first, then, for the catch-all exit code 1, by restic's words.
 */
function toResticError(
  args: string[],
  code: number | null,
  stderr: string,
  stdout: string,
  repository: string,
): ResticError {
  const messages = stderrMessages(stderr);
  const message = summarize(messages) || `exit code ${String(code)}`;
  const what = `restic ${subcommand(args)}`;
  switch (code) {
    case EXIT.noRepository:
      return new ResticError(`${what}: repository does not exist`, code, 'no-repository');
    case EXIT.wrongPassword:
      return new ResticError(`${what}: wrong repository password`, code, 'wrong-password');
    case EXIT.lockFailed:
      return new ResticError(`${what}: repository is locked: ${lockReport(messages, message)}`, code, 'locked');
    case EXIT.crashed:
      return new ResticError(
        `${what}: restic crashed (exit code 2): ${messages.find((m) => /^(panic|fatal error):/.test(m)) ?? message}`,
        code,
        'crashed',
      );
    case EXIT.interrupted:
      return new ResticError(`${what}: restic was interrupted: ${message}`, code, 'failed');
    case EXIT.incomplete:
      if (subcommand(args) === 'backup') {
        return new ResticError(
          `${what}: some files could not be read: ${message}`,
          code,
          'incomplete',
          /"snapshot_id":"([0-9a-f]+)"/.exec(stdout)?.[1],
        );
      }
      break;
  }
  // restic before 0.17 exits with 1 when locked; its words are the same.
  if (messages.some((m) => /repository is already locked/i.test(m))) {
    return new ResticError(`${what}: repository is locked: ${lockReport(messages, message)}`, code, 'locked');
  }
  // A cause that retrying cannot remove may hide among many follow-on errors (a read-only
  // target makes every later chown fail too), so every message counts, not only the last.
  // A command's own complaints (--stdin-from-command) are its caller's to judge.
  const own = messages.filter((m) => !m.startsWith('subprocess '));
  const damaged = own.find((m) => DAMAGED.test(m));
  if (damaged) {
    return new ResticError(
      `${what}: the repository data is damaged: ${damaged.slice(0, 500)}. Retrying reads the same bytes; run \`restic check --read-data\` and see https://restic.readthedocs.io/en/stable/077_troubleshooting.html`,
      code,
      'damaged',
    );
  }
  const noSpace = own.find((m) => NO_SPACE.test(m));
  const readOnly = noSpace ? undefined : own.find((m) => READ_ONLY.test(m));
  const full = noSpace ?? readOnly;
  if (full) {
    const state = noSpace ? 'full' : 'read-only';
    const inRepository =
      /<(data|index|snapshots|keys|locks|config)\b|\bSave\(/.test(full) || full.includes(path.join(repository, '/'));
    return inRepository
      ? new ResticError(
          `${what}: the repository's file system is ${state}: ${full.slice(0, 500)}`,
          code,
          'repository-unwritable',
        )
      : new ResticError(`${what}: the file system is ${state}: ${full.slice(0, 500)}`, code, 'unwritable');
  }
  return new ResticError(`${what}: ${message}`, code, REFUSALS.test(message) ? 'refused' : 'failed');
}

/** The restic command of an argument list (`backup`, `forget`, ...): its first non-flag word. */
function subcommand(args: string[]): string {
  return args.find((a) => !a.startsWith('-')) ?? '';
}

/** `args` with a flag added right after the command, where restic reads it whatever follows. */
function withFlag(args: string[], flag: string, value: string): string[] {
  const at = args.findIndex((a) => !a.startsWith('-'));
  return [...args.slice(0, at + 1), flag, value, ...args.slice(at + 1)];
}

/**
 * Names the holder of a live lock from restic's report: "repository is already locked
 * exclusively by PID 123 on host by user (UID 0, GID 0) / lock was created at ...".
 */
function liveLockMessage(what: string, message: string): string {
  const holder = /locked (exclusively )?by (PID \d+ on \S+ by [^\n;(]+?)\s*(\(UID[^)]*\))?\s*(?:\n|;|$)/.exec(message);
  const since = /lock was created at ([^(\n;]+?)\s*\(/.exec(message)?.[1];
  const who = holder
    ? `${holder[2]}${holder[3] ? ` ${holder[3]}` : ''}${holder[1] ? ', exclusively' : ''}${since ? `, since ${since}` : ''}`
    : oneLine(message);
  return `${what}: the repository is locked by ${who}. The lock is not stale (its process is alive, or it was taken on another host less than 30 minutes ago), so restic unlock left it; retry when that restic has finished`;
}

/** restic's words about the lock and its holder, on one line. */
function lockReport(messages: string[], fallback: string): string {
  const about = messages.filter((m) => /already locked|lock was created at/i.test(m));
  return oneLine(about.length > 0 ? about.join('\n') : fallback);
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ');
}

/** Keeps the start of a long stderr (where causes come first) and its end (the exit error). */
class BoundedText {
  private head = '';
  private tail = '';
  private cut = false;
  private static readonly HEAD = 64 * 1024;
  private static readonly TAIL = 16 * 1024;

  append(chunk: string): void {
    if (!this.cut && this.head.length + chunk.length <= BoundedText.HEAD) {
      this.head += chunk;
      return;
    }
    this.cut = true;
    this.tail = (this.tail + chunk).slice(-BoundedText.TAIL);
  }

  text(): string {
    if (!this.cut) return this.head;
    const head = this.head.slice(0, this.head.lastIndexOf('\n') + 1);
    return head + this.tail.slice(this.tail.indexOf('\n') + 1);
  }
}

function errorMessage(stderr: string): string {
  return summarize(stderrMessages(stderr));
}

/** restic's messages in its stderr, JSON or plain, in order. */
function stderrMessages(stderr: string): string[] {
  const messages: string[] = [];
  for (const line of stderr.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    if (trimmed.startsWith('{')) {
      try {
        const parsed = JSON.parse(trimmed) as { message?: string; error?: { message?: string }; item?: string };
        const text = parsed.message ?? parsed.error?.message;
        if (text) messages.push(parsed.item ? `${parsed.item}: ${text}` : text);
        continue;
      } catch {
        // fall through to the plain line
      }
    }
    messages.push(trimmed);
  }
  return messages;
}

function summarize(messages: string[]): string {
  // With --stdin-from-command, the command's own complaint (e.g. pg_dump's "error: … permission
  // denied") is the cause; restic's closing lines only say that the command failed.
  const fromCommand = messages
    .filter((m) => m.startsWith('subprocess '))
    .map((m) => m.replace(/^subprocess [^:]*: /, ''));
  if (fromCommand.length > 0) return fromCommand.slice(0, 3).join('; ').slice(0, 500);
  return messages.slice(-3).join('; ').slice(0, 500);
}

function toProgress(line: string): ResticProgress | undefined {
  try {
    const s = JSON.parse(line) as Record<string, unknown>;
    return {
      percentDone: num(s.percent_done),
      filesDone: num(s.files_done ?? s.files_restored),
      filesTotal: num(s.total_files),
      bytesDone: num(s.bytes_done ?? s.bytes_restored),
      bytesTotal: num(s.total_bytes),
    };
  } catch {
    return undefined;
  }
}

function toBackupSummary(lines: Record<string, unknown>[]): BackupSummary {
  const s = lines.find((l) => l.message_type === 'summary');
  if (!s || typeof s.snapshot_id !== 'string')
    throw new ResticError('restic backup printed no snapshot id', 0, 'failed');
  return {
    snapshotId: s.snapshot_id,
    filesNew: num(s.files_new),
    filesChanged: num(s.files_changed),
    filesUnmodified: num(s.files_unmodified),
    dataAdded: num(s.data_added),
    totalFiles: num(s.total_files_processed),
    totalBytes: num(s.total_bytes_processed),
  };
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}
