// restic, driven with --json. restic does the hard parts (content-defined chunking,
// deduplication, compression, encryption, integrity); this class only runs it and reads its
// JSON lines. The password travels in the child's environment, never in arguments or logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { resolveTool } from '../platform/tools';
import { decodeTags, type TaggedSnapshot } from '../domain/cross-section';

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
}

/** Fatal errors about the request itself, which the same request would meet again. */
const REFUSALS =
  /no matching ID found|snapshot is empty|invalid (id|pattern|snapshot)|is not a directory|unknown flag/i;

/** restic's documented exit codes. */
const EXIT = { noRepository: 10, lockFailed: 11, wrongPassword: 12, incompleteBackup: 3 } as const;

export class ResticError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly kind: 'no-repository' | 'wrong-password' | 'locked' | 'incomplete' | 'refused' | 'failed' | 'cancelled',
    /** For an incomplete backup: the partial snapshot restic wrote anyway. */
    readonly snapshotId?: string,
  ) {
    super(message);
    this.name = 'ResticError';
  }
}

export class ResticRepository {
  private readonly binary: string;
  private initialized = false;

  constructor(private readonly options: ResticOptions) {
    this.binary = options.binary ?? resolveTool('restic');
  }

  get location(): string {
    return this.options.repository;
  }

  /** Creates the repository on first use; safe when several processes race to do it. */
  async ensureInitialized(): Promise<void> {
    if (this.initialized) return;
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
    return toBackupSummary(lines);
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
    return toBackupSummary(lines);
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
    return toBackupSummary(lines);
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
    consumer.stdin.on('error', () => undefined); // a consumer that fails closes its stdin early
    const outcome = (child: ChildProcess, name: string) =>
      new Promise<void>((resolve, reject) => {
        let stderr = '';
        child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-8192)));
        child.on('error', (err) => reject(new ResticError(`could not run ${name}: ${err.message}`, null, 'failed')));
        child.on('close', (code) =>
          code === 0
            ? resolve()
            : reject(new ResticError(`${name} exited with ${String(code)}: ${errorMessage(stderr)}`, code, 'failed')),
        );
      });
    const onAbort = () => {
      dump.kill('SIGINT');
      consumer.kill('SIGINT');
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await Promise.all([outcome(dump, 'restic dump'), outcome(consumer, path.basename(args.consumer.command))]);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Restores a snapshot in place. By default the whole tree: writing only what differs
   * (`--overwrite if-changed`) and deleting what the snapshot does not hold (`--delete`).
   * With `includeFile`, only the listed paths, each checked block by block
   * (`--overwrite always` compares content, not size and mtime) and nothing deleted.
   */
  async restore(
    args: { snapshotId: string; target: string; includeFile?: string },
    options: RunOptions = {},
  ): Promise<RestoreSummary> {
    const selection = args.includeFile
      ? ['--include-file', args.includeFile, '--overwrite', 'always']
      : ['--overwrite', 'if-changed', '--delete'];
    const lines = await this.run(['restore', args.snapshotId, '--target', args.target, ...selection], options);
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
    const lines = await this.run(['snapshots', '--no-lock', ...(tags.length ? ['--tag', tags.join(',')] : [])]);
    const list = (lines[0] ?? []) as unknown as { id: string; time: string; tags?: string[] }[];
    const tagged: TaggedSnapshot[] = [];
    for (const s of Array.isArray(list) ? list : []) {
      const labels = decodeTags(s.tags ?? []);
      if (labels) tagged.push({ id: s.id, time: s.time, labels });
    }
    return tagged;
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
    await this.run(['forget', '--retry-lock', '2m', ...snapshotIds]);
  }

  /** Runs restic with --json and returns its JSON stdout lines. */
  async run(args: string[], options: RunOptions = {}): Promise<Record<string, unknown>[]> {
    const out = await this.runRaw(['--json', ...args], options);
    const lines: Record<string, unknown>[] = [];
    for (const line of out.toString('utf8').split('\n')) {
      if (!line.startsWith('{') && !line.startsWith('[')) continue;
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // restic interleaves the odd plain-text warning; those are not results.
      }
    }
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

  private runRaw(args: string[], options: RunOptions = {}): Promise<Buffer> {
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
      let stderr = '';
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
      child.stderr.on('data', (chunk: Buffer) => {
        if (stderr.length < 64 * 1024) stderr += chunk.toString('utf8');
      });
      child.on('error', (err) => {
        options.signal?.removeEventListener('abort', onAbort);
        reject(new ResticError(`could not run ${command}: ${err.message}`, null, 'failed'));
      });
      child.on('close', (code) => {
        options.signal?.removeEventListener('abort', onAbort);
        if (pending) stdout.push(Buffer.from(pending));
        if (code === 0) return resolve(Buffer.concat(stdout));
        if (cancelled) return reject(new ResticError('restic was cancelled', code, 'cancelled'));
        reject(toResticError(args, code, stderr, Buffer.concat(stdout).toString('utf8')));
      });
      child.stdin.on('error', () => undefined); // restic may exit before reading stdin
      child.stdin.end(options.stdin ?? '');
    });
  }
}

function toResticError(args: string[], code: number | null, stderr: string, stdout: string): ResticError {
  const message = errorMessage(stderr) || `exit code ${String(code)}`;
  const what = `restic ${args.filter((a) => a !== '--json')[0] ?? ''}`;
  switch (code) {
    case EXIT.noRepository:
      return new ResticError(`${what}: repository does not exist`, code, 'no-repository');
    case EXIT.wrongPassword:
      return new ResticError(`${what}: wrong repository password`, code, 'wrong-password');
    case EXIT.lockFailed:
      return new ResticError(`${what}: repository is locked: ${message}`, code, 'locked');
    case EXIT.incompleteBackup:
      return new ResticError(
        `${what}: some files could not be read: ${message}`,
        code,
        'incomplete',
        /"snapshot_id":"([0-9a-f]+)"/.exec(stdout)?.[1],
      );
    default:
      return new ResticError(`${what}: ${message}`, code, REFUSALS.test(message) ? 'refused' : 'failed');
  }
}

function errorMessage(stderr: string): string {
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
