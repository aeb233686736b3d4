// Dumps and restores with pg_dump / pg_restore, and the swap that puts a restored copy in
// place of a live database in one short step.
//
// Dumps use the custom format without compression, streamed straight into restic and back out
// of it (never written to disk): restic chunks, deduplicates and compresses the stream itself,
// and a pre-compressed dump would defeat its deduplication. Streaming makes dumping and storing
// (and reading and loading) overlap, which costs less than the parallel jobs a directory-format
// dump would allow but that must first be written out and read back whole.
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { quoteIdent } from './flyway';
import { connectPostgres, DatabaseError, redactUrl, withPostgres } from './connect';
import type { PgBin } from './tools';

/** libpq takes the password from the environment, so it never shows in a process listing. */
export function libpqTarget(url: string, database?: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const parsed = new URL(url);
  const password = decodeURIComponent(parsed.password);
  parsed.password = '';
  if (database !== undefined) parsed.pathname = `/${encodeURIComponent(database)}`;
  return { dbname: parsed.toString(), env: password ? { PGPASSWORD: password } : {} };
}

export function databaseName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (!name) throw new DatabaseError(`${redactUrl(url)} names no database`, 'no-database');
  return name;
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

/** The file a database's dump is stored as, inside its restic snapshot. */
export const DUMP_FILE = 'database.dump';

/**
 * pg_dump in the custom format without compression, writing to stdout: restic stores the
 * stream as it comes, so dumping and storing overlap, and restic's chunking sees the rows
 * themselves (a compressed dump would defeat its deduplication).
 */
export function pgDumpCommand(url: string, bin: PgBin): { command: string[]; env: NodeJS.ProcessEnv } {
  const { dbname, env } = libpqTarget(url);
  return { command: [bin.tool('pg_dump'), '--format=custom', '--compress=0', `--dbname=${dbname}`], env };
}

/** pg_restore reading a dump from stdin into `scratch`. */
export function pgRestoreConsumer(url: string, scratch: string, bin: PgBin): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  const { dbname, env } = libpqTarget(url, scratch);
  return { command: bin.tool('pg_restore'), args: ['--exit-on-error', `--dbname=${dbname}`], env };
}

/** Creates `scratch` like the live database: owner, encoding and collation. */
export async function createScratch(url: string, scratch: string): Promise<void> {
  const live = databaseName(url);
  await withPostgres(maintenanceUrl(url), async (admin) => {
    await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(scratch)} WITH (FORCE)`);
    const { rows } = await admin.query<{ owner: string; encoding: string; collate: string; ctype: string }>(
      `SELECT pg_get_userbyid(datdba) AS owner, pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype
         FROM pg_database WHERE datname = $1`,
      [live],
    );
    const like = rows[0];
    const options = like
      ? ` OWNER ${quoteIdent(like.owner)} ENCODING '${like.encoding}' LC_COLLATE ${literal(like.collate)} LC_CTYPE ${literal(like.ctype)}`
      : '';
    await admin.query(`CREATE DATABASE ${quoteIdent(scratch)} TEMPLATE template0${options}`);
  });
}

export interface SwapResult {
  /** How long the database was unavailable: from refusing connections to the renamed copy. */
  windowMs: number;
  droppedOld: boolean;
}

/**
 * Puts `scratch` in place of the live database: refuse new connections, end the open ones,
 * rename the live database aside and the scratch copy to its name, then drop the old one.
 * `marker` is written as the database comment so that a retried step recognises its work.
 */
export async function swapIn(url: string, scratch: string, marker: string): Promise<SwapResult> {
  const live = databaseName(url);
  if (live === 'postgres' || live === 'template0' || live === 'template1') {
    throw new DatabaseError(`cannot swap the ${live} database; keep application data in a database of its own`, 'sql');
  }
  const aside = `${live.slice(0, 40)}__rewind_old_${Date.now().toString(36)}`;
  const admin = await connectPostgres(maintenanceUrl(url));
  try {
    const started = Date.now();
    await admin.query(`ALTER DATABASE ${quoteIdent(live)} WITH ALLOW_CONNECTIONS false`);
    try {
      await terminateSessions(admin, live);
      await admin.query(`ALTER DATABASE ${quoteIdent(live)} RENAME TO ${quoteIdent(aside)}`);
    } catch (err) {
      await admin.query(`ALTER DATABASE ${quoteIdent(live)} WITH ALLOW_CONNECTIONS true`).catch(() => undefined);
      throw err;
    }
    try {
      await admin.query(`ALTER DATABASE ${quoteIdent(scratch)} RENAME TO ${quoteIdent(live)}`);
    } catch (err) {
      // Put the original back before giving up.
      await admin.query(`ALTER DATABASE ${quoteIdent(aside)} RENAME TO ${quoteIdent(live)}`).catch(() => undefined);
      await admin.query(`ALTER DATABASE ${quoteIdent(live)} WITH ALLOW_CONNECTIONS true`).catch(() => undefined);
      throw err;
    }
    const windowMs = Date.now() - started;
    await admin.query(`COMMENT ON DATABASE ${quoteIdent(live)} IS ${literal(marker)}`);
    const droppedOld = await admin
      .query(`DROP DATABASE ${quoteIdent(aside)} WITH (FORCE)`)
      .then(() => true)
      .catch(() => false);
    return { windowMs, droppedOld };
  } finally {
    await admin.end().catch(() => undefined);
  }
}

export async function databaseComment(url: string): Promise<string | undefined> {
  return withPostgres(maintenanceUrl(url), async (admin) => {
    const { rows } = await admin.query<{ comment: string | null }>(
      `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`,
      [databaseName(url)],
    );
    return rows[0]?.comment ?? undefined;
  });
}

export async function dropDatabase(url: string, name: string): Promise<void> {
  await withPostgres(maintenanceUrl(url), (admin) => admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
}

/** The server's maintenance database, from which databases are created, renamed and dropped. */
export function maintenanceUrl(url: string): string {
  return withDatabase(url, 'postgres');
}

async function terminateSessions(admin: pg.Client, database: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const { rows } = await admin.query<{ n: string }>(
      `SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
      [database],
    );
    if (Number(rows[0]?.n ?? 0) === 0) return;
    await sleep(20);
  }
  throw new DatabaseError(`sessions on ${database} would not end`, 'lock');
}

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}
