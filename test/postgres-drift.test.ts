// Drift scans of the postgres kind on the real PostgreSQL, driven as the scan workflow drives
// them: both sides answer the same question, a pure comparison yields differences and the next
// questions, until none are left. Row values never leave a database; keyed hashes do.
import { withPostgres } from '../src/components/postgres/connect';
import {
  CATALOG_TRUNCATED,
  MAX_CATALOG_BYTES,
  comparePostgres,
  createDatabaseDescriber,
  describeDatabase,
  firstPostgresQuestion,
  OBJECT_BUCKETS,
  type PostgresCatalogAnswer,
  type PostgresDigestAnswer,
  type PostgresDriftAnswer,
  type PostgresDriftQuestion,
  type PostgresSamplesAnswer,
} from '../src/components/postgres/drift';
import { historyTableDdl } from '../src/components/postgres/flyway';
import { postgresComponentSchema, type PostgresComponent } from '../src/components/postgres/kind';
import type { DriftDifference, PreviousDifference } from '../src/components/drift';
import { catalogObjects, subjectBucket } from '../src/components/postgres/fingerprint';
import { createDatabase, dropDatabase, sql } from './support/postgres';
import { tempDir } from './support/temp';

const ctx = { scanId: 'scan-1', hashKey: 'drift-test-key', secretKeys: [], stateDir: tempDir('rewind-pg-drift-') };

const component = (extra: Record<string, unknown> = {}): PostgresComponent =>
  postgresComponentSchema.parse({ kind: 'postgres', url: 'postgres://db.example/app', ...extra });

interface Round {
  question: PostgresDriftQuestion;
  from: PostgresDriftAnswer;
  to: PostgresDriftAnswer;
  next: PostgresDriftQuestion[];
}

let scans = 0;

/** A scan as the agents answer it: each side's describer keeps its digest round's read for the later rounds. */
async function scan(
  fromUrl: string,
  toUrl: string,
  c: PostgresComponent = component(),
  previous: readonly PreviousDifference[] = [],
) {
  const describe = createDatabaseDescriber();
  const scanCtx = { ...ctx, scanId: `scan-${++scans}` };
  const rounds: Round[] = [];
  const differences: DriftDifference[] = [];
  const pending: PostgresDriftQuestion[] = [firstPostgresQuestion(c, previous)];
  while (pending.length > 0) {
    if (rounds.length === 20) throw new Error('the scan did not settle in 20 rounds');
    const question = pending.shift()!;
    const [from, to] = await Promise.all(
      [fromUrl, toUrl].map((url) => withPostgres(url, (client) => describe(client, c, question, scanCtx))),
    );
    const result = comparePostgres(question, from!, to!, c);
    differences.push(...result.differences);
    pending.push(...(result.next as PostgresDriftQuestion[]));
    rounds.push({ question, from: from!, to: to!, next: result.next as PostgresDriftQuestion[] });
  }
  return { differences, rounds };
}

const pairs = (differences: DriftDifference[]) => differences.map((d) => `${d.change} ${d.subject}`).sort();

const BASE_SCHEMA = `
  CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, note text);
  CREATE TABLE orders (
    id int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    total numeric(10, 2) NOT NULL,
    secret text
  );
  CREATE FUNCTION order_total(order_id integer) RETURNS numeric LANGUAGE sql STABLE
    AS $$ SELECT total FROM public.orders WHERE id = order_id $$;
  CREATE FUNCTION touch_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
  INSERT INTO customers SELECT g, 'secret-PLANTED-name-' || g, NULL FROM generate_series(1, 20) g;
  INSERT INTO orders SELECT g, 1 + g % 20, g * 1.5, 'secret-PLANTED-' || g FROM generate_series(1, 30) g;
`;

const CATALOG_QUESTION: PostgresDriftQuestion = { kind: 'postgres', part: 'catalog' };

describe('postgres drift scan', () => {
  let fromUrl: string;
  let toUrl: string;
  beforeEach(async () => {
    [fromUrl, toUrl] = await Promise.all([createDatabase('rewind_drift'), createDatabase('rewind_drift')]);
    await Promise.all([sql(fromUrl, BASE_SCHEMA), sql(toUrl, BASE_SCHEMA)]);
  });
  afterEach(() => Promise.all([dropDatabase(fromUrl), dropDatabase(toUrl)]));

  test('finds exactly the schema objects and sampled rows that differ, and samples only tables of the same shape', async () => {
    await sql(
      toUrl,
      `ALTER TABLE customers ALTER COLUMN note TYPE varchar(200);
       CREATE INDEX orders_total_idx ON orders (total);
       CREATE OR REPLACE FUNCTION order_total(order_id integer) RETURNS numeric LANGUAGE sql STABLE
         AS $$ SELECT total * 1 FROM public.orders WHERE id = order_id $$;
       CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch_order();
       UPDATE orders SET total = total + 1 WHERE id = 5;
       DELETE FROM orders WHERE id = 7;
       INSERT INTO orders VALUES (31, 3, 9.99, 'secret-PLANTED-31');`,
    );

    const { differences, rounds } = await scan(fromUrl, toUrl);

    expect(pairs(differences)).toEqual([
      'added index public.orders_total_idx',
      'added row public.orders (id)=(31)',
      'added trigger public.orders.orders_touch',
      'changed column public.customers.note',
      'changed function public.order_total(order_id integer)',
      'changed row public.orders (id)=(5)',
      'removed row public.orders (id)=(7)',
    ]);
    // customers' column differs, so its rows would only repeat that finding.
    // The digests say which buckets of objects differ; only those travel in full.
    expect(rounds.map((r) => r.question)).toEqual([
      { kind: 'postgres', part: 'digest' },
      // Equal counts (one row inserted, one deleted) are not counted again.
      { kind: 'postgres', part: 'catalog', buckets: expect.any(Array) as unknown, counts: false },
      { kind: 'postgres', part: 'samples', tables: ['public.orders'] },
    ]);
    const bySubject = new Map(differences.map((d) => [d.subject, d]));
    expect(bySubject.get('column public.customers.note')).toMatchObject({
      aspect: 'schema',
      detail: 'text → character varying(200)',
    });
    expect(bySubject.get('index public.orders_total_idx')?.detail).toBe(
      'CREATE INDEX orders_total_idx ON public.orders USING btree (total)',
    );
    expect(bySubject.get('function public.order_total(order_id integer)')?.detail).toContain('total * 1');
    expect(bySubject.get('row public.orders (id)=(5)')).toMatchObject({
      change: 'changed',
      aspect: 'sample',
      detail: 'row differs (values not shown)',
    });
    expect(bySubject.get('row public.orders (id)=(7)')?.detail).toBe('row only in from (values not shown)');
    expect(bySubject.get('row public.orders (id)=(31)')?.detail).toBe('row only in to (values not shown)');
    expect(differences.every((d) => d.severity === undefined)).toBe(true);
  });

  test("says when a sampled table's rows are not compared because its columns differ, and keeps its row findings unseen", async () => {
    await sql(toUrl, 'ALTER TABLE orders ADD COLUMN extra int; UPDATE orders SET total = total + 1 WHERE id = 5;');
    const { differences } = await scan(fromUrl, toUrl);
    expect(pairs(differences)).toEqual(['added column public.orders.extra', 'changed rows public.orders']);
    expect(differences.find((d) => d.subject === 'rows public.orders')).toEqual({
      subject: 'rows public.orders',
      change: 'changed',
      aspect: 'sample',
      detail: "rows not compared: the table's columns differ between from and to",
      severity: 'info',
      unseen: { prefix: 'row public.orders ', aspect: 'sample' },
    });
    // The same columns again: the changed row is found, and the note is gone.
    await sql(toUrl, 'ALTER TABLE orders DROP COLUMN extra;');
    expect(pairs((await scan(fromUrl, toUrl)).differences)).toEqual(['changed row public.orders (id)=(5)']);
  });

  test('asks first for what differed last scan: persisting drift takes no catalog round and finds the same', async () => {
    await sql(
      toUrl,
      `ALTER TABLE customers ALTER COLUMN note TYPE varchar(200);
       CREATE INDEX orders_total_idx ON orders (total);
       UPDATE orders SET total = total + 1 WHERE id = 5;`,
    );
    const first = await scan(fromUrl, toUrl);
    expect(first.rounds.map((r) => r.question.part)).toEqual(['digest', 'catalog', 'samples']);

    const previous = first.differences.map((d) => ({ aspect: d.aspect, subject: d.subject }));
    const again = await scan(fromUrl, toUrl, component(), previous);

    expect(again.differences).toEqual(first.differences);
    const buckets = [
      ...new Set(
        ['column public.customers.note', 'index public.orders_total_idx'].map((s) => subjectBucket(s, OBJECT_BUCKETS)),
      ),
    ].sort((a, b) => a - b);
    expect(again.rounds.map((r) => r.question)).toEqual([
      { kind: 'postgres', part: 'digest', buckets },
      { kind: 'postgres', part: 'samples', tables: ['public.orders'] },
    ]);
    // Only the asked buckets' objects travel with the digests.
    const prefetched = Object.keys((again.rounds[0]!.to as PostgresDigestAnswer).prefetched!);
    expect(prefetched).toContain('index public.orders_total_idx');
    expect(prefetched.every((s) => buckets.includes(subjectBucket(s, OBJECT_BUCKETS)))).toBe(true);
  });

  test('falls back to the catalog round when something differs beyond what the last scan found', async () => {
    await sql(toUrl, `CREATE INDEX orders_total_idx ON orders (total)`);
    const previous = [{ aspect: 'schema', subject: 'index public.orders_total_idx' }];
    const asked = subjectBucket('index public.orders_total_idx', OBJECT_BUCKETS);
    // A new index whose bucket the first question did not ask for, and a row count that changed.
    const name = Array.from({ length: 200 }, (_, i) => `late_idx_${i}`).find(
      (n) => subjectBucket(`index public.${n}`, OBJECT_BUCKETS) !== asked,
    )!;
    await sql(toUrl, `CREATE INDEX ${name} ON customers (name); DELETE FROM orders WHERE id = 30`);

    const { differences, rounds } = await scan(fromUrl, toUrl, component(), previous);

    expect(rounds[0]!.question).toEqual({ kind: 'postgres', part: 'digest', buckets: [asked] });
    expect(rounds[1]!.question).toMatchObject({ kind: 'postgres', part: 'catalog' });
    expect(pairs(differences)).toEqual([
      `added index public.${name}`,
      'added index public.orders_total_idx',
      'changed table public.orders',
      'removed row public.orders (id)=(30)',
    ]);
  });

  test('buckets objects in the database exactly as the comparison does in Node, whatever the characters', async () => {
    await sql(
      fromUrl,
      `CREATE TABLE "zähler" ("名前" text PRIMARY KEY, "emoji 🙂" int, "a""quote" int);
       CREATE INDEX "ünïcode_idx" ON "zähler" ("emoji 🙂");`,
    );
    const objects = await withPostgres(fromUrl, (client) => catalogObjects(client, undefined, OBJECT_BUCKETS));
    expect(objects.map((o) => o.subject)).toContain('column public.zähler.emoji 🙂');
    expect(objects.length).toBeGreaterThan(10);
    for (const o of objects)
      expect([o.subject, o.bucket]).toEqual([o.subject, subjectBucket(o.subject, OBJECT_BUCKETS)]);
  });

  test('finds the rows of a table that is empty on one side (its sample is known without reading it)', async () => {
    await sql(fromUrl, 'TRUNCATE orders');

    const { differences } = await scan(fromUrl, toUrl);

    expect(differences.filter((d) => d.aspect === 'rows').map((d) => d.detail)).toEqual(['0 → 30 rows']);
    const rows = differences.filter((d) => d.aspect === 'sample');
    expect(rows).toHaveLength(30);
    expect(rows.every((d) => d.change === 'added' && d.detail === 'row only in to (values not shown)')).toBe(true);
  });

  test('finds nothing between identical databases, in one digest round that carries the samples digests', async () => {
    const { differences, rounds } = await scan(fromUrl, toUrl);

    expect(differences).toEqual([]);
    expect(rounds.map((r) => r.next)).toEqual([[]]);
    const digest = rounds[0]!.from as PostgresDigestAnswer;
    expect(Object.keys(digest.samples)).toEqual(['public.customers', 'public.orders']);
    expect(digest.samples).toEqual((rounds[0]!.to as PostgresDigestAnswer).samples);
    // What those digests stand for: the first rows by key, 30 orders.
    const question: PostgresDriftQuestion = { kind: 'postgres', part: 'samples', tables: ['public.orders'] };
    const samples = (await withPostgres(fromUrl, (client) =>
      describeDatabase(client, component(), question, ctx),
    )) as PostgresSamplesAnswer;
    expect(samples.tables['public.orders']).toMatchObject({ key: ['id'], more: false });
    expect(Object.keys((samples.tables['public.orders'] as { rows: object }).rows)).toHaveLength(30);
  });

  test("answers a scan's later rounds from its digest round's read, and reads afresh for a new scan", async () => {
    const describe = createDatabaseDescriber();
    const c = component();
    const ask = (question: PostgresDriftQuestion, scanId: string) =>
      withPostgres(toUrl, (client) => describe(client, c, question, { ...ctx, scanId }));
    await ask({ kind: 'postgres', part: 'digest' }, 'held-1');
    await sql(toUrl, `ALTER TABLE customers ADD COLUMN added_later int; UPDATE orders SET total = 99 WHERE id = 1`);

    const catalog: PostgresDriftQuestion = { kind: 'postgres', part: 'catalog' };
    const samples: PostgresDriftQuestion = { kind: 'postgres', part: 'samples', tables: ['public.orders'] };
    const held = (await ask(catalog, 'held-1')) as PostgresCatalogAnswer;
    expect(held.objects).not.toHaveProperty(['column public.customers.added_later']);
    const heldRows = ((await ask(samples, 'held-1')) as PostgresSamplesAnswer).tables['public.orders'];

    const fresh = (await ask(catalog, 'held-2')) as PostgresCatalogAnswer;
    expect(fresh.objects['column public.customers.added_later']).toBe('integer');
    const freshRows = ((await ask(samples, 'held-2')) as PostgresSamplesAnswer).tables['public.orders'];
    expect(freshRows).not.toEqual(heldRows);
    expect(fresh.samples!['public.orders']).not.toBe(held.samples!['public.orders']);
  });

  test('never carries a row value in an answer, only primary keys and keyed hashes', async () => {
    await sql(toUrl, `UPDATE orders SET secret = 'secret-PLANTED-changed' WHERE id = 2`);

    const { differences, rounds } = await scan(fromUrl, toUrl);

    expect(pairs(differences)).toEqual(['changed row public.orders (id)=(2)']);
    const answers = JSON.stringify(rounds.flatMap((r) => [r.from, r.to]));
    expect(answers).toContain('public.orders');
    expect(answers).not.toContain('PLANTED');
    expect(answers).not.toContain('secret-');
    const orders = (rounds[1]!.from as PostgresSamplesAnswer).tables['public.orders'] as {
      rows: Record<string, string>;
    };
    expect(Object.values(orders.rows).every((hash) => /^[0-9a-f]{32}$/.test(hash))).toBe(true);
    // The hash is keyed: another key gives other hashes for the same rows.
    const other = await withPostgres(fromUrl, (client) =>
      describeDatabase(client, component(), rounds[1]!.question, { ...ctx, hashKey: 'another-key' }),
    );
    expect((other as PostgresSamplesAnswer).tables['public.orders']).not.toEqual(orders);
  });

  test('compares Flyway histories by version and leaves the history table out of objects, counts and samples', async () => {
    const history = historyTableDdl('public', 'flyway_schema_history');
    const insert = `INSERT INTO flyway_schema_history
      (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success)
      VALUES ($1, $2, $3, 'SQL', $4, $5, 'test', 1, $6)`;
    const migrate = async (url: string, rows: [string | null, string, number, boolean][]) => {
      await sql(url, history);
      for (const [i, [version, description, checksum, success]] of rows.entries())
        await sql(url, insert, [
          i + 1,
          version,
          description,
          `${version ? `V${version}` : 'R'}__x.sql`,
          checksum,
          success,
        ]);
    };
    await migrate(fromUrl, [
      ['1', 'init', 100, true],
      ['2', 'add orders', 200, true],
      [null, 'views', 300, true],
      ['3', 'add index', 400, true],
      ['4', 'backfill', 500, true],
    ]);
    await migrate(toUrl, [
      ['1', 'init', 100, true],
      ['2', 'add orders', 201, true],
      [null, 'views', 301, true],
      ['4', 'backfill', 500, false],
      ['5', 'extra', 600, true],
    ]);

    const { differences, rounds } = await scan(fromUrl, toUrl);

    expect(differences.map((d) => `${d.change} ${d.subject}: ${d.detail}`).sort()).toEqual([
      'added migration 5 extra: SQL, checksum 600, succeeded',
      'changed migration 2 add orders: checksum 200 → 201',
      'changed migration 4 backfill: succeeded → failed',
      'changed migration R views: checksum 300 → 301',
      'removed migration 3 add index: SQL, checksum 400, succeeded',
    ]);
    expect(differences.every((d) => d.aspect === 'migration')).toBe(true);
    const catalog = rounds[1]!.from as PostgresCatalogAnswer;
    expect(catalog.migrations.map((m) => m.version)).toEqual(['1', '2', null, '3', '4']);
    expect(Object.keys(catalog.objects).filter((s) => s.includes('flyway'))).toEqual([]);
    expect((rounds[0]!.from as PostgresDigestAnswer).tables).toEqual(['public.customers', 'public.orders']);
    // The history table is not sampled either, and the samples of both tables agree: no samples round.
    expect(Object.keys(catalog.samples!)).toEqual(['public.customers', 'public.orders']);
    expect(rounds).toHaveLength(2);
  });

  test('reports row counts, and only the sampled rows both sides read when a table outgrows its sample', async () => {
    // Each side reads its first 10 orders: 1–10 in from; 0–2 and 5–11 in to. Order 11 lies past
    // from's window, so it is not new; order 25 lies past both and shows only in the count.
    await sql(
      toUrl,
      `DELETE FROM orders WHERE id IN (3, 4, 25); INSERT INTO orders VALUES (0, 1, 1, 'secret-PLANTED-0')`,
    );

    const { differences, rounds } = await scan(fromUrl, toUrl, component({ sample: { tables: ['orders'], rows: 10 } }));

    expect((rounds[2]!.to as PostgresSamplesAnswer).tables['public.orders']).toMatchObject({
      order: ['0', '1', '2', '5', '6', '7', '8', '9', '10', '11'],
      more: true,
    });
    expect(differences.map((d) => `${d.change} ${d.subject} [${d.aspect}]: ${d.detail}`)).toEqual([
      'changed table public.orders [rows]: 30 → 28 rows',
      'added row public.orders (id)=(0) [sample]: row only in to (values not shown)',
      'removed row public.orders (id)=(3) [sample]: row only in from (values not shown)',
      'removed row public.orders (id)=(4) [sample]: row only in from (values not shown)',
    ]);
    expect(rounds[2]!.question).toEqual({ kind: 'postgres', part: 'samples', tables: ['public.orders'] });
    expect(rounds[2]!.from).toMatchObject({ tables: { 'public.orders': { more: true } } });
  });

  test('keys composite primary keys exactly and says nothing of a sampled table that disappeared', async () => {
    const lines = `CREATE TABLE lines (order_id int, code text, qty int, PRIMARY KEY (order_id, code));
      INSERT INTO lines VALUES (1, 'a', 1), (1, 'b,c', 2), (2, 'a', 3);`;
    await Promise.all([sql(fromUrl, lines), sql(toUrl, lines)]);
    await sql(toUrl, `UPDATE lines SET qty = 9 WHERE order_id = 1 AND code = 'b,c'`);
    const c = component({ sample: { tables: ['public.lines', 'customers'], rows: 5 } });

    const { differences, rounds } = await scan(fromUrl, toUrl, c);

    expect(pairs(differences)).toEqual(['changed row public.lines (order_id, code)=(1,"b,c")']);
    const question = rounds[1]!.question;
    // customers' samples digests agree on both sides: only lines is asked for.
    expect(question).toEqual({ kind: 'postgres', part: 'samples', tables: ['public.lines'] });

    // Dropped between the rounds: the table is absent, and the next catalog round says so.
    await sql(toUrl, 'DROP TABLE lines');
    const [from, to] = await Promise.all(
      [fromUrl, toUrl].map((url) => withPostgres(url, (client) => describeDatabase(client, c, question, ctx))),
    );
    expect((to as PostgresSamplesAnswer).tables['public.lines']).toBe('absent');
    expect(comparePostgres(question, from!, to!, c)).toEqual({ differences: [], next: [] });
  });

  test('keeps a catalog answer within its byte budget and compares a truncated catalog only as far as it goes', async () => {
    // 400 tables of 24 long-named columns: over 10,000 objects and about 900 KB of definitions.
    await sql(
      fromUrl,
      `DO $$ BEGIN
         FOR t IN 1..400 LOOP
           EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, %s)', 'wide_table_' || t,
             (SELECT string_agg(format('%I text DEFAULT %L', 'a_rather_long_column_name_' || c, 'default ' || c), ', ')
                FROM generate_series(1, 24) c));
         END LOOP;
       END $$`,
    );

    // Asked for every object at once, the answer stays within its budget and says it is cut.
    const c = component();
    const question: PostgresDriftQuestion = { kind: 'postgres', part: 'catalog' };
    const catalog = (await withPostgres(fromUrl, (client) =>
      describeDatabase(client, c, question, ctx),
    )) as PostgresCatalogAnswer;
    expect(Buffer.byteLength(JSON.stringify(catalog))).toBeLessThanOrEqual(MAX_CATALOG_BYTES);
    expect(catalog.objects[CATALOG_TRUNCATED]).toMatch(/^\d+ of \d+ objects not listed$/);
    const tables = Object.keys(catalog.objects).filter((s) => s.startsWith('table '));
    expect(Object.keys(catalog.rowCounts)).toEqual(tables.map((s) => s.slice('table '.length)));
    expect(pairs(comparePostgres(question, catalog, catalog, c).differences)).toEqual(['changed catalog']);

    // A scan starts from digests: the same large catalog on both sides costs small answers and finds nothing.
    const { differences, rounds } = await scan(fromUrl, fromUrl);
    expect(differences).toEqual([]);
    for (const round of rounds) expect(Buffer.byteLength(JSON.stringify(round.from))).toBeLessThan(512 * 1024);
  });
});

describe('postgres drift comparison', () => {
  const catalog = (tables: string[], extra: Partial<PostgresCatalogAnswer> = {}): PostgresCatalogAnswer => ({
    kind: 'postgres',
    part: 'catalog',
    objects: Object.fromEntries(
      tables.flatMap((t) => [
        [`column ${t}.id`, 'integer not null'],
        [`table ${t}`, 'table'],
      ]),
    ),
    migrations: [],
    rowCounts: Object.fromEntries(tables.map((t) => [t, { rows: 10, exact: true }])),
    sampleable: Object.fromEntries(tables.map((t) => [t, ['id']])),
    ...extra,
  });
  const names = (n: number) => Array.from({ length: n }, (_, i) => `public.t${String(i).padStart(2, '0')}`);
  const sizes = (c: PostgresComponent, from: PostgresCatalogAnswer, to = from) =>
    comparePostgres(CATALOG_QUESTION, from, to, c).next.map(
      (q) => (q as PostgresDriftQuestion & { part: 'samples' }).tables.length,
    );

  test('splits sample questions so that one answer holds at most 5,000 rows', () => {
    const all = catalog(names(60));
    const listed = names(12).map((t) => t.replace('public.', ''));
    expect(sizes(component(), all)).toEqual([50]);
    expect(sizes(component({ sample: { tables: listed, rows: 1_000 } }), all)).toEqual([5, 5, 2]);
    expect(sizes(component({ sample: { tables: listed.slice(0, 3), rows: 10_000 } }), all)).toEqual([1, 1, 1]);
    expect(sizes(component({ sample: { tables: ['public.missing'], rows: 10 } }), all)).toEqual([]);
  });

  test('samples no table whose primary key or columns differ between the sides', () => {
    const from = catalog(['public.a', 'public.b', 'public.c']);
    const to = catalog(['public.a', 'public.b', 'public.c']);
    to.sampleable['public.b'] = ['id', 'other'];
    to.objects['column public.c.id'] = 'bigint not null';
    expect(comparePostgres(CATALOG_QUESTION, from, to, component()).next).toEqual([
      { kind: 'postgres', part: 'samples', tables: ['public.a'] },
    ]);
  });

  test('marks estimated counts and ignores the noise of two estimates', () => {
    const q = CATALOG_QUESTION;
    const counts = (a: number, b: number) =>
      comparePostgres(
        q,
        catalog(['public.big'], { rowCounts: { 'public.big': { rows: a, exact: false } } }),
        catalog(['public.big'], { rowCounts: { 'public.big': { rows: b, exact: false } } }),
        component(),
      ).differences.map((d) => d.detail);
    expect(counts(2_000_000, 1_500_000)).toEqual(['≈2,000,000 → ≈1,500,000 rows']);
    expect(counts(2_000_000, 2_010_000)).toEqual([]);
  });

  test('shortens a long change around where the definitions part', () => {
    const body = (x: string) => `CREATE FUNCTION f() ${'x'.repeat(250)} ${x} ${'y'.repeat(100)}`;
    const from = catalog([], { objects: { 'function public.f()': body('old') } });
    const to = catalog([], { objects: { 'function public.f()': body('new') } });
    const [difference] = comparePostgres(CATALOG_QUESTION, from, to, component()).differences;
    expect(difference!.detail.length).toBeLessThanOrEqual(200);
    expect(difference!.detail).toMatch(/^…x+ old y+… → …x+ new y+…$/);
  });
});
