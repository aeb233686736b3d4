// What each rollback strategy would do to a database's data, shown before anyone approves:
// restoring the dump reverts every write since the target; undoing migrations keeps the rows
// but runs U scripts that may drop tables and columns, with whatever they hold.
import type pg from 'pg';
import type { StrategyImpact } from '../../domain/rollback';
import type { DatabaseFingerprint } from './fingerprint';
import { compareVersions, quoteIdent, type MigrationScript } from './flyway';
import type { MigrationInfo } from './migrator';

export interface DroppedObject {
  kind: 'table' | 'column';
  table: string;
  column?: string;
}

const IDENT = `(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
const QUALIFIED = `${IDENT}(?:\\s*\\.\\s*${IDENT})?`;
const DROP_TABLE = new RegExp(
  `\\bDROP\\s+TABLE\\s+(?:IF\\s+EXISTS\\s+)?(${QUALIFIED}(?:\\s*,\\s*${QUALIFIED})*)`,
  'gi',
);
const ALTER_TABLE = new RegExp(`\\bALTER\\s+TABLE\\s+(?:IF\\s+EXISTS\\s+)?(?:ONLY\\s+)?(${QUALIFIED})([^;]*)`, 'gi');
const DROP_COLUMN = new RegExp(`\\bDROP\\s+(?:COLUMN\\s+)?(?:IF\\s+EXISTS\\s+)?(${IDENT})`, 'gi');

/** Tables and columns an SQL script drops, read from its DROP TABLE and ALTER TABLE … DROP statements. */
export function droppedObjects(sql: string): DroppedObject[] {
  const text = sql.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
  const found: DroppedObject[] = [];
  for (const m of text.matchAll(DROP_TABLE)) {
    for (const name of splitNames(m[1]!)) found.push({ kind: 'table', table: qualify(name) });
  }
  for (const m of text.matchAll(ALTER_TABLE)) {
    const table = qualify(m[1]!);
    for (const d of m[2]!.matchAll(DROP_COLUMN)) {
      const column = unquote(d[1]!);
      if (!/^(constraint|default|not|identity|expression)$/i.test(column))
        found.push({ kind: 'column', table, column });
    }
  }
  return found;
}

function splitNames(list: string): string[] {
  return list
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
}

function qualify(name: string): string {
  const parts = name.split(/\s*\.\s*/).map(unquote);
  return parts.length === 1 ? `public.${parts[0]}` : `${parts[0]}.${parts[1]}`;
}

function unquote(name: string): string {
  return name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name.toLowerCase();
}

/** Restoring the dump returns every table to its rows at the target: writes since are lost. */
export function restoreImpact(current: DatabaseFingerprint, target: DatabaseFingerprint): StrategyImpact {
  const losses: string[] = [];
  let unknown = false;
  for (const [table, now] of Object.entries(current.tables).sort(([a], [b]) => a.localeCompare(b))) {
    const then = target.tables[table];
    if (!then) {
      if (now.rows > 0) losses.push(`table ${table} (~${fmt(now.rows)} rows) did not exist at the target and goes`);
      continue;
    }
    const ins = now.inserted - then.inserted;
    const upd = now.updated - then.updated;
    const del = now.deleted - then.deleted;
    if (ins < 0 || upd < 0 || del < 0) {
      unknown = true;
      continue;
    }
    if (ins + upd + del > 0)
      losses.push(
        `${table}: ~${fmt(ins)} inserted, ~${fmt(upd)} updated, ~${fmt(del)} deleted since the target are reverted`,
      );
  }
  if (unknown)
    losses.push(
      'some tables were rewritten or their statistics reset since the target: their writes since then cannot be counted, and are reverted too',
    );
  return { strategy: 'restore', available: true, destructive: losses.length > 0, losses };
}

/**
 * Undoing migrations down to the target's version keeps the rows of the tables that stay, but
 * runs the U scripts: whatever they drop goes. Impossible when a U script is missing.
 */
export async function undoImpact(
  client: pg.Client,
  scripts: MigrationScript[] | undefined,
  applied: MigrationInfo[],
  targetVersion: string | undefined,
  /** What `validate` finds wrong with the history (undo refuses to run then). */
  problems: string[] = [],
): Promise<StrategyImpact> {
  if (!scripts)
    return {
      strategy: 'undo',
      available: false,
      unavailable: 'the component names no migrations folder',
      destructive: false,
      losses: [],
    };
  if (problems.length > 0) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more; see rewind db validate)` : '';
    return {
      strategy: 'undo',
      available: false,
      unavailable: `the migration history does not validate: ${problems[0]}${more}`,
      destructive: false,
      losses: [],
    };
  }
  const toUndo = applied.filter(
    (m) => m.state === 'success' && (targetVersion === undefined || compareVersions(m.version, targetVersion) > 0),
  );
  const missing = toUndo.filter((m) => !m.undoScript).map((m) => m.version);
  if (missing.length > 0) {
    return {
      strategy: 'undo',
      available: false,
      unavailable: `no U script for version${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`,
      destructive: false,
      losses: [],
    };
  }
  const losses: string[] = [];
  let rowsLost = 0;
  for (const m of toUndo) {
    const undo = scripts.find((s) => s.kind === 'undo' && s.version === m.version)!;
    for (const dropped of droppedObjects(undo.sql)) {
      const rows = await countRows(client, dropped);
      if (rows === undefined) continue; // not there now: nothing to lose
      rowsLost += rows;
      const what = dropped.kind === 'table' ? `table ${dropped.table}` : `column ${dropped.table}.${dropped.column}`;
      losses.push(
        `${what} (${fmt(rows)} ${dropped.kind === 'table' ? 'rows' : 'rows with a value'}), dropped by ${undo.script}`,
      );
    }
  }
  return {
    strategy: 'undo',
    available: true,
    destructive: rowsLost > 0,
    losses,
    keeps: 'rows written since the target in the tables and columns that stay',
  };
}

async function countRows(client: pg.Client, object: DroppedObject): Promise<number | undefined> {
  const [schema, table] = object.table.split('.', 2) as [string, string];
  const qualified = `${quoteIdent(schema)}.${quoteIdent(table)}`;
  const { rows: exists } = await client.query<{ ok: boolean }>(
    object.kind === 'table'
      ? 'SELECT to_regclass($1) IS NOT NULL AS ok'
      : 'SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped) AS ok',
    object.kind === 'table' ? [qualified] : [qualified, object.column],
  );
  if (!exists[0]?.ok) return undefined;
  const where = object.kind === 'column' ? ` WHERE ${quoteIdent(object.column!)} IS NOT NULL` : '';
  // Exact where it is cheap; a bounded count keeps a huge table from stalling the plan.
  await client.query("SET statement_timeout = '5s'");
  try {
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${qualified}${where}`);
    return Number(rows[0]?.n ?? 0);
  } catch {
    const { rows } = await client.query<{ n: string }>(
      'SELECT GREATEST(reltuples, 0)::bigint AS n FROM pg_class WHERE oid = to_regclass($1)',
      [qualified],
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.query('RESET statement_timeout');
  }
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}
