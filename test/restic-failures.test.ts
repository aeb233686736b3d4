// restic failures that retrying cannot fix, and one that it can once cleared: a stale lock left by
// a restic killed mid-way (cleared with `restic unlock`, which removes only stale locks), a
// repository whose data is damaged, and a target file system that is full or read-only. All
// against real restic and real files; a tmpfs is mounted where the machine allows it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { toApplicationFailure } from '../src/activities/failures';
import type { ComponentSnapshot } from '../src/domain/cross-section';
import { resolveTool } from '../src/platform/tools';
import { ResticError, ResticRepository } from '../src/snapshots/restic';
import { SnapshotStore } from '../src/snapshots/store';
import { damageLargestPack, filesAgent } from './support/agent';
import { createTestEnv, eventually, readTree, type TestEnv } from './support/harness';
import { tempDir } from './support/temp';

const dir = tempDir('rewind-restic-failures-');
const PASSWORD = 'pw';

function resticEnv(repository: string): NodeJS.ProcessEnv {
  return { ...process.env, RESTIC_REPOSITORY: repository, RESTIC_PASSWORD: PASSWORD, RESTIC_PROGRESS_FPS: '2' };
}

/** The repository's lock files; restic's local backend writes each as `<id>-tmp-<n>` first, then renames it. */
function lockFiles(repository: string): string[] {
  return readdirSync(path.join(repository, 'locks')).filter((f) => !f.includes('-tmp-'));
}

/** Random (incompressible) files, so that restic takes seconds to store them. */
function writeRandomFiles(root: string, files: number, bytesEach: number): void {
  mkdirSync(root, { recursive: true });
  for (let i = 0; i < files; i++) writeFileSync(path.join(root, `blob-${i}.bin`), randomBytes(bytesEach));
}

/** Rejects when `promise` has not settled within `ms`, so a hang fails the test with a reason. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000}s`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function exited(child: ChildProcess): Promise<NodeJS.Signals | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
}

/** A restic process of our own on `repository`, started in `cwd` with `args`. */
function startRestic(repository: string, args: string[], cwd = dir): ChildProcess {
  return spawn(resolveTool('restic'), args, { cwd, env: resticEnv(repository), stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Kills a restic process once it holds a lock, leaving that lock behind: a stale lock. */
async function killOnceLocked(repository: string, child: ChildProcess, before: string[] = []): Promise<string> {
  const lock = await eventually(
    () => lockFiles(repository).find((f) => !before.includes(f)),
    'restic to take its lock',
    30_000,
  );
  child.kill('SIGKILL');
  expect(await within(10_000, 'the killed restic to exit', exited(child))).toBe('SIGKILL');
  expect(lockFiles(repository)).toContain(lock);
  return lock;
}

/**
 * A live exclusive lock for as long as the returned process runs: `restic key passwd` takes
 * the exclusive lock, then waits to read the new password from a FIFO that nobody writes.
 * It is killed with SIGKILL, never fed, so the password never changes.
 */
async function holdExclusiveLock(repository: string): Promise<{ child: ChildProcess; lock: string }> {
  const fifo = path.join(dir, `never-written-${randomBytes(4).toString('hex')}`);
  const made = spawnSync('mkfifo', [fifo]);
  if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr.toString()}`);
  const before = lockFiles(repository);
  const child = startRestic(repository, ['key', 'passwd', '--new-password-file', fifo]);
  const lock = await eventually(
    () => lockFiles(repository).find((f) => !before.includes(f)),
    'restic key passwd to take its exclusive lock',
    30_000,
  );
  return { child, lock };
}

describe('stale restic locks', () => {
  const small = path.join(dir, 'small');
  const big = path.join(dir, 'big');

  beforeAll(() => {
    mkdirSync(small);
    writeFileSync(path.join(small, 'app.yaml'), 'release: v1\n');
    writeRandomFiles(big, 6, 16 << 20);
  });

  /** A repository of the test's own, so that what one test leaves cannot fail another. */
  async function freshRepository(name: string): Promise<{ repository: string; restic: ResticRepository }> {
    const repository = path.join(dir, name);
    const restic = new ResticRepository({ repository, password: PASSWORD });
    await restic.ensureInitialized();
    return { repository, restic };
  }

  it('a forget after a backup killed mid-way clears the stale lock and succeeds in seconds', async () => {
    const { repository, restic } = await freshRepository('killed-backup-repo');
    const kept = await restic.backup({ directory: small, host: 'production', tags: ['kept'] });
    const forgotten = await restic.backup({ directory: small, host: 'production', tags: ['forgotten'] });
    // A backup of ~100 MB of new data, killed while it holds its lock, as a SIGKILL of the
    // agent that ran it would leave it.
    const backup = startRestic(repository, ['backup', '--json', '.'], big);
    const stale = await killOnceLocked(repository, backup);

    const started = Date.now();
    await within(30_000, 'restic forget', restic.forget([forgotten.snapshotId]));
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(lockFiles(repository)).not.toContain(stale);
    expect(lockFiles(repository)).toEqual([]);
    const left = (await restic.run(['snapshots', '--no-lock'])) as unknown as { id: string }[][];
    const ids = (left[0] ?? []).map((s) => s.id);
    expect(ids).toContain(kept.snapshotId);
    expect(ids).not.toContain(forgotten.snapshotId);
  });

  it('runs again when another restic was creating the cache it opened (two agents of one host starting together)', async () => {
    const { repository } = await freshRepository('cache-race-repo');
    const cacheDir = path.join(dir, 'cache-race-cache');
    // restic behind a wrapper that plays the other process: once a run ends, the version file
    // the other process was writing is complete.
    const wrapper = path.join(dir, 'restic-finishing-the-cache');
    writeFileSync(
      wrapper,
      '#!/bin/sh\n"$REAL_RESTIC" "$@"; code=$?\n[ -s "$VERSION_FILE" ] || printf %s "$VERSION_TEXT" > "$VERSION_FILE"\nexit $code\n',
    );
    chmodSync(wrapper, 0o755);
    const plain = new ResticRepository({ repository, password: PASSWORD, env: { RESTIC_CACHE_DIR: cacheDir } });
    const before = await plain.run(['snapshots']);
    // The cache holds one folder, named by the repository's id.
    const [id] = readdirSync(cacheDir).filter((n) => /^[0-9a-f]{64}$/.test(n));
    const version = path.join(cacheDir, id!, 'version');
    const written = readFileSync(version, 'utf8');
    // The moment the other restic has created the version file and not yet written it.
    writeFileSync(version, '');
    const restic = new ResticRepository({
      repository,
      password: PASSWORD,
      binary: wrapper,
      env: {
        RESTIC_CACHE_DIR: cacheDir,
        REAL_RESTIC: resolveTool('restic'),
        VERSION_FILE: version,
        VERSION_TEXT: written,
      },
    });

    const after = await restic.run(['snapshots']);

    expect(after).toEqual(before);
    expect(readFileSync(version, 'utf8')).toBe(written);
  });

  it('a backup after a killed exclusive command clears its stale lock and succeeds', async () => {
    const { repository, restic } = await freshRepository('killed-exclusive-repo');
    const { child } = await holdExclusiveLock(repository);
    const stale = await killOnceLocked(repository, child);
    const started = Date.now();
    const summary = await within(
      30_000,
      'restic backup',
      restic.backup({ directory: small, host: 'production', tags: ['after-stale'] }),
    );
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(summary.snapshotId).toMatch(/^[0-9a-f]{64}$/);
    expect(lockFiles(repository)).not.toContain(stale);
  });

  it('leaves a live lock alone and fails with a retryable error naming its holder', async () => {
    const { repository, restic } = await freshRepository('live-lock-repo');
    const { child, lock } = await holdExclusiveLock(repository);
    try {
      const err = await restic.backup({ directory: small, host: 'production', tags: ['blocked'] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ResticError);
      expect(err).toMatchObject({ kind: 'locked', exitCode: 11 });
      const message = (err as ResticError).message;
      expect(message).toContain(`restic backup: the repository is locked by PID ${child.pid} on ${os.hostname()}`);
      expect(message).toContain('not stale');
      expect(message).not.toContain('\n');
      // restic unlock removed nothing: the holder is alive.
      expect(lockFiles(repository)).toContain(lock);
      const failure = toApplicationFailure(err) as ApplicationFailure;
      expect(failure).toBeInstanceOf(ApplicationFailure);
      expect(failure).toMatchObject({ type: 'ResticFailed', nonRetryable: false });
    } finally {
      child.kill('SIGKILL');
      await exited(child);
    }
  });
});

/** The processes whose parent is `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return children;
}

function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** Whether a process is gone and reaped (restic's kill(pid, 0) still finds a zombie). */
function processGone(pid: number): boolean {
  return !existsSync(`/proc/${pid}`);
}

describe('agent killed during prepare, while restic backs up', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({
      environments: { production: { config: { format: 'config' }, data: {} } },
      externalAgents: ['production'],
      policy: { heartbeatTimeout: '3s' },
    });
  });
  afterAll(() => env.teardown());

  it('finishes within a minute of the agent restart: the stale lock is cleared, not waited on', async () => {
    const first = env.spawnAgent('production');
    const config = env.componentPath('production', 'config');
    const data = env.componentPath('production', 'data');
    const repository = path.join(env.dir, 'repo');
    writeFileSync(path.join(config, 'app.yaml'), 'release: v1\n');
    writeFileSync(path.join(data, 'seed.txt'), 'v1\n');
    const v1 = readTree(path.join(env.dir, 'envs', 'production'));
    await env.snapshot('production', { version: 'v1' });
    // The bad release wrote 256 MB in 64 files, so the safety snapshot takes restic seconds to
    // store, and its listing is too large for a tag: it is a listing snapshot of its own.
    writeFileSync(path.join(config, 'app.yaml'), 'release: v2\n');
    writeRandomFiles(data, 64, 4 << 20);

    const snapshotsDir = path.join(repository, 'snapshots');
    const before = readdirSync(snapshotsDir).length;
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    // The moment to kill: restic is storing data's files, holding its lock, and the listing
    // stored beside them is written (with config's snapshot, which carries its small listing in
    // its tags: two new ones), so the retried step finds a partial snapshot and must forget it,
    // which takes the exclusive lock.
    const dataBackup = () =>
      childrenOf(first.pid!).find((pid) => {
        const argv = commandLine(pid);
        return argv.includes('backup') && !argv.includes('--stdin');
      });
    const restic = await eventually(
      () =>
        (readdirSync(snapshotsDir).length >= before + 2 && lockFiles(repository).length > 0 && dataBackup()) ||
        undefined,
      'the safety snapshot of data to be under way',
      90_000,
    );
    // The agent dies with its restic, as when the host kills the agent's whole process group.
    // restic first, and the agent reaps it: a killed orphan may stay a zombie here (its new
    // parent need not reap it), and restic rightly calls the lock of a zombie live.
    process.kill(restic, 'SIGKILL');
    await eventually(() => processGone(restic) || undefined, 'the killed restic to be reaped', 10_000);
    first.kill('SIGKILL');
    expect(await within(10_000, 'the agent to exit', exited(first))).toBe('SIGKILL');
    const stale = lockFiles(repository);
    expect(stale.length).toBeGreaterThan(0);

    const restarted = Date.now();
    env.spawnAgent('production');
    await env.waitFor(id, (s) => s.state === 'awaiting-approval', 90_000);
    await env.client.decide(id, 'approve', { user: 'bob' });
    const { status } = await env.finalStatus(id, 90_000);
    const took = Date.now() - restarted;
    expect(status.state).toBe('completed');
    expect(took).toBeLessThan(60_000);
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(v1);
    for (const lock of stale) expect(lockFiles(repository)).not.toContain(lock);
  });
});

describe('damaged repository data', () => {
  const repository = path.join(dir, 'damaged-repo');
  const store = new SnapshotStore(new ResticRepository({ repository, password: PASSWORD }));
  const componentDir = path.join(dir, 'models');

  it('a restore that needs a corrupted pack fails at once, non-retryable, saying the data is damaged', async () => {
    mkdirSync(componentDir);
    writeFileSync(path.join(componentDir, 'model.bin'), randomBytes(256 << 10));
    writeFileSync(path.join(componentDir, 'app.yaml'), 'release: v1\n');
    await store.restic.ensureInitialized();
    const activities = filesAgent({
      dir,
      repository,
      store,
      components: { models: componentDir },
      dataDir: path.join(dir, 'agent-data'),
    });
    const snapshot: ComponentSnapshot = await new MockActivityEnvironment().run(activities.snapshotComponent, {
      environment: 'production',
      component: 'models',
      crossSectionId: 'xs-20261129-000000-dmgd',
      members: ['models'],
      origin: 'manual' as const,
    });

    // The model's 256 KiB are in the largest pack; flip bytes in its middle.
    const pack = damageLargestPack(repository);
    expect(pack.size).toBeGreaterThan(256 << 10);

    writeFileSync(path.join(componentDir, 'model.bin'), randomBytes(256 << 10)); // the bad release
    const started = Date.now();
    const err = await new MockActivityEnvironment()
      .run(activities.restoreComponent, {
        environment: 'production',
        component: 'models',
        snapshotId: snapshot.snapshotId,
        listingSnapshotId: snapshot.listingSnapshotId,
        fingerprint: snapshot.fingerprint,
        purpose: 'rollback' as const,
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'ResticRefused', nonRetryable: true });
    const message = (err as ApplicationFailure).message;
    expect(message).toMatch(/^restic restore: the repository data is damaged: /);
    expect(message).toContain('ciphertext verification failed');
    expect(message).toContain('restic check --read-data');
  });
});

/** Whether this process may mount a tmpfs (root, or a user namespace that allows it). */
function canMountTmpfs(): boolean {
  if (os.platform() !== 'linux') return false;
  const probe = path.join(os.tmpdir(), `rewind-mount-probe-${process.pid}`);
  mkdirSync(probe, { recursive: true });
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]).status === 0;
  if (mounted) spawnSync('umount', [probe]);
  spawnSync('rmdir', [probe]);
  return mounted;
}

describe('a restore target that is full or read-only', () => {
  const repository = path.join(dir, 'fs-repo');
  const restic = new ResticRepository({ repository, password: PASSWORD });
  const source = path.join(dir, 'fs-source');
  const mounts: string[] = [];
  let snapshotId = '';
  const mountable = canMountTmpfs();

  beforeAll(async () => {
    writeRandomFiles(source, 1, 256 << 10);
    writeFileSync(path.join(source, 'app.yaml'), 'release: v1\n');
    await restic.ensureInitialized();
    snapshotId = (await restic.backup({ directory: source, host: 'production', tags: ['fs'] })).snapshotId;
  });
  afterAll(() => {
    for (const m of mounts) spawnSync('umount', [m]);
  });

  function tmpfs(name: string, options: string): string {
    const target = path.join(dir, name);
    mkdirSync(target);
    const result = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', target]);
    if (result.status !== 0) throw new Error(`mount failed: ${result.stderr.toString()}`);
    mounts.push(target);
    return target;
  }

  async function restoreFailure(target: string): Promise<ApplicationFailure> {
    const err = await restic.restore({ snapshotId, target }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ResticError);
    const failure = toApplicationFailure(err);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    return failure as ApplicationFailure;
  }

  (mountable ? it : it.skip)('a full file system: non-retryable, naming the cause (real 64 KiB tmpfs)', async () => {
    const failure = await restoreFailure(tmpfs('full', 'size=64k'));
    expect(failure).toMatchObject({ type: 'ComponentUnavailable', nonRetryable: true });
    expect(failure.message).toMatch(/^restic restore: the file system is full: .*no space left on device/);
  });

  (mountable ? it : it.skip)('a read-only file system: non-retryable, naming the cause (real tmpfs)', async () => {
    const failure = await restoreFailure(tmpfs('read-only', 'ro,size=64k'));
    expect(failure).toMatchObject({ type: 'ComponentUnavailable', nonRetryable: true });
    expect(failure.message).toMatch(/^restic restore: the file system is read-only: .*read-only file system/);
  });

  it('is classified the same from restic 0.19.1’s own output, where no tmpfs can be mounted', async () => {
    // What restic 0.19.1 printed (stderr, --json) for the two tmpfs restores above, replayed by
    // a stand-in binary so that the classification is tested on any machine.
    const cases = [
      {
        stderr: [
          '{"message_type":"error","error":{"message":"write /mnt/full/app/model.bin: no space left on device"},"during":"restore","item":"/model.bin"}',
          '{"message_type":"exit_error","code":1,"message":"Fatal: There were 2 errors"}',
        ],
        type: 'ComponentUnavailable',
        message: /^restic restore: the file system is full: \/model.bin: write .*: no space left on device/,
      },
      {
        stderr: [
          '{"message_type":"error","error":{"message":"mkdir /mnt/ro/app: read-only file system"},"during":"restore","item":"/app"}',
          ...Array.from(
            { length: 4 },
            (_, i) =>
              `{"message_type":"error","error":{"message":"lchown /mnt/ro/app/${i}: no such file or directory"},"during":"restore","item":"/app/${i}"}`,
          ),
          '{"message_type":"exit_error","code":1,"message":"Fatal: There were 6 errors"}',
        ],
        type: 'ComponentUnavailable',
        message: /^restic restore: the file system is read-only: \/app: mkdir \/mnt\/ro\/app: read-only file system/,
      },
      {
        stderr: [
          'Load(<data/8f09e46968>, 247, 318) failed: file is too short',
          '{"message_type":"error","error":{"message":"ReadFull(\\u003cdata/8f09e46968\\u003e): file is too short"},"during":"restore","item":"/"}',
          '{"message_type":"exit_error","code":1,"message":"Fatal: There were 2 errors"}',
        ],
        type: 'ResticRefused',
        message: /^restic restore: the repository data is damaged: .*file is too short/,
      },
      {
        stderr: [
          '{"message_type":"exit_error","code":1,"message":"LoadRaw(\\u003cindex/b047d11b83\\u003e): invalid data returned"}',
        ],
        type: 'ResticRefused',
        message: /^restic restore: the repository data is damaged: .*invalid data returned/,
      },
      {
        code: 2,
        stderr: ['panic: runtime error: index out of range [3] with length 3', '', 'goroutine 1 [running]:'],
        type: 'ResticRefused',
        message: /^restic restore: restic crashed \(exit code 2\): panic: runtime error: index out of range/,
      },
      {
        // restic before 0.17 says it in plain words and exits with 1; the holder is on another host.
        stderr: [
          'unable to create lock in backend: repository is already locked by PID 4242 on otherhost by deploy (UID 1000, GID 1000)',
          'lock was created at 2026-11-29 10:00:00 (5m0.5s ago)',
          'storage ID 0123abcd',
          'the `unlock` command can be used to remove stale locks',
        ],
        type: 'ResticFailed',
        message:
          /^restic restore: the repository is locked by PID 4242 on otherhost by deploy \(UID 1000, GID 1000\), since 2026-11-29 10:00:00\. The lock is not stale/,
        retryable: true,
      },
      {
        stderr: [
          '{"message_type":"exit_error","code":1,"message":"Fatal: unable to open repository: connection reset by peer"}',
        ],
        type: 'ResticFailed',
        message: /connection reset by peer/,
        retryable: true,
      },
    ];
    for (const [i, c] of cases.entries()) {
      const stderrFile = path.join(dir, `replay-${i}.txt`);
      writeFileSync(stderrFile, c.stderr.join('\n') + '\n');
      const binary = path.join(dir, `replay-${i}.sh`);
      writeFileSync(binary, `#!/bin/sh\ncat '${stderrFile}' >&2\nexit ${c.code ?? 1}\n`);
      chmodSync(binary, 0o755);
      const replay = new ResticRepository({ repository, password: PASSWORD, binary });
      const err = await replay.restore({ snapshotId, target: path.join(dir, 'unused') }).then(
        () => undefined,
        (e: unknown) => e,
      );
      const failure = toApplicationFailure(err) as ApplicationFailure;
      expect(failure).toBeInstanceOf(ApplicationFailure);
      expect({ case: i, type: failure.type, nonRetryable: failure.nonRetryable }).toEqual({
        case: i,
        type: c.type,
        nonRetryable: !c.retryable,
      });
      expect(failure.message).toMatch(c.message);
    }
    expect(existsSync(path.join(dir, 'unused'))).toBe(false);
  });
});
