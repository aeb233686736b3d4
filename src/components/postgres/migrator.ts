// A Flyway-compatible migrator on `pg`: migrate, undo (Flyway Teams' U scripts, free here),
// validate and info, reading and writing Flyway's own history table.
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { compareVersions, flywayLockNumber, historyTableDdl, quoteIdent, type MigrationScript } from './flyway';

export type MigrationState = 'pending' | 'success' | 'undone' | 'failed' | 'missing';
/** Flyway's states of a repeatable (R__) script: outdated means it changed since it last ran. */
export type RepeatableState = 'pending' | 'success' | 'outdated' | 'failed' | 'missing';

export interface HistoryRow {
  installedRank: number;
  version: string | null;
  description: string;
  type: string;
  script: string;
  checksum: number | null;
  installedBy: string;
  installedOn: Date;
  executionTime: number;
  success: boolean;
}

export interface MigrationInfo {
  category: 'versioned';
  version: string;
  description: string;
  script: string;
  /** The resolved script's checksum, else the recorded one. */
  checksum: number | null;
  state: MigrationState;
  installedOn?: string;
  installedBy?: string;
  executionTime?: number;
  /** The U script that undoes this version, if there is one. */
  undoScript?: string;
  /** When the script on disk is not the one that ran: the checksum recorded when it ran. */
  appliedChecksum?: number | null;
}

/** A repeatable script, which runs again whenever its checksum changes (Flyway's R__ scripts). */
export interface RepeatableInfo {
  category: 'repeatable';
  description: string;
  script: string;
  /** The script's checksum on disk, else the one recorded when it last ran. */
  checksum: number | null;
  state: RepeatableState;
  installedOn?: string;
  installedBy?: string;
  /** Outdated: the checksum recorded when it last ran (the next migrate runs it again). */
  appliedChecksum?: number | null;
}

export interface MigratorOptions {
  schema: string;
  table: string;
  migrations: MigrationScript[];
  /** How long to wait for another migrator's lock. */
  lockTimeoutMs?: number;
}

export class MigrationError extends Error {
  constructor(
    message: string,
    readonly kind: 'validation' | 'failed' | 'missing-undo' | 'lock' | 'target',
    readonly issues: string[] = [],
  ) {
    super(message);
    this.name = 'MigrationError';
  }
}

// Statements PostgreSQL refuses inside a transaction block.
const NON_TRANSACTIONAL =
  /\b(CREATE|DROP|REINDEX)\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\b|\bREINDEX\b[^;]*\bCONCURRENTLY\b|\bVACUUM\b|\b(CREATE|DROP)\s+DATABASE\b|\bALTER\s+SYSTEM\b|\b(CREATE|DROP)\s+TABLESPACE\b/i;

export function runsInTransaction(sql: string): boolean {
  return !NON_TRANSACTIONAL.test(stripComments(sql));
}

function stripComments(sql: string): string {
  return sql.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
}

export class Migrator {
  private readonly table: string;

  constructor(
    private readonly client: pg.Client,
    private readonly options: MigratorOptions,
  ) {
    this.table = `${quoteIdent(options.schema)}.${quoteIdent(options.table)}`;
  }

  async history(): Promise<HistoryRow[]> {
    if (!(await this.historyExists())) return [];
    const { rows } = await this.client.query<{
      installed_rank: number;
      version: string | null;
      description: string;
      type: string;
      script: string;
      checksum: number | null;
      installed_by: string;
      installed_on: Date;
      execution_time: number;
      success: boolean;
    }>(
      `SELECT installed_rank, version, description, type, script, checksum, installed_by, installed_on, execution_time, success
         FROM ${this.table} ORDER BY installed_rank`,
    );
    return rows.map((r) => ({
      installedRank: r.installed_rank,
      version: r.version,
      description: r.description,
      type: r.type,
      script: r.script,
      checksum: r.checksum,
      installedBy: r.installed_by,
      installedOn: r.installed_on,
      executionTime: r.execution_time,
      success: r.success,
    }));
  }

  /** Every versioned migration in version order, then every repeatable one, with its state. */
  async info(): Promise<{ current?: string; migrations: MigrationInfo[]; repeatables: RepeatableInfo[] }> {
    const history = await this.history();
    return {
      ...describeMigrations(this.options.migrations, history),
      repeatables: describeRepeatables(this.options.migrations, history),
    };
  }

  async currentVersion(): Promise<string | undefined> {
    return (await this.info()).current;
  }

  /** Problems that stop a migration: changed scripts, missing scripts, failed migrations. */
  async validate(): Promise<string[]> {
    return validationIssues(this.options.migrations, await this.history());
  }

  /** Applies pending migrations up to `target` (default: the latest), then changed repeatables. */
  async migrate(target?: string): Promise<{ applied: string[]; current?: string }> {
    return this.locked(async () => {
      await this.ensureHistoryTable();
      await this.refuseInvalid();
      const { migrations } = await this.info();
      if (
        target !== undefined &&
        !this.options.migrations.some((m) => m.kind === 'versioned' && compareVersions(m.version!, target) === 0)
      ) {
        throw new MigrationError(`no migration script has version ${target}`, 'target');
      }
      const pending = migrations.filter(
        (m) =>
          (m.state === 'pending' || m.state === 'undone') &&
          (target === undefined || compareVersions(m.version, target) <= 0),
      );
      const applied: string[] = [];
      const steps: { script: MigrationScript; version: string | null; name: string }[] = pending.map((m) => ({
        script: this.options.migrations.find((s) => s.kind === 'versioned' && s.version === m.version)!,
        version: m.version,
        name: m.version,
      }));
      if (target === undefined) {
        for (const script of await this.changedRepeatables())
          steps.push({ script, version: null, name: `R:${script.description}` });
      }
      for (const [i, step] of steps.entries()) {
        const row = { type: 'SQL' as const, version: step.version, description: step.script.description };
        const later = steps.slice(i + 1).map((x) => x.name);
        await this.runStep('migrate', step.script, row, applied, later);
        applied.push(step.name);
      }
      const current = await this.currentVersion();
      return { applied, ...(current !== undefined ? { current } : {}) };
    });
  }

  /**
   * Undoes applied migrations newer than `target`, newest first, with their U scripts, and
   * records each undo as Flyway Teams does (type UNDO_SQL). Every U script must exist before
   * anything runs.
   */
  async undo(target: string): Promise<{ undone: string[]; current?: string }> {
    return this.locked(async () => {
      await this.refuseInvalid();
      const { migrations } = await this.info();
      const known = migrations.some((m) => compareVersions(m.version, target) === 0) || /^0+$/.test(target);
      if (!known) throw new MigrationError(`no migration has version ${target}`, 'target');
      const toUndo = migrations
        .filter((m) => m.state === 'success' && compareVersions(m.version, target) > 0)
        .sort((a, b) => compareVersions(b.version, a.version));
      const missing = toUndo.filter((m) => !m.undoScript).map((m) => m.version);
      if (missing.length > 0) {
        throw new MigrationError(
          `cannot undo to ${target}: no U script for version${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`,
          'missing-undo',
          missing,
        );
      }
      const undone: string[] = [];
      for (const m of toUndo) {
        const script = this.options.migrations.find((s) => s.kind === 'undo' && s.version === m.version)!;
        await this.runStep(
          'undo',
          script,
          { type: 'UNDO_SQL', version: m.version, description: script.description },
          undone,
          toUndo.map((u) => u.version).filter((v) => v !== m.version && !undone.includes(v)),
        );
        undone.push(m.version);
      }
      const current = await this.currentVersion();
      return { undone, ...(current !== undefined ? { current } : {}) };
    });
  }

  /**
   * One script of a migrate or undo run. When it fails after others succeeded, the error says
   * where the database now stands: what ran, what did not, and the version it is at.
   */
  private async runStep(
    action: 'migrate' | 'undo',
    script: MigrationScript,
    row: { type: 'SQL' | 'UNDO_SQL'; version: string | null; description: string },
    done: string[],
    notRun: string[] = [],
  ): Promise<void> {
    try {
      await this.execute(script, row);
    } catch (err) {
      if (!(err instanceof MigrationError)) throw err;
      const current = await this.currentVersion().catch(() => undefined);
      const verb = action === 'undo' ? 'undid' : 'applied';
      const standing = [
        `the database is now at version ${current ?? '(none)'}`,
        done.length > 0
          ? `${verb} before the failure: ${done.join(', ')}`
          : `nothing was ${verb === 'undid' ? 'undone' : 'applied'} before it`,
        ...(notRun.length > 0 ? [`not ${action === 'undo' ? 'undone' : 'applied'}: ${notRun.join(', ')}`] : []),
      ];
      standing.push(`fix the cause and run it again: what is done is not done twice`);
      throw new MigrationError(
        `${err.message.replace(/\.?$/, '.')} ${capitalised(standing.join('; '))}`,
        'failed',
        err.issues,
      );
    }
  }

  private async refuseInvalid(): Promise<void> {
    const issues = await this.validate();
    if (issues.length > 0) throw new MigrationError(`validation failed: ${issues.join('; ')}`, 'validation', issues);
  }

  private async changedRepeatables(): Promise<MigrationScript[]> {
    const history = await this.history();
    return this.options.migrations.filter((s) => {
      if (s.kind !== 'repeatable') return false;
      const last = history.filter((h) => h.version === null && h.description === s.description && h.success).at(-1);
      return !last || last.checksum !== s.checksum;
    });
  }

  private async execute(
    script: MigrationScript,
    row: { type: 'SQL' | 'UNDO_SQL'; version: string | null; description: string },
  ): Promise<void> {
    const transactional = runsInTransaction(script.sql);
    const started = Date.now();
    if (transactional) await this.client.query('BEGIN');
    try {
      await this.client.query(script.sql);
      await this.record(script, row, Date.now() - started, true);
      if (transactional) await this.client.query('COMMIT');
    } catch (err) {
      if (transactional) {
        await this.client.query('ROLLBACK').catch(() => undefined);
      } else {
        // Flyway records a failed non-transactional migration so that validate stops the next run.
        await this.record(script, row, Date.now() - started, false).catch(() => undefined);
      }
      throw new MigrationError(
        `${script.script} failed${transactional ? ' and was rolled back' : ''}: ${sqlErrorMessage(err, script.sql)}`,
        'failed',
      );
    }
  }

  private async record(
    script: MigrationScript,
    row: { type: string; version: string | null; description: string },
    executionTime: number,
    success: boolean,
  ): Promise<void> {
    await this.client.query(
      `INSERT INTO ${this.table} (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success)
       VALUES ((SELECT COALESCE(MAX(installed_rank), 0) + 1 FROM ${this.table}), $1, $2, $3, $4, $5, current_user, $6, $7)`,
      [row.version, row.description.slice(0, 200), row.type, script.script, script.checksum, executionTime, success],
    );
  }

  private async historyExists(): Promise<boolean> {
    const { rows } = await this.client.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [
      this.table,
    ]);
    return rows[0]?.exists === true;
  }

  private async ensureHistoryTable(): Promise<void> {
    if (await this.historyExists()) return;
    await this.client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.options.schema)}`);
    await this.client.query(historyTableDdl(this.options.schema, this.options.table));
  }

  /** Holds Flyway's advisory lock, so rewind and Flyway never migrate this database at once. */
  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    const lock = flywayLockNumber(this.options.schema, this.options.table).toString();
    const deadline = Date.now() + (this.options.lockTimeoutMs ?? 60_000);
    for (;;) {
      const { rows } = await this.client.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock($1::bigint) AS locked',
        [lock],
      );
      if (rows[0]?.locked) break;
      if (Date.now() > deadline) {
        throw new MigrationError(
          'another migrator (rewind or Flyway) holds the migration lock on this database',
          'lock',
        );
      }
      await sleep(500);
    }
    try {
      return await fn();
    } finally {
      await this.client.query('SELECT pg_advisory_unlock($1::bigint)', [lock]).catch(() => undefined);
    }
  }
}

/** The state of every versioned migration, from the scripts and the history (pure). */
export function describeMigrations(
  scripts: MigrationScript[],
  history: HistoryRow[],
): { current?: string; migrations: MigrationInfo[] } {
  const versions = new Set<string>();
  for (const s of scripts) if (s.kind === 'versioned') versions.add(s.version!);
  for (const h of history)
    if (h.version !== null && (h.type === 'SQL' || h.type === 'UNDO_SQL' || h.type === 'BASELINE'))
      versions.add(h.version);

  const infos: MigrationInfo[] = [];
  for (const version of [...versions].sort(compareVersions)) {
    const script = scripts.find((s) => s.kind === 'versioned' && s.version === version);
    const undo = scripts.find((s) => s.kind === 'undo' && s.version === version);
    const rows = history.filter((h) => h.version === version && h.type !== 'SCHEMA');
    const last = rows.at(-1);
    const lastApply = rows.filter((r) => r.type !== 'UNDO_SQL').at(-1);
    let state: MigrationState;
    if (!last) state = 'pending';
    else if (!last.success) state = 'failed';
    else if (last.type === 'UNDO_SQL') state = 'undone';
    else state = script || last.type === 'BASELINE' ? 'success' : 'missing';
    infos.push({
      category: 'versioned',
      version,
      description: script?.description ?? lastApply?.description ?? '',
      script: script?.script ?? lastApply?.script ?? '',
      checksum: script?.checksum ?? lastApply?.checksum ?? null,
      state,
      ...(last
        ? {
            installedOn: last.installedOn.toISOString(),
            installedBy: last.installedBy,
            executionTime: last.executionTime,
          }
        : {}),
      ...(undo ? { undoScript: undo.script } : {}),
      ...(script && lastApply && state === 'success' && lastApply.checksum !== script.checksum
        ? { appliedChecksum: lastApply.checksum }
        : {}),
    });
  }
  const applied = infos.filter((m) => m.state === 'success' || m.state === 'missing');
  const current = applied.at(-1)?.version;
  return { ...(current !== undefined ? { current } : {}), migrations: infos };
}

/** The state of every repeatable script, from the scripts and the history (pure). */
export function describeRepeatables(scripts: MigrationScript[], history: HistoryRow[]): RepeatableInfo[] {
  const descriptions = new Set<string>();
  for (const s of scripts) if (s.kind === 'repeatable') descriptions.add(s.description);
  for (const h of history) if (h.version === null && h.type === 'SQL') descriptions.add(h.description);
  return [...descriptions].sort().map((description) => {
    const script = scripts.find((s) => s.kind === 'repeatable' && s.description === description);
    const last = history.filter((h) => h.version === null && h.type === 'SQL' && h.description === description).at(-1);
    let state: RepeatableState;
    if (!last) state = 'pending';
    else if (!last.success) state = 'failed';
    else if (!script) state = 'missing';
    else state = last.checksum === script.checksum ? 'success' : 'outdated';
    return {
      category: 'repeatable',
      description,
      script: script?.script ?? last?.script ?? '',
      checksum: script?.checksum ?? last?.checksum ?? null,
      state,
      ...(last ? { installedOn: last.installedOn.toISOString(), installedBy: last.installedBy } : {}),
      ...(state === 'outdated' ? { appliedChecksum: last!.checksum } : {}),
    };
  });
}

export function validationIssues(scripts: MigrationScript[], history: HistoryRow[]): string[] {
  const issues: string[] = [];
  const { current, migrations } = describeMigrations(scripts, history);
  for (const m of migrations) {
    if (m.state === 'failed')
      issues.push(
        `version ${m.version} failed (${m.script}); fix the database and remove its failed row from the history first`,
      );
    if (m.state === 'missing')
      issues.push(`version ${m.version} was applied but ${m.script} is not among the migration scripts`);
    if (m.state === 'pending' && current !== undefined && compareVersions(m.version, current) < 0) {
      issues.push(
        `version ${m.version} (${m.script}) is older than the current version ${current} and was never applied`,
      );
    }
  }
  // Every applied script, and every recorded undo, must still be the script that ran.
  for (const h of history) {
    if (!h.success || h.checksum === null || (h.type !== 'SQL' && h.type !== 'UNDO_SQL')) continue;
    const kind = h.type === 'UNDO_SQL' ? 'undo' : h.version === null ? 'repeatable' : 'versioned';
    if (kind === 'repeatable') continue; // a changed repeatable is simply run again
    const script = scripts.find((s) => s.kind === kind && s.version === h.version);
    if (script && script.checksum !== h.checksum) {
      issues.push(`checksum mismatch for ${script.script}: applied ${h.checksum}, on disk ${script.checksum}`);
    }
  }
  return [...new Set(issues)];
}

/** A PostgreSQL error with the line of the script it points at. */
function sqlErrorMessage(err: unknown, sql: string): string {
  const e = err as { message?: string; position?: string; detail?: string; hint?: string };
  const position = Number(e?.position);
  const line = Number.isFinite(position) && position > 0 ? ` (line ${sql.slice(0, position).split('\n').length})` : '';
  // PostgreSQL's DETAIL and HINT often say what to do (which rows block a constraint, say).
  const extra = [e?.detail ? ` DETAIL: ${e.detail}` : '', e?.hint ? ` HINT: ${e.hint}` : ''].join('');
  return `${e?.message ?? String(err)}${line}${extra}`;
}

function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
