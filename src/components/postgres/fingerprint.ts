// What rewind knows of a database without restoring it: a schema signature read from the
// catalogs, the migration version, row counts and write counters, and optionally keyed-hash
// samples of rows. The signature is one line per object, sorted, so two of them diff cleanly.
import { createHash, createHmac } from 'node:crypto';
import type pg from 'pg';
import type { FingerprintSummary } from '../core';
import type { PostgresFingerprintDetails } from './kind';
import { compareVersions, quoteIdent } from './flyway';

export const DB_FINGERPRINT_FORMAT = 'rewind-db-v1';

export interface TableStats {
  /** Estimated rows (pg_class.reltuples), or exact when counted. */
  rows: number;
  inserted: number;
  updated: number;
  deleted: number;
}

export interface DatabaseFingerprint {
  format: typeof DB_FINGERPRINT_FORMAT;
  /** When the fingerprint was read (the server's clock). */
  takenAt?: string;
  /** One line per schema object, sorted. */
  schema: string[];
  migration?: string;
  bytes: number;
  tables: Record<string, TableStats>;
  /** HMAC-SHA256 per sampled table over its first rows by primary key; no row value leaves. */
  samples?: Record<string, string>;
}

const USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp_%'`;

// Whether an object belongs to an extension (CREATE EXTENSION made it, DROP EXTENSION removes it).
// Uncorrelated, so the server reads the members once per statement into a hash table; an EXISTS
// per row probed pg_depend's index for each of thousands of columns (5 ms per 4,000 rows, cold).
const extensionMember = (catalog: string, oid: string) =>
  `${oid} IN (SELECT d.objid FROM pg_depend d WHERE d.classid = '${catalog}'::regclass AND d.deptype = 'e')`;

// Each query yields one row per object: `line`, a stable, human-readable description for the
// signature; `subject` and `definition`, the same object split for drift scans; `rel`, the table
// it belongs to, and `member`, whether an extension owns it, so that a scan can leave those out.
const CATALOG_QUERIES = [
  `SELECT 'schema ' || n.nspname AS subject, 'schema ' || n.nspname AS line, '' AS definition, NULL::oid AS rel,
          ${extensionMember('pg_namespace', 'n.oid')} AS member
     FROM pg_namespace n WHERE ${USER_SCHEMAS}`,
  `SELECT 'extension ' || e.extname AS subject, 'extension ' || e.extname || ' ' || e.extversion AS line,
          e.extversion AS definition, NULL::oid AS rel, false AS member
     FROM pg_extension e`,
  `SELECT 'table ' || n.nspname || '.' || c.relname AS subject,
          'table ' || n.nspname || '.' || c.relname || ' (' || c.relkind::text || ')' AS line,
          CASE WHEN c.relpersistence = 'u' THEN 'unlogged ' ELSE '' END
          || CASE c.relkind WHEN 'p' THEN 'partitioned table' WHEN 'f' THEN 'foreign table' ELSE 'table' END
          || COALESCE(' partition ' || pg_get_expr(c.relpartbound, c.oid), '') AS definition,
          c.oid AS rel, ${extensionMember('pg_class', 'c.oid')} AS member
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'f') AND ${USER_SCHEMAS}`,
  // Column position counts live columns only, so a dropped column leaves no gap in the signature.
  // A drift definition leaves the position out: one added column would otherwise change all after it.
  `SELECT subject, subject || ' #' || position || ' ' || definition AS line, definition, rel, member FROM (
   SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname AS subject,
          row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS position,
          format_type(a.atttypid, a.atttypmod)
          || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
          || COALESCE(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
          || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
          || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END AS definition,
          c.oid AS rel, ${extensionMember('pg_class', 'c.oid')} AS member
     FROM pg_attribute a
     JOIN pg_class c ON c.oid = a.attrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f', 'v', 'm') AND ${USER_SCHEMAS}) o`,
  `SELECT subject, subject || ' ' || definition AS line, definition, rel, member FROM (
   SELECT 'constraint ' || n.nspname || '.' || c.relname || '.' || con.conname AS subject,
          pg_get_constraintdef(con.oid) AS definition, c.oid AS rel, ${extensionMember('pg_class', 'c.oid')} AS member
     FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${USER_SCHEMAS}) o`,
  `SELECT subject, subject || ' ' || definition AS line, definition, rel, member FROM (
   SELECT 'index ' || n.nspname || '.' || i.relname AS subject, pg_get_indexdef(i.oid) AS definition,
          x.indrelid AS rel, ${extensionMember('pg_class', 'x.indrelid')} AS member
     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
    WHERE ${USER_SCHEMAS}) o`,
  `SELECT subject, subject || ' (' || relkind || ') ' || md5(body) AS line,
          CASE WHEN relkind = 'm' THEN 'materialized ' ELSE '' END || body AS definition, rel, member FROM (
   SELECT 'view ' || n.nspname || '.' || c.relname AS subject, c.relkind::text AS relkind,
          pg_get_viewdef(c.oid, true) AS body, c.oid AS rel, ${extensionMember('pg_class', 'c.oid')} AS member
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('v', 'm') AND ${USER_SCHEMAS}) o`,
  `SELECT subject, subject || ' ' || definition AS line, definition, rel, member FROM (
   SELECT 'sequence ' || n.nspname || '.' || c.relname AS subject,
          format_type(s.seqtypid, NULL) || ' increment ' || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax
          AS definition, NULL::oid AS rel, ${extensionMember('pg_class', 'c.oid')} AS member
     FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${USER_SCHEMAS}) o`,
  `SELECT subject, subject || ' ' || md5(definition) AS line, definition, NULL::oid AS rel, false AS member FROM (
   SELECT 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
          AS subject, pg_get_functiondef(p.oid) AS definition
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.prokind IN ('f', 'p', 'w') AND ${USER_SCHEMAS}
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')) o`,
  `SELECT subject, subject || ' ' || md5(definition) AS line, definition, rel, member FROM (
   SELECT 'trigger ' || n.nspname || '.' || c.relname || '.' || t.tgname AS subject,
          pg_get_triggerdef(t.oid) AS definition, c.oid AS rel, ${extensionMember('pg_class', 'c.oid')} AS member
     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE NOT t.tgisinternal AND ${USER_SCHEMAS}) o`,
  `SELECT subject, subject || ' ' || definition AS line, definition, rel, member FROM (
   SELECT 'enum ' || n.nspname || '.' || t.typname AS subject,
          string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder) AS definition,
          NULL::oid AS rel, ${extensionMember('pg_type', 't.oid')} AS member
     FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE ${USER_SCHEMAS} GROUP BY n.nspname, t.typname, t.oid) o`,
];

export async function schemaSignature(client: pg.Client): Promise<string[]> {
  const lines: string[] = [];
  for (const query of CATALOG_QUERIES) {
    const { rows } = await client.query<{ line: string }>(query);
    lines.push(...rows.map((r) => r.line));
  }
  return lines.sort();
}

/** A schema object as a drift scan compares it: `column public.orders.total` → `numeric(10,2) not null`. */
export interface CatalogObject {
  subject: string;
  /** The full definition, unbounded; callers that ship it elsewhere shorten it. */
  definition: string;
}

// The history table (a qualified, quoted name) is left out when there is one; to_regclass is null otherwise.
// A scalar subquery runs once per statement; to_regclass($1) as such would run once per row.
const NOT_EXCLUDED = `NOT o.member AND COALESCE(o.rel <> (SELECT to_regclass($1)::oid), true)`;

/**
 * The objects of the signature, for drift scans: without those an extension owns (the extension's
 * version stands for them) and without `exclude`, a table rewind itself reads (Flyway's history).
 */
export async function catalogObjects(
  client: pg.Client,
  exclude: { schema: string; table: string } | undefined,
  buckets: number,
): Promise<(CatalogObject & { bucket: number })[]> {
  const excluded = exclude ? `${quoteIdent(exclude.schema)}.${quoteIdent(exclude.table)}` : null;
  const objects: (CatalogObject & { bucket: number })[] = [];
  for (const query of CATALOG_QUERIES) {
    // The bucket is the first byte of the subject's SHA-256 modulo `buckets` (subjectBucket),
    // worked out where the rows are: cheaper there than a hash object per row in Node.
    const { rows } = await client.query<CatalogObject & { bucket: number }>(
      `SELECT o.subject, o.definition, get_byte(sha256(convert_to(o.subject, 'UTF8')), 0) % $2::int AS bucket
         FROM (${query}) o WHERE ${NOT_EXCLUDED}`,
      [excluded, buckets],
    );
    objects.push(...rows);
  }
  return objects.sort((a, b) => (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : 0));
}

/** The bucket catalogObjects gives a subject, worked out in Node. */
export function subjectBucket(subject: string, buckets: number): number {
  return createHash('sha256').update(subject).digest()[0]! % buckets;
}

export interface UserTable {
  schema: string;
  table: string;
  /**
   * Rows as the planner estimates them (pg_class.reltuples, summed over a partitioned table's
   * leaves); for a table never analyzed, a guess from its size (100 bytes a row).
   */
  estimate: number;
  /** The table's heap (its leaves', for a partitioned one) has no pages: it holds no rows. */
  empty: boolean;
  /** Primary key columns in key order; empty without a primary key. */
  primaryKey: string[];
}

const ROW_ESTIMATE = (rel: string) =>
  `CASE WHEN ${rel}.reltuples >= 0 THEN ${rel}.reltuples ELSE pg_relation_size(${rel}.oid) / 100 END`;

/** Plain and partitioned tables (not foreign ones: counting those reads another server), as catalogObjects filters them. */
export async function userTables(client: pg.Client, exclude?: { schema: string; table: string }): Promise<UserTable[]> {
  const excluded = exclude ? `${quoteIdent(exclude.schema)}.${quoteIdent(exclude.table)}` : null;
  const { rows } = await client.query<{
    schema: string;
    table: string;
    estimate: number;
    empty: boolean;
    key: string[] | null;
  }>(
    `SELECT o.schema, o.table, o.estimate, o.empty, o.key FROM (
       SELECT n.nspname AS schema, c.relname AS table, c.oid AS rel, ${extensionMember('pg_class', 'c.oid')} AS member,
              round(CASE WHEN c.relkind = 'p'
                THEN (SELECT COALESCE(sum(${ROW_ESTIMATE('l')}), 0)
                        FROM pg_partition_tree(c.oid) pt JOIN pg_class l ON l.oid = pt.relid WHERE pt.isleaf)
                ELSE ${ROW_ESTIMATE('c')} END)::float8 AS estimate,
              CASE WHEN c.relkind = 'p'
                THEN NOT EXISTS (SELECT 1 FROM pg_partition_tree(c.oid) pt
                                  WHERE pt.isleaf AND pg_relation_size(pt.relid) > 0)
                ELSE pg_relation_size(c.oid) = 0 END AS empty,
              (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum))
                 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                WHERE i.indrelid = c.oid AND i.indisprimary) AS key
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND ${USER_SCHEMAS}) o
      WHERE ${NOT_EXCLUDED}
      ORDER BY o.schema, o.table`,
    [excluded],
  );
  return rows.map((r) => ({
    schema: r.schema,
    table: r.table,
    estimate: r.estimate,
    empty: r.empty,
    primaryKey: r.key ?? [],
  }));
}

export interface HistoryRow {
  version: string | null;
  description: string;
  type: string;
  checksum: number | null;
  success: boolean;
}

/**
 * Flyway's history in installed order, at most the newest `limit` rows; `total` counts them all.
 * No history table means no rows.
 */
export async function migrationHistory(
  client: pg.Client,
  schema: string,
  table: string,
  limit: number,
): Promise<{ rows: HistoryRow[]; total: number }> {
  const qualified = `${quoteIdent(schema)}.${quoteIdent(table)}`;
  const { rows: exists } = await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [qualified]);
  if (!exists[0]?.ok) return { rows: [], total: 0 };
  const { rows } = await client.query<HistoryRow & { total: string }>(
    `SELECT version, description, type, checksum, success, total FROM (
       SELECT installed_rank, version, description, type, checksum, success, count(*) OVER () AS total
         FROM ${qualified} ORDER BY installed_rank DESC LIMIT $1) h
      ORDER BY installed_rank`,
    [limit],
  );
  return {
    rows: rows.map(({ total: _total, ...row }) => row),
    total: Number(rows[0]?.total ?? 0),
  };
}

/** The current Flyway version: the highest version applied and not undone. */
export async function migrationVersion(client: pg.Client, schema: string, table: string): Promise<string | undefined> {
  const qualified = `${quoteIdent(schema)}.${quoteIdent(table)}`;
  const { rows: exists } = await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [qualified]);
  if (!exists[0]?.ok) return undefined;
  const { rows } = await client.query<{ version: string; type: string; success: boolean }>(
    `SELECT version, type, success FROM ${qualified} WHERE version IS NOT NULL AND type <> 'SCHEMA' ORDER BY installed_rank`,
  );
  const last = new Map<string, { type: string; success: boolean }>();
  for (const r of rows) last.set(r.version, r);
  const applied = [...last].filter(([, r]) => r.success && r.type !== 'UNDO_SQL').map(([v]) => v);
  return applied.sort(compareVersions).at(-1);
}

export async function tableStats(client: pg.Client): Promise<Record<string, TableStats>> {
  const { rows } = await client.query<{ name: string; rows: string; ins: string; upd: string; del: string }>(
    `SELECT s.schemaname || '.' || s.relname AS name, GREATEST(c.reltuples, 0)::bigint AS rows,
            s.n_tup_ins AS ins, s.n_tup_upd AS upd, s.n_tup_del AS del
       FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid`,
  );
  return Object.fromEntries(
    rows.map((r) => [
      r.name,
      { rows: Number(r.rows), inserted: Number(r.ins), updated: Number(r.upd), deleted: Number(r.del) },
    ]),
  );
}

/**
 * Keyed hashes of each sampled table's first `rows` rows by primary key. The key comes from
 * the environment, so a stored sample reveals nothing of the rows without it.
 */
export async function sampleTables(
  client: pg.Client,
  tables: string[],
  rows: number,
  key: string,
): Promise<Record<string, string>> {
  const samples: Record<string, string> = {};
  for (const table of tables) {
    const [schema, name] = table.includes('.') ? table.split('.', 2) : ['public', table];
    const qualified = `${quoteIdent(schema!)}.${quoteIdent(name!)}`;
    const { rows: exists } = await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [
      qualified,
    ]);
    if (!exists[0]?.ok) {
      // A sampled table that is not there is a finding in itself, not an error.
      samples[table] = 'absent';
      continue;
    }
    const { rows: pk } = await client.query<{ cols: string[] | null }>(
      `SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum)) AS cols
         FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = to_regclass($1) AND i.indisprimary`,
      [qualified],
    );
    const order = pk[0]?.cols?.length ? pk[0].cols.map(quoteIdent).join(', ') : '1';
    const { rows: sampled } = await client.query<{ row: string }>(
      `SELECT t::text AS row FROM ${qualified} t ORDER BY ${order} LIMIT ${Math.floor(rows)}`,
    );
    const hmac = createHmac('sha256', key);
    for (const r of sampled) hmac.update(`${r.row}\n`);
    samples[table] = hmac.digest('hex');
  }
  return samples;
}

export async function databaseFingerprint(
  client: pg.Client,
  options: { schema: string; historyTable: string; sample?: { tables: string[]; rows: number; key: string } },
): Promise<DatabaseFingerprint> {
  const [schema, migration, tables, size] = [
    await schemaSignature(client),
    await migrationVersion(client, options.schema, options.historyTable),
    await tableStats(client),
    await client.query<{ bytes: string }>('SELECT pg_database_size(current_database()) AS bytes'),
  ];
  const { rows: clock } = await client.query<{ now: Date }>('SELECT now() AS now');
  return {
    format: DB_FINGERPRINT_FORMAT,
    ...(clock[0] ? { takenAt: clock[0].now.toISOString() } : {}),
    schema,
    ...(migration !== undefined ? { migration } : {}),
    bytes: Number(size.rows[0]?.bytes ?? 0),
    tables,
    ...(options.sample
      ? { samples: await sampleTables(client, options.sample.tables, options.sample.rows, options.sample.key) }
      : {}),
  };
}

/** The digest covers what must match after a rollback: the schema and the migration version. */
export function summarizeDatabase(fp: DatabaseFingerprint): FingerprintSummary {
  const digest = createHash('sha256')
    .update(`${DB_FINGERPRINT_FORMAT}\n${fp.migration ?? ''}\n${fp.schema.join('\n')}`)
    .digest('hex');
  const details: PostgresFingerprintDetails = {
    kind: 'postgres',
    tables: Object.keys(fp.tables).length,
    ...(fp.migration !== undefined ? { migration: fp.migration } : {}),
  };
  // The data snapshot holds one file: the dump.
  return { digest, bytes: fp.bytes, entries: 1, details };
}

export function parseDatabaseFingerprint(text: string): DatabaseFingerprint {
  const parsed = JSON.parse(text) as DatabaseFingerprint;
  if (parsed.format !== DB_FINGERPRINT_FORMAT)
    throw new Error(`not a rewind database fingerprint (format ${String(parsed.format)})`);
  return parsed;
}

/** Objects in one signature and not the other, for people to read. */
export function diffSignatures(current: string[], target: string[]): { added: string[]; removed: string[] } {
  const now = new Set(current);
  const then = new Set(target);
  return { added: target.filter((l) => !now.has(l)), removed: current.filter((l) => !then.has(l)) };
}
