// The postgres kind's drift scan. Round one compares catalogs (objects, Flyway history, row
// counts); later rounds compare keyed hashes of the first rows of tables whose shape matches on
// both sides. An answer carries definitions, counts, primary key values and keyed hashes, never
// another value of a row, and stays well under a workflow payload's limit.
import { createHash, createHmac } from 'node:crypto';
import type pg from 'pg';
import type {
  DescribeContext,
  DriftAnswer,
  DriftComparison,
  DriftDifference,
  DriftQuestion,
  DriftSides,
  PreviousDifference,
} from '../drift';
import {
  catalogObjects,
  migrationHistory,
  subjectBucket,
  userTables,
  type CatalogObject,
  type HistoryRow,
  type UserTable,
} from './fingerprint';
import { compareVersions, quoteIdent } from './flyway';
import type { PostgresComponent } from './kind';

export type PostgresDriftQuestion =
  /** `buckets`: their objects come with the digests too (what differed in the last scan). */
  | { kind: 'postgres'; part: 'digest'; buckets?: number[] }
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
  /** `schema.table` → digest of its sample, for the tables this side samples (see sampleTargets). */
  samples: Record<string, string>;
  /**
   * The objects of the question's buckets, as a catalog answer lists them; left out when they
   * would pass MAX_PREFETCH_BYTES.
   */
  prefetched?: Record<string, string>;
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
  /** `schema.table` → digest of its sample, as in the digest answer. */
  samples?: Record<string, string>;
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

/** Buckets a first question asks for at most; past them the last scan's drift is too wide to guess. */
export const MAX_PREFETCH_BUCKETS = 8;
/** Bytes of JSON the prefetched objects may take in a digest answer. */
export const MAX_PREFETCH_BYTES = 64 * 1024;

/** A sync restores the source's dump over the target's database: nothing of the target's stays. */
export function postgresSyncOverwrites(_component: PostgresComponent, { from, to }: DriftSides): string {
  return `${to}'s database is replaced whole with ${from}'s snapshot: every row and object ${to} wrote or changed is lost (the safety snapshot taken first keeps them)`;
}

/**
 * The digests of everything, and the objects of the buckets where the last scan found schema
 * drift: when drift persisted and nothing else changed, the scan ends in one round.
 */
export function firstPostgresQuestion(
  _component: PostgresComponent,
  previous: readonly PreviousDifference[] = [],
): PostgresDriftQuestion {
  const buckets = [
    ...new Set(
      previous.filter((p) => p.aspect === 'schema' && p.subject !== 'catalog').map((p) => bucketOf(p.subject)),
    ),
  ].sort((a, b) => a - b);
  return buckets.length > 0 && buckets.length <= MAX_PREFETCH_BUCKETS
    ? { kind: 'postgres', part: 'digest', buckets }
    : { kind: 'postgres', part: 'digest' };
}

/** Rows the digest round samples at most, over all tables; a table past them is sampled when asked. */
const MAX_DIGEST_SAMPLE_ROWS = 50_000;

/**
 * What one side read of its database in one snapshot. The digest round reads it all (catalog,
 * history, counts and the samples of the tables it would sample); a scan's later rounds answer
 * from it, so that both rounds describe the same moment and nothing is read twice.
 */
interface DatabaseRead {
  /** With each object's bucket and its definition as answers carry it, worked out once. */
  objects: ReadObject[];
  migrations: HistoryRow[];
  totalMigrations: number;
  tables: UserTable[];
  rowCounts: PostgresCatalogAnswer['rowCounts'];
  samples: Map<string, PostgresTableSample | 'absent'>;
}

interface ReadObject extends CatalogObject {
  bucket: number;
  bounded: string;
}

type Describe = (
  client: pg.Client,
  component: PostgresComponent,
  question: PostgresDriftQuestion,
  ctx: DescribeContext,
) => Promise<PostgresDriftAnswer>;

/**
 * Answers one question about the database `client` is connected to, reading what it needs in
 * one snapshot; nothing is kept between questions.
 */
export const describeDatabase: Describe = async (client, component, question, ctx) => {
  if (question.part === 'samples') {
    checkSampleQuestion(question.tables, component);
    const tables = await inSnapshot(client, () => sampleTables(client, question.tables, sampleRows(component), ctx));
    return { kind: 'postgres', part: 'samples', tables };
  }
  return answerFromRead(await inSnapshot(client, () => readDatabase(client, component, ctx)), question);
};

/**
 * A describer that keeps each database's read for the rest of its scan: the digest round reads,
 * the catalog and samples rounds of the same scan answer from that read. A new scan, or an
 * agent restarted mid-scan (nothing held), reads afresh.
 */
export function createDatabaseDescriber(): Describe {
  const held = new Map<string, { scanId: string; read: DatabaseRead }>();
  return async (client, component, question, ctx) => {
    const key = `${ctx.stateDir}\0${client.host}:${client.port}/${client.database}`;
    let entry = held.get(key);
    if (question.part === 'samples') {
      checkSampleQuestion(question.tables, component);
      const read = entry?.scanId === ctx.scanId ? entry.read : undefined;
      const missing = question.tables.filter((t) => !read?.samples.has(t));
      const fresh = missing.length
        ? await inSnapshot(client, () => sampleTables(client, missing, sampleRows(component), ctx))
        : {};
      const tables = Object.fromEntries(question.tables.map((t) => [t, read?.samples.get(t) ?? fresh[t]!]));
      return { kind: 'postgres', part: 'samples', tables };
    }
    if (question.part === 'digest' || entry?.scanId !== ctx.scanId) {
      held.delete(key);
      entry = { scanId: ctx.scanId, read: await inSnapshot(client, () => readDatabase(client, component, ctx)) };
      held.set(key, entry);
    }
    return answerFromRead(entry.read, question);
  };
}

/**
 * One snapshot for the whole read, and settings pinned so that both servers print names and
 * values alike whatever their configuration (search_path decides how names are qualified).
 */
async function inSnapshot<T>(client: pg.Client, read: () => Promise<T>): Promise<T> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    await client.query(
      `SET LOCAL search_path = pg_catalog; SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD';
       SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex';
       SET LOCAL lc_monetary = 'C'`,
    );
    const result = await read();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function readDatabase(
  client: pg.Client,
  component: PostgresComponent,
  ctx: DescribeContext,
): Promise<DatabaseRead> {
  const history = { schema: component.schema, table: component.historyTable };
  const { rows: migrations, total } = await migrationHistory(client, history.schema, history.table, MAX_MIGRATIONS);
  const tables = await userTables(client, history);
  const rowCounts = await countRows(client, tables, ctx.signal);
  const objects = (await catalogObjects(client, history, OBJECT_BUCKETS)).map((o): ReadObject => ({
    subject: o.subject,
    definition: o.definition,
    bucket: o.bucket,
    bounded: boundDefinition(o.definition),
  }));
  // The tables this side would sample, as many as the digest round's budget allows, a
  // question's worth per statement.
  const limit = sampleRows(component);
  const targets = sampleTargets(component, sampleableOf(tables)).slice(0, Math.floor(MAX_DIGEST_SAMPLE_ROWS / limit));
  const samples = new Map<string, PostgresTableSample | 'absent'>();
  // A table whose heap has no pages has no rows to sample (as countRows reasons).
  const byName = new Map(tables.map((t) => [`${t.schema}.${t.table}`, t]));
  const toRead: string[] = [];
  for (const name of targets) {
    const table = byName.get(name);
    if (table?.empty) samples.set(name, { key: table.primaryKey, rows: {}, order: [], more: false });
    else toRead.push(name);
  }
  const perStatement = tablesPerQuestion(component);
  for (let i = 0; i < toRead.length; i += perStatement)
    for (const [name, sample] of Object.entries(
      await sampleTables(client, toRead.slice(i, i + perStatement), limit, ctx),
    ))
      samples.set(name, sample);
  return { objects, migrations, totalMigrations: total, tables, rowCounts, samples };
}

function answerFromRead(
  read: DatabaseRead,
  question: Exclude<PostgresDriftQuestion, { part: 'samples' }>,
): PostgresDriftAnswer {
  const sampleDigests = Object.fromEntries(
    [...read.samples].map(([name, sample]) => [name, digestOf(sample)] as const),
  );
  if (question.part === 'digest') {
    const buckets = Array.from({ length: OBJECT_BUCKETS }, () => createHash('sha256'));
    for (const { subject, bucket, bounded } of read.objects) buckets[bucket]!.update(`${subject}\0${bounded}\n`);
    const names = read.tables.map((t) => `${t.schema}.${t.table}`).sort(byCodeUnit);
    return {
      kind: 'postgres',
      part: 'digest',
      objects: buckets.map((h) => h.digest('hex').slice(0, 32)),
      migrations: digestOf({ migrations: read.migrations, total: read.totalMigrations }),
      rowCounts: digestOf(names.map((n) => [n, read.rowCounts[n]])),
      tables: names,
      sampleable: sampleableOf(read.tables),
      samples: sampleDigests,
      ...prefetch(read, question.buckets),
    };
  }
  return catalogAnswer(read, sampleDigests, question.buckets, question.counts ?? true);
}

function prefetch(read: DatabaseRead, buckets: number[] | undefined): { prefetched?: Record<string, string> } {
  if (!buckets?.length) return {};
  const wanted = new Set(buckets);
  const prefetched: Record<string, string> = {};
  let bytes = 0;
  for (const { subject, bucket, bounded } of read.objects) {
    if (!wanted.has(bucket)) continue;
    bytes += jsonBytes(subject) + jsonBytes(bounded) + 2;
    if (bytes > MAX_PREFETCH_BYTES) return {};
    prefetched[subject] = bounded;
  }
  return { prefetched };
}

function checkSampleQuestion(tables: string[], component: PostgresComponent): void {
  if (tables.length > tablesPerQuestion(component))
    throw new Error(
      `a samples question names ${tables.length} tables; one answer holds ${tablesPerQuestion(component)}`,
    );
}

function digestOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 32);
}

function sampleableOf(tables: UserTable[]): Record<string, string[]> {
  return Object.fromEntries(
    tables.filter((t) => t.primaryKey.length > 0).map((t) => [`${t.schema}.${t.table}`, t.primaryKey]),
  );
}

/**
 * The tables a side samples: the manifest's `sample.tables`, or else the first
 * DEFAULT_SAMPLE_TABLES tables with a primary key, by name. Both the agents and the comparison
 * choose with this, so a table whose sample digests agree needs no samples round.
 */
export function sampleTargets(component: PostgresComponent, sampleable: Record<string, string[]>): string[] {
  return component.sample
    ? [...new Set(component.sample.tables.map((t) => (t.includes('.') ? t : `public.${t}`)))].sort(byCodeUnit)
    : Object.keys(sampleable).sort(byCodeUnit).slice(0, DEFAULT_SAMPLE_TABLES);
}

function bucketOf(subject: string): number {
  return subjectBucket(subject, OBJECT_BUCKETS);
}

/** Row counts of all user tables: counted when the planner expects few rows, else its estimate. */
async function countRows(
  client: pg.Client,
  tables: UserTable[],
  signal: AbortSignal | undefined,
): Promise<PostgresCatalogAnswer['rowCounts']> {
  const rowCounts: PostgresCatalogAnswer['rowCounts'] = {};
  // A table whose heap has no pages holds no rows in any snapshot: nothing to count.
  const exact = tables.filter((t) => !t.empty && t.estimate < EXACT_COUNT_BELOW);
  for (const t of tables) {
    const name = `${t.schema}.${t.table}`;
    if (t.empty) rowCounts[name] = { rows: 0, exact: true };
    else if (t.estimate >= EXACT_COUNT_BELOW) rowCounts[name] = { rows: t.estimate, exact: false };
  }
  signal?.throwIfAborted();
  if (exact.length === 0) return rowCounts;
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

function catalogAnswer(
  read: DatabaseRead,
  sampleDigests: Record<string, string>,
  onlyBuckets?: number[],
  withCounts = true,
): PostgresCatalogAnswer {
  const { migrations, tables } = read;
  const tableCosts = new Map<string, number>();
  // Counts equal on both sides (their digests said so) do not travel again.
  const rowCounts = withCounts ? read.rowCounts : {};
  const sampleable = sampleableOf(tables);
  for (const t of tables) {
    const name = `${t.schema}.${t.table}`;
    tableCosts.set(
      `table ${name}`,
      jsonBytes(name) * 2 + jsonBytes(rowCounts[name] ?? null) + jsonBytes(t.primaryKey) + 2,
    );
  }
  const wanted = onlyBuckets && new Set(onlyBuckets);

  // Objects go in subject order until the budget is spent; a table's counts and key travel with it.
  let budget = MAX_CATALOG_BYTES - jsonBytes(migrations) - jsonBytes(sampleDigests) - 512;
  const all = read.objects.filter((o) => !wanted || wanted.has(o.bucket));
  const objects: Record<string, string> = {};
  const listedTables = new Set<string>();
  let listed = 0;
  for (const { subject, bounded } of all) {
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
    ...(read.totalMigrations > migrations.length
      ? { migrationsOmitted: read.totalMigrations - migrations.length }
      : {}),
    rowCounts: keep(rowCounts),
    sampleable: keep(sampleable),
    ...(wanted ? { tables: tables.map((t) => `${t.schema}.${t.table}`) } : {}),
    samples: sampleDigests,
  };
}

/**
 * Keyed-hash samples of some tables: one catalog query for their keys and columns, and one
 * statement for all their rows (a statement per table costs a round trip each). Row values are
 * digested where they lie, so a wide row never crosses the connection.
 */
async function sampleTables(
  client: pg.Client,
  names: string[],
  limit: number,
  ctx: DescribeContext,
): Promise<Record<string, PostgresTableSample | 'absent'>> {
  const samples: Record<string, PostgresTableSample | 'absent'> = {};
  if (names.length === 0) return samples;
  ctx.signal?.throwIfAborted();
  // Names come as `schema.table`; matching the whole text avoids guessing where a dotted name splits.
  const { rows: found } = await client.query<{
    name: string;
    schema: string;
    table: string;
    key: { name: string; collatable: boolean }[] | null;
    columns: string[];
  }>(
    `SELECT DISTINCT ON (name) n.nspname || '.' || c.relname AS name, n.nspname AS schema, c.relname AS table,
            (SELECT json_agg(json_build_object('name', a.attname, 'collatable', a.attcollation <> 0)
                             ORDER BY array_position(i.indkey, a.attnum))
               FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
              WHERE i.indrelid = c.oid AND i.indisprimary) AS key,
            ARRAY(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname || '.' || c.relname = ANY($1::text[]) AND c.relkind IN ('r', 'p')
      ORDER BY name, n.nspname`,
    [names],
  );
  const byName = new Map(found.map((t) => [t.name, t]));
  const keyed: { name: string; key: string[] }[] = [];
  const parts: string[] = [];
  for (const name of names) {
    const table = byName.get(name);
    if (!table) samples[name] = 'absent';
    else if (!table.key?.length) samples[name] = { key: [], rows: {}, order: [], more: false };
    else {
      parts.push(sampleStatement(keyed.length, table.schema, table.table, table.key, table.columns));
      keyed.push({ name, key: table.key.map((k) => k.name) });
    }
  }
  if (parts.length === 0) return samples;
  const { rows } = await client.query<{ i: number; n: string; key: string; digest: string }>(
    parts.join('\nUNION ALL\n'),
    [limit + 1],
  );
  const read: { n: number; key: string; digest: string }[][] = keyed.map(() => []);
  for (const r of rows) read[r.i]!.push({ n: Number(r.n), key: r.key, digest: r.digest });
  keyed.forEach(({ name, key }, i) => {
    const ordered = read[i]!.sort((x, y) => x.n - y.n);
    const kept = ordered.slice(0, limit).map((row) => ({
      id: boundKey(row.key),
      hash: createHmac('sha256', ctx.hashKey).update(row.digest).digest('hex').slice(0, 32),
    }));
    samples[name] = {
      key,
      // fromEntries makes own properties even of keys such as `__proto__`.
      rows: Object.fromEntries(kept.map((r) => [r.id, r.hash])),
      order: kept.map((r) => r.id),
      more: ordered.length > limit,
    };
  });
  return samples;
}

/** One table's first rows by primary key, as (its number, position, key text, row digest). */
function sampleStatement(
  i: number,
  schema: string,
  table: string,
  key: { name: string; collatable: boolean }[],
  columns: string[],
): string {
  const column = (name: string) => `t.${quoteIdent(name)}`;
  const keyText =
    key.length === 1 ? `${column(key[0]!.name)}::text` : `ROW(${key.map((k) => column(k.name)).join(', ')})::text`;
  // Columns by name, so that the same columns in another order hash alike; byte order of text
  // keys, so that servers with different default collations read the same first rows.
  const rowText = `ROW(${[...columns].sort(byCodeUnit).map(column).join(', ')})::text`;
  const order = key.map((k) => `${column(k.name)}${k.collatable ? ' COLLATE "C"' : ''}`).join(', ');
  return `(SELECT ${i} AS i, row_number() OVER (ORDER BY ${order}) AS n, ${keyText} AS key,
          encode(sha256(convert_to(${rowText}, 'UTF8')), 'hex') AS digest
     FROM ${quoteIdent(schema)}.${quoteIdent(table)} t ORDER BY ${order} LIMIT $1)`;
}

/** Compares both sides' answers to one question: differences, and the questions for the next round. */
export function comparePostgres(
  question: DriftQuestion,
  from: DriftAnswer,
  to: DriftAnswer,
  component: PostgresComponent,
  sides: DriftSides = { from: 'from', to: 'to' },
): DriftComparison {
  const q = question as PostgresDriftQuestion;
  if (q.part === 'digest') {
    const a = asAnswer(from, 'digest');
    const b = asAnswer(to, 'digest');
    const buckets = a.objects.flatMap((d, i) => (d === b.objects[i] ? [] : [i]));
    const asked = new Set(q.buckets ?? []);
    const answered = a.prefetched !== undefined && b.prefetched !== undefined;
    const onlyPrefetched =
      buckets.length > 0 &&
      answered &&
      buckets.every((i) => asked.has(i)) &&
      a.migrations === b.migrations &&
      a.rowCounts === b.rowCounts;
    if (!onlyPrefetched && (buckets.length > 0 || a.migrations !== b.migrations || a.rowCounts !== b.rowCounts)) {
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
      samples: d.samples,
    });
    if (!onlyPrefetched)
      return { differences: [], next: sampling(asCatalog(a), asCatalog(b), new Set(), component, sides).questions };
    // What differs lies in the buckets the question asked for, and both sides sent them: the
    // catalog round would compare just these objects, and no counts or history.
    const differing = new Set(buckets);
    const inDiffering = (objects: Record<string, string>) =>
      Object.fromEntries(Object.entries(objects).filter(([subject]) => differing.has(bucketOf(subject))));
    const schema = compareObjects(inDiffering(a.prefetched!), inDiffering(b.prefetched!), sides);
    const rows = sampling(asCatalog(a), asCatalog(b), schema.differing, component, sides);
    return { differences: sortDifferences([...schema.differences, ...rows.unsampled]), next: rows.questions };
  }
  if (q.part === 'catalog') {
    const a = asAnswer(from, 'catalog');
    const b = asAnswer(to, 'catalog');
    const schema = compareObjects(a.objects, b.objects, sides);
    const rows = sampling(a, b, schema.differing, component, sides);
    const differences = [
      ...schema.differences,
      ...compareRowCounts(a, b),
      ...compareMigrations(a, b),
      ...rows.unsampled,
    ];
    return { differences: sortDifferences(differences), next: rows.questions };
  }
  if (q.part === 'samples') {
    const a = asAnswer(from, 'samples');
    const b = asAnswer(to, 'samples');
    const differences = [...q.tables]
      .sort(byCodeUnit)
      .flatMap((table) => compareSamples(table, a.tables[table], b.tables[table], sides));
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
  sides: DriftSides,
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
      differences.push({
        subject,
        change: 'added',
        aspect: 'schema',
        detail: cut(b || `only in ${sides.to}`, DETAIL_CHARS),
      });
    else if (b === undefined)
      differences.push({
        subject,
        change: 'removed',
        aspect: 'schema',
        detail: cut(a || `only in ${sides.from}`, DETAIL_CHARS),
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
          .map((note, i) => `${i === 0 ? sides.from : sides.to} ${note ?? 'complete'}`)
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
 * The samples to ask for: of the tables sampleTargets chooses, those with the same primary key on
 * both sides and whose sample digests do not already agree, split so that each answer holds at
 * most MAX_SAMPLE_ROWS rows. A table among them whose columns differ is not sampled (its rows
 * differ in any case) but gets a finding that says so: the row findings it had stand, not called
 * resolved, and the report does not read as "rows match".
 */
function sampling(
  from: PostgresCatalogAnswer,
  to: PostgresCatalogAnswer,
  differing: Set<string>,
  component: PostgresComponent,
  sides: DriftSides,
): { questions: PostgresDriftQuestion[]; unsampled: DriftDifference[] } {
  const fromTables = from.tables && new Set(from.tables);
  const toTables = to.tables && new Set(to.tables);
  const present = (side: PostgresCatalogAnswer, table: string) => {
    const listed = side === from ? fromTables : toTables;
    return listed ? listed.has(table) : `table ${table}` in side.objects;
  };
  const shapeDiffers = (table: string) =>
    [...differing].some((s) => s === `table ${table}` || s.startsWith(`column ${table}.`));
  const keyedAlike = (table: string) => {
    const a = from.sampleable[table];
    const b = to.sampleable[table];
    return (
      a !== undefined && b !== undefined && a.join('\0') === b.join('\0') && present(from, table) && present(to, table)
    );
  };
  const alike = (table: string) => {
    const a = Object.hasOwn(from.samples ?? {}, table) ? from.samples![table] : undefined;
    return a !== undefined && Object.hasOwn(to.samples ?? {}, table) && to.samples![table] === a;
  };
  const differ = sampleTargets(component, from.sampleable).filter((t) => keyedAlike(t) && !alike(t));
  const tables = differ.filter((t) => !shapeDiffers(t));
  const size = tablesPerQuestion(component);
  const questions: PostgresDriftQuestion[] = [];
  for (let i = 0; i < tables.length; i += size)
    questions.push({ kind: 'postgres', part: 'samples', tables: tables.slice(i, i + size) });
  const unsampled = differ.filter(shapeDiffers).map((table): DriftDifference => ({
    subject: `rows ${table}`,
    change: 'changed',
    aspect: 'sample',
    detail: `rows not compared: the table's columns differ between ${sides.from} and ${sides.to}`,
    severity: 'info',
    unseen: { prefix: `row ${table} `, aspect: 'sample' },
  }));
  return { questions, unsampled };
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
  sides: DriftSides,
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
          detail: `row only in ${sides.from} (values not shown)`,
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
        detail: `row only in ${sides.to} (values not shown)`,
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
