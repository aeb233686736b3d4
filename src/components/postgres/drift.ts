// The postgres kind's drift scan. Round one compares catalogs (objects, Flyway history, row
// counts); later rounds compare keyed hashes of the first rows of tables whose shape matches on
// both sides. An answer carries definitions, counts, primary key values and keyed hashes, never
// another value of a row, and stays well under a workflow payload's limit.
import { createHash, createHmac } from 'node:crypto';
import type pg from 'pg';
import type { DescribeContext, DriftAnswer, DriftComparison, DriftDifference, DriftQuestion } from '../drift';
import { catalogObjects, migrationHistory, userTables, type HistoryRow } from './fingerprint';
import { compareVersions, quoteIdent } from './flyway';
import type { PostgresComponent } from './kind';

export type PostgresDriftQuestion =
  | { kind: 'postgres'; part: 'digest' }
  | { kind: 'postgres'; part: 'catalog'; buckets?: number[]; counts?: boolean }
  | { kind: 'postgres'; part: 'samples'; tables: string[] };

/** Objects are digested in this many buckets (by their subject), so that equal catalogs cost one small answer. */
export const OBJECT_BUCKETS = 64;

/**
 * The first answer: a digest per bucket of objects, of the Flyway history and of the row counts,
 * and what sampling needs. Only what differs is then asked for in full.
 */
export interface PostgresDigestAnswer {
  kind: 'postgres';
  part: 'digest';
  objects: string[];
  migrations: string;
  rowCounts: string;
  /** Every user table, `schema.table`. */
  tables: string[];
  sampleable: Record<string, string[]>;
}

export type PostgresMigration = HistoryRow;

export interface PostgresCatalogAnswer {
  kind: 'postgres';
  part: 'catalog';
  /** Subject → definition, sorted; ends with CATALOG_TRUNCATED when the objects did not all fit. */
  objects: Record<string, string>;
  /** Flyway history rows by installed_rank (the newest MAX_MIGRATIONS); [] without a history table. */
  migrations: PostgresMigration[];
  /** Older history rows left out of `migrations`. */
  migrationsOmitted?: number;
  /** `schema.table` → rows: counted when the planner expects under 1,000,000, else its estimate. */
  rowCounts: Record<string, { rows: number; exact: boolean }>;
  /** `schema.table` → primary key columns, for the tables that have one. */
  sampleable: Record<string, string[]>;
  /** Every user table, when `objects` holds only some buckets. */
  tables?: string[];
}

export interface PostgresTableSample {
  /** Primary key columns, in key order; [] when the table has none (then no rows are read). */
  key: string[];
  /**
   * Primary key as text (`5`, `(5,a)`; a long one shortened with a digest) → the first 32 hex
   * characters of an HMAC with the scan's key over the SHA-256 of the row's text.
   */
  rows: Record<string, string>;
  /**
   * The keys of `rows` in primary key order. JSON objects do not keep the order of integer-like
   * keys, and the comparison needs it to tell a missing row from one past the other side's window.
   */
  order: string[];
  /** The table has rows past the window read. */
  more: boolean;
}

export interface PostgresSamplesAnswer {
  kind: 'postgres';
  part: 'samples';
  tables: Record<string, PostgresTableSample | 'absent'>;
}

export type PostgresDriftAnswer = PostgresDigestAnswer | PostgresCatalogAnswer | PostgresSamplesAnswer;

/** The last entry of a catalog answer's objects when some were left out; no subject starts with `~`. */
export const CATALOG_TRUNCATED = '~truncated';
export const MAX_CATALOG_OBJECTS = 20_000;
/** Bytes of JSON a catalog answer may take; Temporal warns at 512 KiB and refuses at 2 MiB. */
export const MAX_CATALOG_BYTES = 640 * 1024;
export const MAX_MIGRATIONS = 1_000;
/** Rows one samples answer may hold, over all its tables. */
export const MAX_SAMPLE_ROWS = 5_000;
/** Without a sample section: this many tables with a primary key, this many rows each. */
export const DEFAULT_SAMPLE_TABLES = 50;
export const DEFAULT_SAMPLE_ROWS = 100;
/** Tables the planner expects to hold fewer rows than this are counted exactly. */
export const EXACT_COUNT_BELOW = 1_000_000;

const DEFINITION_CHARS = 300;
const DETAIL_CHARS = 200;
const KEY_CHARS = 40;

export function firstPostgresQuestion(_component: PostgresComponent): PostgresDriftQuestion {
  return { kind: 'postgres', part: 'digest' };
}

/** Answers one question about the database `client` is connected to; one agent, its own database. */
export async function describeDatabase(
  client: pg.Client,
  component: PostgresComponent,
  question: PostgresDriftQuestion,
  ctx: DescribeContext,
): Promise<PostgresDriftAnswer> {
  // One snapshot for the whole answer, and settings pinned so that both servers print names and
  // values alike whatever their configuration (search_path decides how names are qualified).
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    await client.query(
      `SET LOCAL search_path = pg_catalog; SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD';
       SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex';
       SET LOCAL lc_monetary = 'C'`,
    );
    const answer =
      question.part === 'digest'
        ? await describeDigest(client, component, ctx.signal)
        : question.part === 'catalog'
          ? await describeCatalog(client, component, ctx.signal, question.buckets, question.counts ?? true)
          : await describeSamples(client, component, question.tables, ctx);
    await client.query('COMMIT');
    return answer;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

function bucketOf(subject: string): number {
  return createHash('sha256').update(subject).digest()[0]! % OBJECT_BUCKETS;
}

/** Row counts of all user tables: counted when the planner expects few rows, else its estimate. */
async function countRows(
  client: pg.Client,
  tables: Awaited<ReturnType<typeof userTables>>,
  signal: AbortSignal | undefined,
): Promise<PostgresCatalogAnswer['rowCounts']> {
  const rowCounts: PostgresCatalogAnswer['rowCounts'] = {};
  const exact = tables.filter((t) => t.estimate < EXACT_COUNT_BELOW);
  for (const t of tables)
    if (t.estimate >= EXACT_COUNT_BELOW) rowCounts[`${t.schema}.${t.table}`] = { rows: t.estimate, exact: false };
  signal?.throwIfAborted();
  // One statement counts them all (query_to_xml runs each count inside the server): a round trip
  // per table costs more than the counting, and one UNION of many tables costs more to plan.
  const { rows } = await client.query<{ s: string; t: string; n: string }>(
    `SELECT s, t, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', s, t), false, true, '')))[1]::text AS n
       FROM unnest($1::text[], $2::text[]) AS u(s, t)`,
    [exact.map((t) => t.schema), exact.map((t) => t.table)],
  );
  for (const r of rows) rowCounts[`${r.s}.${r.t}`] = { rows: Number(r.n), exact: true };
  return rowCounts;
}

async function describeDigest(
  client: pg.Client,
  component: PostgresComponent,
  signal: AbortSignal | undefined,
): Promise<PostgresDigestAnswer> {
  const history = { schema: component.schema, table: component.historyTable };
  const { rows: migrations, total } = await migrationHistory(client, history.schema, history.table, MAX_MIGRATIONS);
  const tables = await userTables(client, history);
  const rowCounts = await countRows(client, tables, signal);
  const buckets = Array.from({ length: OBJECT_BUCKETS }, () => createHash('sha256'));
  for (const { subject, definition } of await catalogObjects(client, history))
    buckets[bucketOf(subject)]!.update(`${subject}\0${boundDefinition(definition)}\n`);
  const digest = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 32);
  const names = tables.map((t) => `${t.schema}.${t.table}`).sort(byCodeUnit);
  return {
    kind: 'postgres',
    part: 'digest',
    objects: buckets.map((h) => h.digest('hex').slice(0, 32)),
    migrations: digest({ migrations, total }),
    rowCounts: digest(names.map((n) => [n, rowCounts[n]])),
    tables: names,
    sampleable: Object.fromEntries(
      tables.filter((t) => t.primaryKey.length > 0).map((t) => [`${t.schema}.${t.table}`, t.primaryKey]),
    ),
  };
}

async function describeCatalog(
  client: pg.Client,
  component: PostgresComponent,
  signal: AbortSignal | undefined,
  onlyBuckets?: number[],
  withCounts = true,
): Promise<PostgresCatalogAnswer> {
  const history = { schema: component.schema, table: component.historyTable };
  const { rows: migrations, total } = await migrationHistory(client, history.schema, history.table, MAX_MIGRATIONS);
  const tables = await userTables(client, history);
  const tableCosts = new Map<string, number>();
  // Counts equal on both sides (their digests said so) are not counted again.
  const rowCounts = withCounts ? await countRows(client, tables, signal) : {};
  const sampleable: PostgresCatalogAnswer['sampleable'] = {};
  for (const t of tables) {
    const name = `${t.schema}.${t.table}`;
    if (t.primaryKey.length > 0) sampleable[name] = t.primaryKey;
    tableCosts.set(
      `table ${name}`,
      jsonBytes(name) * 2 + jsonBytes(rowCounts[name] ?? null) + jsonBytes(t.primaryKey) + 2,
    );
  }
  const wanted = onlyBuckets && new Set(onlyBuckets);

  // Objects go in subject order until the budget is spent; a table's counts and key travel with it.
  let budget = MAX_CATALOG_BYTES - jsonBytes(migrations) - 512;
  const all = (await catalogObjects(client, history)).filter((o) => !wanted || wanted.has(bucketOf(o.subject)));
  const objects: Record<string, string> = {};
  const listedTables = new Set<string>();
  let listed = 0;
  for (const { subject, definition } of all) {
    const bounded = boundDefinition(definition);
    const cost = jsonBytes(subject) + jsonBytes(bounded) + 2 + (tableCosts.get(subject) ?? 0);
    if (listed === MAX_CATALOG_OBJECTS || cost > budget) break;
    objects[subject] = bounded;
    if (tableCosts.has(subject)) listedTables.add(subject.slice('table '.length));
    budget -= cost;
    listed += 1;
  }
  if (listed < all.length) objects[CATALOG_TRUNCATED] = `${all.length - listed} of ${all.length} objects not listed`;
  // With only some buckets, every table's counts and key travel: sampling needs them all.
  const keep = <V>(record: Record<string, V>) =>
    wanted ? record : Object.fromEntries(Object.entries(record).filter(([name]) => listedTables.has(name)));
  return {
    kind: 'postgres',
    part: 'catalog',
    objects,
    migrations,
    ...(total > migrations.length ? { migrationsOmitted: total - migrations.length } : {}),
    rowCounts: keep(rowCounts),
    sampleable: keep(sampleable),
    ...(wanted ? { tables: tables.map((t) => `${t.schema}.${t.table}`) } : {}),
  };
}

async function describeSamples(
  client: pg.Client,
  component: PostgresComponent,
  tables: string[],
  ctx: DescribeContext,
): Promise<PostgresSamplesAnswer> {
  const limit = sampleRows(component);
  if (tables.length > tablesPerQuestion(component))
    throw new Error(
      `a samples question names ${tables.length} tables; one answer holds ${tablesPerQuestion(component)}`,
    );
  const answer: PostgresSamplesAnswer = { kind: 'postgres', part: 'samples', tables: {} };
  for (const name of tables) {
    ctx.signal?.throwIfAborted();
    // Names come as `schema.table`; matching the whole text avoids guessing where a dotted name splits.
    const { rows: found } = await client.query<{ oid: number; schema: string; table: string }>(
      `SELECT c.oid, n.nspname AS schema, c.relname AS table
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname || '.' || c.relname = $1 AND c.relkind IN ('r', 'p')
        ORDER BY n.nspname LIMIT 1`,
      [name],
    );
    const table = found[0];
    if (!table) {
      answer.tables[name] = 'absent';
      continue;
    }
    answer.tables[name] = await sampleTable(client, table, limit, ctx.hashKey);
  }
  return answer;
}

async function sampleTable(
  client: pg.Client,
  table: { oid: number; schema: string; table: string },
  limit: number,
  hashKey: string,
): Promise<PostgresTableSample> {
  const { rows: key } = await client.query<{ name: string; collatable: boolean }>(
    `SELECT a.attname AS name, a.attcollation <> 0 AS collatable
       FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
      WHERE i.indrelid = $1 AND i.indisprimary
      ORDER BY array_position(i.indkey, a.attnum)`,
    [table.oid],
  );
  if (key.length === 0) return { key: [], rows: {}, order: [], more: false };
  const { rows: columns } = await client.query<{ name: string }>(
    'SELECT attname AS name FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped',
    [table.oid],
  );
  const column = (name: string) => `t.${quoteIdent(name)}`;
  const keyText =
    key.length === 1 ? `${column(key[0]!.name)}::text` : `ROW(${key.map((k) => column(k.name)).join(', ')})::text`;
  // Columns by name, so that the same columns in another order hash alike; byte order of text
  // keys, so that servers with different default collations read the same first rows.
  const rowText = `ROW(${columns
    .map((c) => c.name)
    .sort(byCodeUnit)
    .map(column)
    .join(', ')})::text`;
  const order = key.map((k) => `${column(k.name)}${k.collatable ? ' COLLATE "C"' : ''}`).join(', ');
  // The row is digested where it lies, so that a wide row never crosses the connection.
  const { rows } = await client.query<{ key: string; digest: string }>(
    `SELECT ${keyText} AS key, encode(sha256(convert_to(${rowText}, 'UTF8')), 'hex') AS digest
       FROM ${quoteIdent(table.schema)}.${quoteIdent(table.table)} t
      ORDER BY ${order} LIMIT $1`,
    [limit + 1],
  );
  const read = rows.slice(0, limit).map((row) => ({
    id: boundKey(row.key),
    hash: createHmac('sha256', hashKey).update(row.digest).digest('hex').slice(0, 32),
  }));
  return {
    key: key.map((k) => k.name),
    // fromEntries makes own properties even of keys such as `__proto__`.
    rows: Object.fromEntries(read.map((r) => [r.id, r.hash])),
    order: read.map((r) => r.id),
    more: rows.length > limit,
  };
}

/** Compares both sides' answers to one question: differences, and the questions for the next round. */
export function comparePostgres(
  question: DriftQuestion,
  from: DriftAnswer,
  to: DriftAnswer,
  component: PostgresComponent,
): DriftComparison {
  const q = question as PostgresDriftQuestion;
  if (q.part === 'digest') {
    const a = asAnswer(from, 'digest');
    const b = asAnswer(to, 'digest');
    const buckets = a.objects.flatMap((d, i) => (d === b.objects[i] ? [] : [i]));
    if (buckets.length > 0 || a.migrations !== b.migrations || a.rowCounts !== b.rowCounts) {
      const catalog: PostgresDriftQuestion = {
        kind: 'postgres',
        part: 'catalog',
        buckets,
        ...(a.rowCounts === b.rowCounts ? { counts: false } : {}),
      };
      return { differences: [], next: [catalog] };
    }
    // Equal catalogs: straight to the row samples.
    const asCatalog = (d: PostgresDigestAnswer): PostgresCatalogAnswer => ({
      kind: 'postgres',
      part: 'catalog',
      objects: {},
      migrations: [],
      rowCounts: {},
      sampleable: d.sampleable,
      tables: d.tables,
    });
    return { differences: [], next: sampleQuestions(asCatalog(a), asCatalog(b), new Set(), component) };
  }
  if (q.part === 'catalog') {
    const a = asAnswer(from, 'catalog');
    const b = asAnswer(to, 'catalog');
    const schema = compareObjects(a.objects, b.objects);
    const differences = [...schema.differences, ...compareRowCounts(a, b), ...compareMigrations(a, b)];
    return { differences: sortDifferences(differences), next: sampleQuestions(a, b, schema.differing, component) };
  }
  if (q.part === 'samples') {
    const a = asAnswer(from, 'samples');
    const b = asAnswer(to, 'samples');
    const differences = [...q.tables]
      .sort(byCodeUnit)
      .flatMap((table) => compareSamples(table, a.tables[table], b.tables[table]));
    return { differences: sortDifferences(differences), next: [] };
  }
  throw new Error(`not a postgres drift question: ${JSON.stringify(question)}`);
}

function asAnswer<P extends PostgresDriftAnswer['part']>(
  answer: DriftAnswer,
  part: P,
): Extract<PostgresDriftAnswer, { part: P }> {
  const a = answer as Partial<PostgresDriftAnswer>;
  if (a.kind !== 'postgres' || a.part !== part) throw new Error(`expected a postgres ${part} answer`);
  return a as Extract<PostgresDriftAnswer, { part: P }>;
}

function compareObjects(
  from: Record<string, string>,
  to: Record<string, string>,
): { differences: DriftDifference[]; differing: Set<string> } {
  const differences: DriftDifference[] = [];
  const differing = new Set<string>();
  // Past the last subject a truncated side listed, that side says nothing: compare up to there.
  const limits = [from, to]
    .filter((side) => CATALOG_TRUNCATED in side)
    .map(
      (side) =>
        Object.keys(side)
          .filter((s) => s !== CATALOG_TRUNCATED)
          .at(-1) ?? '',
    );
  const limit = limits.sort(byCodeUnit)[0];
  const subjects = new Set([...Object.keys(from), ...Object.keys(to)]);
  subjects.delete(CATALOG_TRUNCATED);
  for (const subject of subjects) {
    if (limit !== undefined && subject > limit) continue;
    const a = from[subject];
    const b = to[subject];
    if (a === b) continue;
    differing.add(subject);
    if (a === undefined)
      differences.push({ subject, change: 'added', aspect: 'schema', detail: cut(b || 'only in to', DETAIL_CHARS) });
    else if (b === undefined)
      differences.push({
        subject,
        change: 'removed',
        aspect: 'schema',
        detail: cut(a || 'only in from', DETAIL_CHARS),
      });
    else differences.push({ subject, change: 'changed', aspect: 'schema', detail: changeDetail(a, b) });
  }
  if (limit !== undefined)
    differences.push({
      subject: 'catalog',
      change: 'changed',
      aspect: 'schema',
      detail: cut(
        `not compared past ${limit}: ${[from[CATALOG_TRUNCATED], to[CATALOG_TRUNCATED]]
          .map((note, i) => `${i === 0 ? 'from' : 'to'} ${note ?? 'complete'}`)
          .join(', ')}`,
        DETAIL_CHARS,
      ),
    });
  return { differences, differing };
}

function compareRowCounts(from: PostgresCatalogAnswer, to: PostgresCatalogAnswer): DriftDifference[] {
  const differences: DriftDifference[] = [];
  for (const [table, a] of Object.entries(from.rowCounts)) {
    const b = to.rowCounts[table];
    if (!b || a.rows === b.rows) continue;
    // Two estimates of the same rows rarely agree exactly; under 1% is the estimate's own noise.
    if ((!a.exact || !b.exact) && Math.abs(a.rows - b.rows) < 0.01 * Math.max(a.rows, b.rows)) continue;
    const shown = (c: { rows: number; exact: boolean }) => `${c.exact ? '' : '≈'}${thousands(c.rows)}`;
    differences.push({
      subject: `table ${table}`,
      change: 'changed',
      aspect: 'rows',
      detail: `${shown(a)} → ${shown(b)} rows`,
    });
  }
  return differences;
}

/**
 * Flyway history by version, or by description for repeatable scripts; a version's latest row
 * is its state (an undo after a migration leaves it undone), as is a repeatable's latest run.
 */
function compareMigrations(from: PostgresCatalogAnswer, to: PostgresCatalogAnswer): DriftDifference[] {
  const latest = (rows: PostgresMigration[]) =>
    new Map(rows.map((r) => [r.version === null ? `R ${r.description}` : `V ${r.version}`, r]));
  const a = latest(from.migrations);
  const b = latest(to.migrations);
  // A side whose oldest rows were left out cannot say that a version older than its oldest listed is missing.
  const floors = [from, to]
    .filter((side) => side.migrationsOmitted)
    .map((side) => side.migrations.find((r) => r.version !== null)?.version ?? null);
  const truncated = floors.length > 0;
  const floor = floors.reduce<string | null>(
    (max, v) => (v === null ? max : max === null || safeCompareVersions(v, max) > 0 ? v : max),
    null,
  );
  const knownToBoth = (r: PostgresMigration) =>
    !truncated || (r.version !== null && floor !== null && safeCompareVersions(r.version, floor) >= 0);
  const subject = (r: PostgresMigration) => `migration ${r.version ?? 'R'} ${r.description}`;
  const differences: DriftDifference[] = [];
  for (const [key, x] of a) {
    const y = b.get(key);
    if (!y) {
      if (knownToBoth(x))
        differences.push({ subject: subject(x), change: 'removed', aspect: 'migration', detail: migrationState(x) });
      continue;
    }
    const changes = [
      x.type !== y.type ? `type ${x.type} → ${y.type}` : '',
      x.checksum !== y.checksum ? `checksum ${x.checksum ?? 'none'} → ${y.checksum ?? 'none'}` : '',
      x.success !== y.success ? `${outcome(x)} → ${outcome(y)}` : '',
      x.description !== y.description ? `description ${x.description} → ${y.description}` : '',
    ].filter(Boolean);
    if (changes.length > 0)
      differences.push({
        subject: subject(x),
        change: 'changed',
        aspect: 'migration',
        detail: cut(changes.join('; '), DETAIL_CHARS),
      });
  }
  for (const [key, y] of b)
    if (!a.has(key) && knownToBoth(y))
      differences.push({ subject: subject(y), change: 'added', aspect: 'migration', detail: migrationState(y) });
  return differences;
}

const outcome = (r: PostgresMigration) => (r.success ? 'succeeded' : 'failed');
const migrationState = (r: PostgresMigration) =>
  cut(`${r.type}, checksum ${r.checksum ?? 'none'}, ${outcome(r)}`, DETAIL_CHARS);

function safeCompareVersions(a: string, b: string): number {
  try {
    return compareVersions(a, b);
  } catch {
    // Not a numeric version (a history table Flyway did not write): fall back to text order.
    return byCodeUnit(a, b);
  }
}

/**
 * The samples to ask for: tables with the same primary key on both sides and an identical
 * table and columns (a sample of a table whose shape differs repeats a schema finding), split so
 * that each answer holds at most MAX_SAMPLE_ROWS rows.
 */
function sampleQuestions(
  from: PostgresCatalogAnswer,
  to: PostgresCatalogAnswer,
  differing: Set<string>,
  component: PostgresComponent,
): PostgresDriftQuestion[] {
  const fromTables = from.tables && new Set(from.tables);
  const toTables = to.tables && new Set(to.tables);
  const present = (side: PostgresCatalogAnswer, table: string) => {
    const listed = side === from ? fromTables : toTables;
    return listed ? listed.has(table) : `table ${table}` in side.objects;
  };
  const shapeDiffers = (table: string) =>
    [...differing].some((s) => s === `table ${table}` || s.startsWith(`column ${table}.`));
  const comparable = (table: string) => {
    const a = from.sampleable[table];
    const b = to.sampleable[table];
    return (
      a !== undefined &&
      b !== undefined &&
      a.join('\0') === b.join('\0') &&
      present(from, table) &&
      present(to, table) &&
      !shapeDiffers(table)
    );
  };
  const tables = component.sample
    ? [...new Set(component.sample.tables.map((t) => (t.includes('.') ? t : `public.${t}`)))]
        .filter(comparable)
        .sort(byCodeUnit)
    : Object.keys(from.sampleable).filter(comparable).sort(byCodeUnit).slice(0, DEFAULT_SAMPLE_TABLES);
  const size = tablesPerQuestion(component);
  const questions: PostgresDriftQuestion[] = [];
  for (let i = 0; i < tables.length; i += size)
    questions.push({ kind: 'postgres', part: 'samples', tables: tables.slice(i, i + size) });
  return questions;
}

/** Rows read from each sampled table; one table alone never exceeds an answer's rows. */
export function sampleRows(component: PostgresComponent): number {
  return Math.min(component.sample?.rows ?? DEFAULT_SAMPLE_ROWS, MAX_SAMPLE_ROWS);
}

export function tablesPerQuestion(component: PostgresComponent): number {
  return Math.max(1, Math.floor(MAX_SAMPLE_ROWS / sampleRows(component)));
}

/**
 * Each side read its first rows by primary key. A row on one side only is reported when it lies
 * within the other side's window: that side read its whole table, or a row both sides hold comes
 * after it. Past the last shared row, one side's extra row may just be the other's next, unread.
 */
function compareSamples(
  table: string,
  from: PostgresTableSample | 'absent' | undefined,
  to: PostgresTableSample | 'absent' | undefined,
): DriftDifference[] {
  // A table missing on one side, or keyed differently, is the catalog comparison's finding.
  if (!from || !to || from === 'absent' || to === 'absent') return [];
  if (from.key.length === 0 || from.key.join('\0') !== to.key.join('\0')) return [];
  const where = `row ${table} (${from.key.join(', ')})=`;
  const subject = (key: string) => `${where}${from.key.length === 1 ? `(${key})` : key}`;
  const lastShared = (side: PostgresTableSample, other: PostgresTableSample) => {
    for (let i = side.order.length - 1; i >= 0; i--) if (Object.hasOwn(other.rows, side.order[i]!)) return i;
    return -1;
  };
  const differences: DriftDifference[] = [];
  const fromShared = lastShared(from, to);
  from.order.forEach((key, i) => {
    const theirs = Object.hasOwn(to.rows, key) ? to.rows[key] : undefined;
    if (theirs === undefined) {
      if (!to.more || i < fromShared)
        differences.push({
          subject: subject(key),
          change: 'removed',
          aspect: 'sample',
          detail: 'row only in from (values not shown)',
        });
    } else if (theirs !== from.rows[key])
      differences.push({
        subject: subject(key),
        change: 'changed',
        aspect: 'sample',
        detail: 'row differs (values not shown)',
      });
  });
  const toShared = lastShared(to, from);
  to.order.forEach((key, i) => {
    if (!Object.hasOwn(from.rows, key) && (!from.more || i < toShared))
      differences.push({
        subject: subject(key),
        change: 'added',
        aspect: 'sample',
        detail: 'row only in to (values not shown)',
      });
  });
  return differences;
}

function sortDifferences(differences: DriftDifference[]): DriftDifference[] {
  return differences.sort(
    (x, y) => byCodeUnit(x.subject, y.subject) || byCodeUnit(x.aspect, y.aspect) || byCodeUnit(x.change, y.change),
  );
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value));
}

/**
 * A definition as an answer carries it: whitespace runs as one space (a CRLF checkout is no
 * drift), and past DEFINITION_CHARS a prefix plus the md5 of the whole, so that two long
 * definitions with the same beginning still differ.
 */
function boundDefinition(definition: string): string {
  const flat = definition.replace(/\s+/g, ' ').trim();
  if (flat.length <= DEFINITION_CHARS) return flat;
  return `${cut(flat, DEFINITION_CHARS)} md5 ${createHash('md5').update(flat).digest('hex')}`;
}

/** A long primary key as a prefix and a digest: still unique, and bounded. */
function boundKey(key: string): string {
  if (key.length <= KEY_CHARS) return key;
  return `${cut(key, KEY_CHARS - 17)}${createHash('md5').update(key).digest('hex').slice(0, 16)}`;
}

/** `from → to`, around the first character where they part when both will not fit. */
function changeDetail(from: string, to: string): string {
  const whole = `${from} → ${to}`;
  if (whole.length <= DETAIL_CHARS) return whole;
  let common = 0;
  while (common < from.length && from[common] === to[common]) common += 1;
  const start = Math.max(0, common - 20);
  const half = Math.floor((DETAIL_CHARS - 3) / 2);
  const excerpt = (text: string) => `${start > 0 ? '…' : ''}${cut(text.slice(start), half - 1)}`;
  return `${excerpt(from)} → ${excerpt(to)}`;
}

/** At most `max` characters, ending in `…` when shortened, never splitting a surrogate pair. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

function thousands(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
