// The Flyway-compatible migrator against the real PostgreSQL: checksums and history rows match
// Flyway's format, a database Flyway migrated is understood, undo works with U scripts, and
// validate, transactions and the lock behave as Flyway's do.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { flywayChecksum, flywayLockNumber, normaliseVersion, readMigrations } from '../src/components/postgres/flyway';
import { MigrationError, Migrator } from '../src/components/postgres/migrator';
import { createDatabase, dropDatabase, sql } from './support/postgres';
import { tempDir } from './support/temp';

const FIXTURES = path.join(__dirname, 'fixtures', 'flyway');
const expected = JSON.parse(readFileSync(path.join(FIXTURES, 'expected-history.json'), 'utf8')) as Record<
  string,
  unknown[]
>;

async function withMigrator<T>(
  url: string,
  dir: string,
  fn: (m: Migrator, client: pg.Client) => Promise<T>,
  lockTimeoutMs?: number,
): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const migrations = await readMigrations(dir);
    return await fn(
      new Migrator(client, {
        schema: 'public',
        table: 'flyway_schema_history',
        migrations,
        ...(lockTimeoutMs ? { lockTimeoutMs } : {}),
      }),
      client,
    );
  } finally {
    await client.end();
  }
}

const history = (url: string) =>
  sql(
    url,
    'SELECT installed_rank, version, description, type, script, checksum, success FROM flyway_schema_history ORDER BY installed_rank',
  );
const tables = async (url: string) =>
  (await sql<{ t: string }>(url, "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).map(
    (r) => r.t,
  );
const columns = async (url: string, table: string) =>
  (
    await sql<{ c: string }>(
      url,
      'SELECT column_name AS c FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
      [table],
    )
  ).map((r) => r.c);

const root = tempDir('rewind-migrations-');

function copyFixtures(): string {
  const dir = mkdtempSync(path.join(root, 'scripts-'));
  cpSync(FIXTURES, dir, { recursive: true });
  return dir;
}

describe('Flyway conventions', () => {
  it('computes the checksums Flyway records, ignoring line endings and a byte-order mark', async () => {
    const scripts = await readMigrations(FIXTURES);
    expect(Object.fromEntries(scripts.map((s) => [s.script, s.checksum]))).toEqual({
      'V1__init.sql': 432441000,
      'V2__add_orders.sql': 1431191963,
      'U2__add_orders.sql': 392885628,
      'V3__add_order_total.sql': 95655911,
      'U3__add_order_total.sql': 1188006196,
      'V4__order_status.sql': 620816477,
      'R__order_summary.sql': -955080437,
    });
    expect(flywayChecksum('a\r\nb\r\n')).toBe(flywayChecksum('a\nb'));
    expect(flywayChecksum('\uFEFFa\nb\n')).toBe(flywayChecksum('a\nb\n'));
    expect(flywayChecksum('a\nb ')).not.toBe(flywayChecksum('a\nb'));
  });

  it('orders versions numerically and reads 1_1 as 1.1', () => {
    expect(normaliseVersion('1_01')).toBe('1.1');
    expect(normaliseVersion('010')).toBe('10');
  });

  it("uses Flyway's advisory lock number for the history table", () => {
    // 0x466C79776179 ("Flyway") + Java's hashCode of "public"."flyway_schema_history".
    expect(flywayLockNumber('public', 'flyway_schema_history')).toBe(77431708279161n + 2125624436n);
  });

  it('refuses a file that is not named like a migration', async () => {
    const dir = copyFixtures();
    writeFileSync(path.join(dir, 'V5_missing_separator.sql'), 'SELECT 1;');
    await expect(readMigrations(dir)).rejects.toThrow(
      'V5_missing_separator.sql: not a migration name (V<version>__<description>.sql, U<version>__…, R__…)',
    );
  });
});

describe('the migrator', () => {
  let url: string;
  beforeEach(async () => {
    url = await createDatabase();
  });
  afterEach(() => dropDatabase(url));

  it('migrates to the latest version and writes the history rows Flyway writes', async () => {
    const result = await withMigrator(url, FIXTURES, (m) => m.migrate());
    expect(result).toEqual({ applied: ['1', '2', '3', '4', 'R:order summary'], current: '4' });
    expect(await history(url)).toEqual(expected.afterMigrate);
    expect(await tables(url)).toEqual(['customers', 'flyway_schema_history', 'orders']);
    expect(await sql(url, "SELECT count(*)::int AS n FROM pg_views WHERE viewname = 'order_summary'")).toEqual([
      { n: 1 },
    ]);
    // Nothing left to do the second time.
    expect(await withMigrator(url, FIXTURES, (m) => m.migrate())).toEqual({ applied: [], current: '4' });
  });

  it('migrates to a target, reports info, undoes with U scripts and records the undo as Flyway Teams does', async () => {
    await withMigrator(url, FIXTURES, (m) => m.migrate('3'));
    const info = await withMigrator(url, FIXTURES, (m) => m.info());
    expect(info.current).toBe('3');
    expect(info.migrations.map((m) => [m.version, m.state, m.undoScript ?? null])).toEqual([
      ['1', 'success', null],
      ['2', 'success', 'U2__add_orders.sql'],
      ['3', 'success', 'U3__add_order_total.sql'],
      ['4', 'pending', null],
    ]);

    const undone = await withMigrator(url, FIXTURES, (m) => m.undo('1'));
    expect(undone).toEqual({ undone: ['3', '2'], current: '1' });
    expect(await history(url)).toEqual(expected.afterUndoTo1);
    expect(await tables(url)).toEqual(['customers', 'flyway_schema_history']);
    const after = await withMigrator(url, FIXTURES, (m) => m.info());
    expect(after.migrations.map((m) => [m.version, m.state])).toEqual([
      ['1', 'success'],
      ['2', 'undone'],
      ['3', 'undone'],
      ['4', 'pending'],
    ]);
    // An undone migration is pending again.
    expect((await withMigrator(url, FIXTURES, (m) => m.migrate('2'))).applied).toEqual(['2']);
  });

  it('refuses to undo past a migration without a U script, and changes nothing', async () => {
    await withMigrator(url, FIXTURES, (m) => m.migrate());
    const before = await history(url);
    const err = (await withMigrator(url, FIXTURES, (m) => m.undo('2')).catch((e: unknown) => e)) as MigrationError;
    expect(err).toBeInstanceOf(MigrationError);
    expect(err.message).toBe('cannot undo to 2: no U script for version 4');
    expect(err.kind).toBe('missing-undo');
    expect(await history(url)).toEqual(before);
    expect(await columns(url, 'orders')).toEqual(['id', 'customer_id', 'placed_at', 'total', 'status']);
  });

  it('understands a database Flyway migrated, and migrates it on', async () => {
    const fixtures = readFileSync(path.join(__dirname, 'fixtures', 'flyway-made', 'history.sql'), 'utf8');
    await sql(url, readFileSync(path.join(FIXTURES, 'V1__init.sql'), 'utf8'));
    await sql(url, readFileSync(path.join(FIXTURES, 'V2__add_orders.sql'), 'utf8'));
    await sql(url, fixtures);
    const info = await withMigrator(url, FIXTURES, (m) => m.info());
    expect(info.current).toBe('2');
    expect(await withMigrator(url, FIXTURES, (m) => m.validate())).toEqual([]);
    expect((await withMigrator(url, FIXTURES, (m) => m.migrate())).applied).toEqual(['3', '4', 'R:order summary']);
  });

  it('fails validate, and refuses to migrate, when an applied script was changed', async () => {
    const dir = copyFixtures();
    await withMigrator(url, dir, (m) => m.migrate('2'));
    const edited = readFileSync(path.join(dir, 'V2__add_orders.sql'), 'utf8') + '-- edited after it ran\n';
    writeFileSync(path.join(dir, 'V2__add_orders.sql'), edited);
    const issue = `checksum mismatch for V2__add_orders.sql: applied 1431191963, on disk ${flywayChecksum(edited)}`;
    expect(await withMigrator(url, dir, (m) => m.validate())).toEqual([issue]);
    await expect(withMigrator(url, dir, (m) => m.migrate())).rejects.toThrow(`validation failed: ${issue}`);
    expect((await history(url)).length).toBe(2);
  });

  it('fails validate when an applied script is missing', async () => {
    await withMigrator(url, FIXTURES, (m) => m.migrate('3'));
    const dir = copyFixtures();
    rmSync(path.join(dir, 'V3__add_order_total.sql'));
    expect(await withMigrator(url, dir, (m) => m.validate())).toEqual([
      'version 3 was applied but V3__add_order_total.sql is not among the migration scripts',
    ]);
  });

  it('rolls a failing migration back completely: no half-applied schema, no history row', async () => {
    const dir = copyFixtures();
    writeFileSync(
      path.join(dir, 'V5__broken.sql'),
      'CREATE TABLE invoices (id int);\nINSERT INTO invoices VALUES (1);\nINSERT INTO nowhere VALUES (1);\n',
    );
    await withMigrator(url, dir, (m) => m.migrate('4'));
    const err = await withMigrator(url, dir, (m) => m.migrate()).catch((e: unknown) => e);
    expect(String(err)).toContain(
      'V5__broken.sql failed and was rolled back: relation "nowhere" does not exist (line 3)',
    );
    expect(await tables(url)).not.toContain('invoices');
    expect((await history(url)).map((r) => r.version as string)).toEqual(['1', '2', '3', '4']);
  });

  it('records a failed non-transactional migration, and validate then stops the next run', async () => {
    const dir = copyFixtures();
    writeFileSync(
      path.join(dir, 'V5__concurrent_index.sql'),
      'CREATE INDEX CONCURRENTLY orders_missing_idx ON orders (no_such_column);\n',
    );
    await withMigrator(url, dir, (m) => m.migrate('4'));
    await expect(withMigrator(url, dir, (m) => m.migrate())).rejects.toThrow(
      'V5__concurrent_index.sql failed: column "no_such_column" does not exist',
    );
    expect((await history(url)).at(-1)).toMatchObject({ version: '5', success: false });
    expect(await withMigrator(url, dir, (m) => m.validate())).toEqual([
      'version 5 failed (V5__concurrent_index.sql); fix the database and remove its failed row from the history first',
    ]);
  });

  it('waits for the lock another migrator holds (Flyway uses the same one), then gives up clearly', async () => {
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1::bigint)', [
        flywayLockNumber('public', 'flyway_schema_history').toString(),
      ]);
      const err = await withMigrator(url, FIXTURES, (m) => m.migrate(), 1_500).catch((e: unknown) => e);
      expect(err).toMatchObject({
        kind: 'lock',
        message: 'another migrator (rewind or Flyway) holds the migration lock on this database',
      });
      expect(await sql(url, "SELECT to_regclass('flyway_schema_history') IS NULL AS none")).toEqual([{ none: true }]);
    } finally {
      await holder.end();
    }
  });
});
