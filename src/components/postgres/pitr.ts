// Point-in-time recovery of a PostgreSQL cluster that the environment's agent manages: WAL is
// archived into a folder rewind owns, base backups are taken with each snapshot, and recovery
// replays the archive onto the newest base backup before the target time, then promotes.
//
// PostgreSQL's programs refuse to run as root, so when the agent is root they run as the
// cluster's OS user (`runuser`).
import { execFileSync } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runProgram } from '../../platform/process';
import { DatabaseError, withPostgres } from './connect';
import type { PgBin } from './tools';

export interface PitrConfig {
  /** The cluster's data directory. */
  dataDir: string;
  /** Where archive_command copies WAL segments. */
  archiveDir: string;
  /** Where base backups go, one folder each. */
  baseBackupDir: string;
  /** The OS user the cluster runs as (default: postgres, when the agent is root). */
  osUser?: string;
}

export interface BaseBackup {
  id: string;
  dir: string;
  startedAt: string;
  finishedAt: string;
}

const META = 'rewind-base-backup.json';
const MARKER = 'rewind-pitr.json';

export class ManagedCluster {
  private readonly osUser: string | undefined;

  constructor(
    private readonly config: PitrConfig,
    /** A connection URL to the cluster (any database; the maintenance one serves). */
    private readonly url: string,
    private readonly bin: PgBin,
  ) {
    this.osUser = process.getuid?.() === 0 ? (config.osUser ?? 'postgres') : undefined;
  }

  /**
   * Where a server started by rewind writes its output. pg_ctl must always be given one: a
   * server started without it inherits pg_ctl's output pipes and holds them open forever.
   */
  private serverLog(): string {
    return path.join(this.config.dataDir, 'rewind-server.log');
  }

  /** Runs a PostgreSQL program as the cluster's OS user. */
  private run(tool: 'pg_ctl' | 'pg_basebackup', args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
    const binary = this.bin.tool(tool);
    if (!this.osUser) return runProgram(binary, args, { env });
    // runuser without --login keeps the environment (but HOME, SHELL, USER and LOGNAME), so the
    // password travels there, never in arguments a process listing would show.
    return runProgram('runuser', ['-u', this.osUser, '--', binary, ...args], { env });
  }

  /** A folder the cluster's OS user owns. */
  private ownedDir(dir: string): string {
    mkdirSync(dir, { recursive: true });
    if (this.osUser) {
      const uid = Number(execFileSync('id', ['-u', this.osUser], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', this.osUser], { encoding: 'utf8' }).trim());
      chownSync(dir, uid, gid);
    }
    return dir;
  }

  /**
   * Turns WAL archiving on into the archive folder. archive_mode needs a restart, so this
   * restarts the cluster when it was off; archive_command alone only reloads.
   */
  async enableArchiving(): Promise<{ restarted: boolean }> {
    this.ownedDir(this.config.archiveDir);
    const command = `test ! -f '${this.config.archiveDir}/%f' && cp %p '${this.config.archiveDir}/%f'`;
    const mode = await withPostgres(this.url, async (client) => {
      await client.query(`ALTER SYSTEM SET archive_command = '${command.replace(/'/g, "''")}'`);
      await client.query("ALTER SYSTEM SET wal_level = 'replica'");
      const { rows } = await client.query<{ archive_mode: string }>('SHOW archive_mode');
      if (rows[0]?.archive_mode !== 'on') await client.query("ALTER SYSTEM SET archive_mode = 'on'");
      await client.query('SELECT pg_reload_conf()');
      return rows[0]?.archive_mode;
    });
    if (mode === 'on') return { restarted: false };
    await this.run('pg_ctl', [
      'restart',
      '-D',
      this.config.dataDir,
      '-m',
      'fast',
      '-w',
      '-t',
      '60',
      '-l',
      this.serverLog(),
    ]);
    return { restarted: true };
  }

  async archivingEnabled(): Promise<boolean> {
    return withPostgres(this.url, async (client) => {
      const { rows } = await client.query<{ archive_mode: string }>('SHOW archive_mode');
      return rows[0]?.archive_mode === 'on';
    });
  }

  /** A base backup (plain format, with the WAL it needs), labelled with when it started and ended. */
  async baseBackup(id: string): Promise<BaseBackup> {
    const root = this.ownedDir(this.config.baseBackupDir);
    const dir = path.join(root, id);
    if (existsSync(path.join(dir, META))) return JSON.parse(readFileSync(path.join(dir, META), 'utf8')) as BaseBackup;
    rmSync(dir, { recursive: true, force: true }); // what an interrupted attempt left
    const startedAt = new Date().toISOString();
    const { host, port, user } = connectionParts(this.url);
    await this.run(
      'pg_basebackup',
      ['-D', dir, '-Fp', '-X', 'stream', '-c', 'fast', '-h', host, '-p', port, '-U', user, '--no-password'],
      passwordEnv(this.url),
    );
    const backup: BaseBackup = { id, dir, startedAt, finishedAt: new Date().toISOString() };
    writeFileSync(path.join(dir, META), JSON.stringify(backup));
    return backup;
  }

  baseBackups(): BaseBackup[] {
    if (!existsSync(this.config.baseBackupDir)) return [];
    return readdirSync(this.config.baseBackupDir)
      .map((name) => path.join(this.config.baseBackupDir, name, META))
      .filter((meta) => existsSync(meta))
      .map((meta) => JSON.parse(readFileSync(meta, 'utf8')) as BaseBackup)
      .sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  }

  /** The newest base backup that was complete before `time`. */
  baseBackupBefore(time: Date): BaseBackup | undefined {
    return this.baseBackups()
      .filter((b) => Date.parse(b.finishedAt) < time.getTime())
      .at(-1);
  }

  /** Closes the current WAL segment and waits until the archiver has copied it. */
  async archiveCurrentWal(timeoutMs = 60_000): Promise<void> {
    await withPostgres(this.url, async (client) => {
      const { rows } = await client.query<{ segment: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS segment');
      const segment = rows[0]!.segment;
      const deadline = Date.now() + timeoutMs;
      while (!existsSync(path.join(this.config.archiveDir, segment))) {
        if (Date.now() > deadline)
          throw new DatabaseError(
            `WAL segment ${segment} was not archived within ${timeoutMs / 1000}s; check archive_command`,
            'sql',
          );
        await sleep(100);
      }
    });
  }

  /** Where recovery `key` keeps the data directory it replaced. */
  private asideDirFor(key: string): string {
    return `${this.config.dataDir}.before-${key.replace(/[^A-Za-z0-9._-]/g, '_').slice(-60)}`;
  }

  /** Whether recovery `key` got as far as moving the data directory aside. */
  touchedBy(key: string): boolean {
    return existsSync(this.asideDirFor(key)) || this.lastRecovery()?.key === key;
  }

  /** What the last recovery of this cluster did, if it was rewind's. */
  lastRecovery(): { key: string; time: string; baseBackup: string } | undefined {
    const file = path.join(this.config.dataDir, MARKER);
    return existsSync(file)
      ? (JSON.parse(readFileSync(file, 'utf8')) as { key: string; time: string; baseBackup: string })
      : undefined;
  }

  /**
   * Recovers the cluster to `time`: stop it, keep its data directory aside, lay down the base
   * backup, replay archived WAL up to the target and promote. The old data directory stays
   * beside the new one (`<dataDir>.before-<key>`) until an operator removes it.
   */
  async recoverTo(
    time: Date,
    key: string,
    onStage: (stage: string) => void = () => undefined,
  ): Promise<{ baseBackup: BaseBackup; asideDir: string }> {
    const backup = this.baseBackupBefore(time);
    if (!backup)
      throw new DatabaseError(
        `no base backup finished before ${time.toISOString()}; point-in-time recovery cannot reach it`,
        'version',
      );
    onStage('archive current WAL');
    await this.archiveCurrentWal();
    onStage('stop cluster');
    await this.run('pg_ctl', ['stop', '-D', this.config.dataDir, '-m', 'fast', '-w', '-t', '60']);
    const asideDir = this.asideDirFor(key);
    if (existsSync(asideDir))
      throw new DatabaseError(`${asideDir} already exists; remove it or keep it, then retry`, 'sql');
    renameSync(this.config.dataDir, asideDir);
    onStage('lay down base backup');
    await runProgram('cp', ['-a', backup.dir, this.config.dataDir]);
    const conf = path.join(this.config.dataDir, 'postgresql.auto.conf');
    const settings = [
      `restore_command = 'cp "${this.config.archiveDir}/%f" "%p"'`,
      // PostgreSQL's recovery_target_time check rejects ISO 8601's "T" and "Z".
      `recovery_target_time = '${time.toISOString().replace('T', ' ').replace('Z', '+00')}'`,
      "recovery_target_action = 'promote'",
    ];
    writeFileSync(
      conf,
      `${readFileSync(conf, 'utf8')}\n# rewind point-in-time recovery (${key})\n${settings.join('\n')}\n`,
    );
    writeFileSync(path.join(this.config.dataDir, 'recovery.signal'), '');
    for (const file of ['postmaster.pid', META]) {
      if (existsSync(path.join(this.config.dataDir, file)))
        renameSync(path.join(this.config.dataDir, file), path.join(asideDir, `${file}.from-backup`));
    }
    onStage('replay WAL');
    await this.run('pg_ctl', ['start', '-D', this.config.dataDir, '-w', '-t', '300', '-l', this.serverLog()]);
    await this.waitForPromotion();
    await withPostgres(this.url, async (client) => {
      // Recovery settings do nothing once promoted; remove them so a restart starts cleanly.
      for (const setting of ['restore_command', 'recovery_target_time', 'recovery_target_action'])
        await client.query(`ALTER SYSTEM RESET ${setting}`);
      await client.query('SELECT pg_reload_conf()');
    });
    writeFileSync(
      path.join(this.config.dataDir, MARKER),
      JSON.stringify({ key, time: time.toISOString(), baseBackup: backup.id }),
    );
    return { baseBackup: backup, asideDir };
  }

  private async waitForPromotion(timeoutMs = 300_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const inRecovery = await withPostgres(this.url, async (client) => {
        const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
        return rows[0]?.r;
      }).catch(() => true);
      if (inRecovery === false) return;
      if (Date.now() > deadline)
        throw new DatabaseError(
          'the cluster did not finish recovery in time; see rewind-server.log in its data directory',
          'sql',
        );
      await sleep(200);
    }
  }
}

function connectionParts(url: string): { host: string; port: string; user: string } {
  const u = new URL(url);
  return { host: u.hostname, port: u.port || '5432', user: decodeURIComponent(u.username) || 'postgres' };
}

function passwordEnv(url: string): NodeJS.ProcessEnv {
  const password = decodeURIComponent(new URL(url).password);
  return password ? { PGPASSWORD: password } : {};
}
