// Flyway's conventions, so that a database migrated by Flyway is understood by rewind and the
// reverse: script names, version order, checksums, the history table and the advisory lock.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';

export type ScriptKind = 'versioned' | 'undo' | 'repeatable';

export interface MigrationScript {
  kind: ScriptKind;
  /** Normalised version ("1.2") for versioned and undo scripts; undefined for repeatable ones. */
  version?: string;
  description: string;
  /** File name, as Flyway records it in the history table's `script` column. */
  script: string;
  file: string;
  checksum: number;
  sql: string;
}

const SCRIPT_NAME = /^(V|U)([0-9]+(?:[._][0-9]+)*)__(.+)\.sql$|^R__(.+)\.sql$/;

/**
 * Flyway's checksum: CRC-32 over the UTF-8 bytes of each line without its line break (so LF
 * and CRLF checkouts agree), a leading byte-order mark removed, as a signed 32-bit integer.
 * Checked against a checksum that Flyway itself recorded for a public script.
 */
export function flywayChecksum(text: string): number {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  let crc = 0;
  // Java's BufferedReader.readLine splits on \n, \r\n and \r, and yields no final empty line.
  const lines = body.split(/\r\n|\r|\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  for (const line of lines) crc = crc32(Buffer.from(line, 'utf8'), crc);
  return crc | 0;
}

/** Parses a script file name, or says why it is not a migration. */
export function parseScriptName(name: string): { kind: ScriptKind; version?: string; description: string } | undefined {
  const match = SCRIPT_NAME.exec(name);
  if (!match) return undefined;
  if (match[4] !== undefined) return { kind: 'repeatable', description: describe(match[4]) };
  return {
    kind: match[1] === 'V' ? 'versioned' : 'undo',
    version: normaliseVersion(match[2]!),
    description: describe(match[3]!),
  };
}

function describe(raw: string): string {
  return raw.replace(/_/g, ' ');
}

/** "1_2" and "1.2" are the same version; leading zeros do not count ("01" is "1"). */
export function normaliseVersion(raw: string): string {
  return raw
    .split(/[._]/)
    .map((part) => String(BigInt(part)))
    .join('.');
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((p) => BigInt(p));
  const pb = b.split('.').map((p) => BigInt(p));
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0n;
    const y = pb[i] ?? 0n;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export class MigrationScriptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationScriptError';
  }
}

/** Reads a Flyway migrations folder (recursively, as Flyway scans its locations). */
export async function readMigrations(dir: string): Promise<MigrationScript[]> {
  let names: string[];
  try {
    names = (await readdir(dir, { recursive: true })).map(String);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new MigrationScriptError(
      code === 'ENOENT' ? `migrations directory ${dir} does not exist` : `cannot read ${dir}: ${String(err)}`,
    );
  }
  const scripts: MigrationScript[] = [];
  for (const relative of names.sort()) {
    const name = path.basename(relative);
    if (!name.endsWith('.sql')) continue;
    const parsed = parseScriptName(name);
    if (!parsed)
      throw new MigrationScriptError(
        `${relative}: not a migration name (V<version>__<description>.sql, U<version>__…, R__…)`,
      );
    const file = path.join(dir, relative);
    const text = await readFile(file, 'utf8');
    // The byte-order mark is not SQL: Flyway strips it before checksumming and running alike.
    const sql = text.startsWith('\uFEFF') ? text.slice(1) : text;
    scripts.push({ ...parsed, script: name, file, checksum: flywayChecksum(sql), sql });
  }
  for (const kind of ['versioned', 'undo'] as const) {
    const seen = new Map<string, string>();
    for (const s of scripts.filter((x) => x.kind === kind)) {
      const other = seen.get(s.version!);
      if (other)
        throw new MigrationScriptError(`two ${kind} scripts for version ${s.version}: ${other} and ${s.script}`);
      seen.set(s.version!, s.script);
    }
  }
  const repeatable = new Map<string, string>();
  for (const s of scripts.filter((x) => x.kind === 'repeatable')) {
    const other = repeatable.get(s.description);
    if (other)
      throw new MigrationScriptError(`two repeatable scripts named "${s.description}": ${other} and ${s.script}`);
    repeatable.set(s.description, s.script);
  }
  return scripts.sort((a, b) =>
    a.version !== undefined && b.version !== undefined
      ? compareVersions(a.version, b.version)
      : a.script.localeCompare(b.script),
  );
}

/** The history table's columns and DDL, exactly as Flyway creates them on PostgreSQL. */
export function historyTableDdl(schema: string, table: string): string {
  const t = `${quoteIdent(schema)}.${quoteIdent(table)}`;
  return `CREATE TABLE ${t} (
    "installed_rank" INT NOT NULL,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INT,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INT NOT NULL,
    "success" BOOLEAN NOT NULL
);
ALTER TABLE ${t} ADD CONSTRAINT ${quoteIdent(`${table}_pk`)} PRIMARY KEY ("installed_rank");
CREATE INDEX ${quoteIdent(`${table}_s_idx`)} ON ${t} ("success");`;
}

/**
 * Flyway's advisory lock number for a history table: a magic number spelling "Flyway" plus
 * Java's String.hashCode of the quoted table name. Holding the same lock, rewind and Flyway
 * never migrate one database at the same time.
 */
export function flywayLockNumber(schema: string, table: string): bigint {
  const magic = (0x46n << 40n) + (0x6cn << 32n) + (0x79n << 24n) + (0x77n << 16n) + (0x61n << 8n) + 0x79n;
  return magic + BigInt(javaStringHash(`${quoteIdent(schema)}.${quoteIdent(table)}`));
}

function javaStringHash(text: string): number {
  let hash = 0;
  for (let i = 0; i < text.length; i++) hash = (Math.imul(hash, 31) + text.charCodeAt(i)) | 0;
  return hash;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
