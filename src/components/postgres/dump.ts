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
export function pgRestoreConsumer(
  url: string,
  scratch: string,
  bin: PgBin,
): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  const { dbname, env } = libpqTarget(url, scratch);
  return { command: bin.tool('pg_restore'), args: ['--exit-on-error', `--dbname=${dbname}`], env };
}

/**
 * A database-level setting that names the step whose restore put a database in place. It is
 * set on the scratch copy before the swap, so it arrives with the rename, atomically: a
 * database carries it if and only if that step's swap happened. (A setting rather than the
 * comment, which is the operator's.)
 */
export const RESTORED_BY_SETTING = 'rewind.restored_by';

/**
 * Creates `scratch` like the live database: owner, encoding, collation, connection limit,
 * privileges (GRANTs, including what PUBLIC may do), `ALTER DATABASE … SET` and
 * `ALTER ROLE … IN DATABASE … SET` settings and the comment; then marks it as restored by
 * `restoredBy`. A dump holds none of these, since they belong to the database, not its contents.
 */
export async function createScratch(url: string, scratch: string, restoredBy: string): Promise<void> {
  const live = databaseName(url);
  await withPostgres(maintenanceUrl(url), async (admin) => {
    await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(scratch)} WITH (FORCE)`);
    const { rows } = await admin.query<{
      oid: number;
      owner: string;
      encoding: string;
      collate: string;
      ctype: string;
      connlimit: number;
      comment: string | null;
    }>(
      `SELECT oid, pg_get_userbyid(datdba) AS owner, pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype,
              datconnlimit AS connlimit, shobj_description(oid, 'pg_database') AS comment
         FROM pg_database WHERE datname = $1`,
      [live],
    );
    const like = rows[0];
    const options = like
      ? ` OWNER ${quoteIdent(like.owner)} ENCODING '${like.encoding}' LC_COLLATE ${literal(like.collate)} LC_CTYPE ${literal(like.ctype)} CONNECTION LIMIT ${like.connlimit}`
      : '';
    await admin.query(`CREATE DATABASE ${quoteIdent(scratch)} TEMPLATE template0${options}`);
    const target = quoteIdent(scratch);
    if (like) {
      for (const statement of await databaseAttributes(admin, like.oid, target)) await admin.query(statement);
      if (like.comment !== null && !like.comment.startsWith('rewind-restore '))
        await admin.query(`COMMENT ON DATABASE ${target} IS ${literal(like.comment)}`);
    }
    await admin.query(`ALTER DATABASE ${target} SET ${RESTORED_BY_SETTING} = ${literal(restoredBy)}`);
  });
}

/** The statements that give another database the privileges and settings of database `oid`. */
async function databaseAttributes(admin: pg.Client, oid: number, target: string): Promise<string[]> {
  const statements: string[] = [];
  const { rows: acl } = await admin.query<{
    explicit: boolean;
    grantee: string | null;
    privilege: string;
    grantable: boolean;
  }>(
    `SELECT d.datacl IS NOT NULL AS explicit, CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee,
            a.privilege_type AS privilege, a.is_grantable AS grantable
       FROM pg_database d LEFT JOIN LATERAL aclexplode(d.datacl) a ON true WHERE d.oid = $1`,
    [oid],
  );
  // NULL datacl means the defaults (PUBLIC may connect and create temporary tables), which the
  // new database has too; anything else is restated from nothing.
  if (acl[0]?.explicit) {
    statements.push(`REVOKE ALL ON DATABASE ${target} FROM PUBLIC`);
    for (const a of acl) {
      if (!a.privilege) continue;
      statements.push(
        `GRANT ${a.privilege} ON DATABASE ${target} TO ${a.grantee === null ? 'PUBLIC' : quoteIdent(a.grantee)}${a.grantable ? ' WITH GRANT OPTION' : ''}`,
      );
    }
  }
  const { rows: settings } = await admin.query<{ role: string | null; setting: string }>(
    `SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END AS role, c.setting
       FROM pg_db_role_setting s, unnest(s.setconfig) AS c(setting) WHERE s.setdatabase = $1`,
    [oid],
  );
  for (const { role, setting } of settings) {
    const at = setting.indexOf('=');
    const [name, value] = [setting.slice(0, at), setting.slice(at + 1)];
    if (name === RESTORED_BY_SETTING) continue;
    const set = `SET ${name.split('.').map(quoteIdent).join('.')} = ${settingValue(name, value)}`;
    statements.push(
      role === null ? `ALTER DATABASE ${target} ${set}` : `ALTER ROLE ${quoteIdent(role)} IN DATABASE ${target} ${set}`,
    );
  }
  return statements;
}

/**
 * A stored setting's value as SQL. List settings (search_path and the like) are stored as their
 * elements, double-quoted where needed, and must be given back as one literal per element, as
 * pg_dumpall does; a single literal would become one odd element.
 */
function settingValue(name: string, value: string): string {
  if (!LIST_SETTINGS.has(name.toLowerCase())) return literal(value);
  const elements: string[] = [];
  for (const match of value.matchAll(/\s*(?:"((?:[^"]|"")*)"|([^,]*?))\s*(?:,|$)/g)) {
    if (match.index === value.length) break;
    elements.push(match[1] !== undefined ? match[1].replace(/""/g, '"') : match[2]!);
  }
  return elements.map(literal).join(', ');
}

const LIST_SETTINGS = new Set([
  'search_path',
  'temp_tablespaces',
  'session_preload_libraries',
  'local_preload_libraries',
]);

/** Which step's restore put the database in place, if any (see RESTORED_BY_SETTING). */
export async function restoredBy(url: string): Promise<string | undefined> {
  return withPostgres(maintenanceUrl(url), async (admin) => {
    const { rows } = await admin.query<{ setting: string }>(
      `SELECT c.setting FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) AS c(setting)
        WHERE d.datname = $1 AND s.setrole = 0 AND c.setting LIKE $2`,
      [databaseName(url), `${RESTORED_BY_SETTING}=%`],
    );
    return rows[0]?.setting.slice(RESTORED_BY_SETTING.length + 1);
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
 */
export async function swapIn(url: string, scratch: string): Promise<SwapResult> {
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
    const droppedOld = await admin
      .query(`DROP DATABASE ${quoteIdent(aside)} WITH (FORCE)`)
      .then(() => true)
      .catch(() => false);
    return { windowMs, droppedOld };
  } finally {
    await admin.end().catch(() => undefined);
  }
}

export async function dropDatabase(url: string, name: string): Promise<void> {
  await withPostgres(maintenanceUrl(url), (admin) =>
    admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`),
  );
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
