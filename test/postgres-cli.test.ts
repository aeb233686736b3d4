// `rewind db …` as an operator runs it against a postgres component.
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../src/platform/temporal-dev-server';
import { runCli } from './support/harness';
import { createDatabase, dropDatabase, sql } from './support/postgres';
import { tempDir } from './support/temp';

const dir = tempDir('rewind-db-cli-');
const migrations = path.join(dir, 'migrations');
cpSync(path.join(__dirname, 'fixtures', 'flyway'), migrations, { recursive: true });
// The files component gets a folder of its own: a component may not hold the repository.
mkdirSync(path.join(dir, 'config'));
const manifest = path.join(dir, 'rewind.yaml');
writeFileSync(
  manifest,
  `repository: { path: ./repo }
approvers: [alice]
environments:
  production:
    components:
      db: { kind: postgres, urlEnv: APP_DB_URL, migrations: ./migrations }
      config: { kind: files, path: ./config }
`,
);

let url: string;
beforeAll(async () => {
  url = await createDatabase();
});
afterAll(() => dropDatabase(url));

const db = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runCli(['--manifest', manifest, 'db', ...args, '--env', 'production', '--component', 'db'], {
    env: { APP_DB_URL: url, ...env },
  });

describe('rewind db', () => {
  it('lists pending migrations, migrates to a target, undoes and validates, with --json', async () => {
    const before = JSON.parse((await db(['info', '--json'])).stdout) as {
      current?: string;
      migrations: { version: string; state: string }[];
    };
    expect(before.current).toBeUndefined();
    expect(before.migrations.map((m) => m.state)).toEqual(['pending', 'pending', 'pending', 'pending']);

    const migrated = await db(['migrate', '--target', '3']);
    expect(migrated.code).toBe(0);
    expect(migrated.stdout).toMatch(/applied 1, 2, 3; now at 3\n$/);

    const info = JSON.parse((await db(['info', '--json'])).stdout) as {
      current: string;
      migrations: Record<string, unknown>[];
    };
    expect(info.current).toBe('3');
    expect(info.migrations[2]).toMatchObject({
      version: '3',
      script: 'V3__add_order_total.sql',
      checksum: 95655911,
      state: 'success',
    });

    const undone = JSON.parse((await db(['undo', '--target', '1', '--json'])).stdout) as unknown;
    expect(undone).toEqual({ undone: ['3', '2'], current: '1' });
    const valid = await db(['validate', '--json']);
    expect(valid.code).toBe(0);
    expect(JSON.parse(valid.stdout)).toEqual({ valid: true, issues: [] });
  });

  it('exits 1 from validate when an applied script was edited', async () => {
    const v1 = path.join(migrations, 'V1__init.sql');
    const original = readFileSync(v1, 'utf8');
    writeFileSync(v1, `${original}-- edited\n`);
    try {
      const result = await db(['validate']);
      expect(result.code).toBe(1);
      expect(result.stdout).toContain('checksum mismatch for V1__init.sql: applied 432441000');
      // info says so too, next to the script.
      const info = await db(['info']);
      expect(info.stdout).toMatch(
        /^Versioned +1 +success +-?\d+ +V1__init\.sql {2}CHANGED since it ran \(applied checksum 432441000; see rewind db validate\)$/m,
      );
      const json = JSON.parse((await db(['info', '--json'])).stdout) as { migrations: Record<string, unknown>[] };
      expect(json.migrations[0]).toMatchObject({ version: '1', state: 'success', appliedChecksum: 432441000 });
    } finally {
      writeFileSync(v1, original);
    }
  });

  it.each([
    [['undo'], {}, "error: required option '--target <version>' not specified"],
    [['migrate', '--target', '9'], {}, 'error: no migration script has version 9'],
    [['undo', '--target', '7'], {}, 'error: no migration has version 7'],
    [['info'], { APP_DB_URL: '' }, 'error: environment variable APP_DB_URL (the URL of production/db) is not set'],
    [
      ['info'],
      { APP_DB_URL: 'host=127.0.0.1 user=app password=hunter2 dbname=app' },
      'error: environment variable APP_DB_URL (the URL of production/db) does not hold a postgres://user:password@host:port/database URL; its value is not shown, as it may hold a password',
    ],
  ])('rejects %j with one clear line', async (args, env, message) => {
    const result = await db(args, env);
    expect(result.code).toBe(1);
    expect(result.stderr.split('\n')[0]).toBe(message);
  });

  it('says clearly when the database cannot be reached, without printing the password', async () => {
    const port = await freePort();
    const result = await db(['info'], { APP_DB_URL: `postgres://app:hunter2@127.0.0.1:${port}/app` });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`^error: cannot reach PostgreSQL at app@127\\.0\\.0\\.1:${port}/app: `));
    expect(result.stderr).not.toContain('hunter2');
  });

  it('refuses --strategy pitr for a database without point-in-time recovery before starting a run', async () => {
    const result = await runCli(
      ['--manifest', manifest, 'rollback', 'start', '--env', 'production', '--to-version', 'v1', '--strategy', 'pitr'],
      {
        env: { APP_DB_URL: url },
      },
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'error: --strategy pitr cannot be used for production/db (environments.production.components.db): it has no pitr section, so point-in-time recovery is not set up\n',
    );
  });

  it('refuses a component that is not a database, and an unknown one', async () => {
    const files = await runCli(['--manifest', manifest, 'db', 'info', '--env', 'production', '--component', 'config']);
    expect(files.stderr).toBe('error: production/config is a files component, not postgres\n');
    const unknown = await runCli(['--manifest', manifest, 'db', 'info', '--env', 'production', '--component', 'cache']);
    expect(unknown.stderr).toBe('error: environment "production" has no component "cache" (it has: db, config)\n');
  });

  it('leaves the database as it was after refusing', async () => {
    expect(await sql(url, 'SELECT count(*)::int AS n FROM flyway_schema_history')).toEqual([{ n: 5 }]);
  });
});

describe('rewind db, on repeatable scripts and a failure part-way', () => {
  // A database and a copy of the scripts of its own: these tests edit scripts and fail undos.
  const own = path.join(dir, 'own');
  const ownMigrations = path.join(own, 'migrations');
  cpSync(path.join(__dirname, 'fixtures', 'flyway'), ownMigrations, { recursive: true });
  const ownManifest = path.join(own, 'rewind.yaml');
  writeFileSync(
    ownManifest,
    `repository: { path: ./repo }
approvers: [alice]
environments:
  production:
    components:
      db: { kind: postgres, urlEnv: APP_DB_URL, migrations: ./migrations }
`,
  );
  let ownUrl: string;
  beforeEach(async () => {
    ownUrl = await createDatabase();
  });
  afterEach(() => dropDatabase(ownUrl));
  const ownDb = (args: string[]) =>
    runCli(['--manifest', ownManifest, 'db', ...args, '--env', 'production', '--component', 'db'], {
      env: { APP_DB_URL: ownUrl },
    });
  interface Info {
    repeatables: { category: string; script: string; state: string; checksum: number; appliedChecksum?: number }[];
  }
  const info = async () => JSON.parse((await ownDb(['info', '--json'])).stdout) as Info;

  it('lists repeatable scripts as Flyway does: pending, success, and outdated once changed after it ran', async () => {
    expect((await info()).repeatables).toEqual([
      expect.objectContaining({ category: 'repeatable', script: 'R__order_summary.sql', state: 'pending' }),
    ]);
    expect((await ownDb(['migrate'])).stdout).toMatch(/applied 1, 2, 3, 4, R:order summary; now at 4\n$/);
    const applied = (await info()).repeatables[0]!;
    expect(applied.state).toBe('success');

    const script = path.join(ownMigrations, 'R__order_summary.sql');
    const original = readFileSync(script, 'utf8');
    writeFileSync(script, `${original}-- counts every order\n`);
    try {
      const changed = (await info()).repeatables[0]!;
      expect(changed).toMatchObject({ state: 'outdated', appliedChecksum: applied.checksum });
      expect(changed.checksum).not.toBe(applied.checksum);
      const text = (await ownDb(['info'])).stdout;
      expect(text).toMatch(/^CATEGORY +VERSION +STATE +CHECKSUM +SCRIPT$/m);
      expect(text).toMatch(
        /^Repeatable +outdated +-?\d+ +R__order_summary\.sql {2}changed since it last ran \(applied checksum -?\d+\); the next migrate runs it again$/m,
      );
      // validate does not stop on it: an outdated repeatable simply runs again.
      expect((await ownDb(['validate'])).code).toBe(0);
      expect((await ownDb(['migrate'])).stdout).toMatch(/applied R:order summary; now at 4\n$/);
      expect((await info()).repeatables[0]!.state).toBe('success');
    } finally {
      writeFileSync(script, original);
    }
  });

  it('says where the database stands when an undo fails part-way, quoting DETAIL and HINT', async () => {
    await ownDb(['migrate', '--target', '3']);
    // Something outside the migrations depends on orders: U3 still runs, U2 cannot drop the table.
    await sql(ownUrl, 'CREATE VIEW order_ids AS SELECT id FROM orders');
    const result = await ownDb(['undo', '--target', '1']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'error: U2__add_orders.sql failed and was rolled back: cannot drop table orders because other objects depend on it' +
        ' DETAIL: view order_ids depends on table orders HINT: Use DROP ... CASCADE to drop the dependent objects too.' +
        ' The database is now at version 2; undid before the failure: 3; fix the cause and run it again: what is done is not done twice\n',
    );
    const rows = await sql<{ version: string; type: string }>(
      ownUrl,
      'SELECT version, type FROM flyway_schema_history ORDER BY installed_rank',
    );
    expect(rows.map((r) => `${r.type} ${r.version}`)).toEqual(['SQL 1', 'SQL 2', 'SQL 3', 'UNDO_SQL 3']);

    // Once the cause is gone, the same command finishes the job, without undoing 3 twice.
    await sql(ownUrl, 'DROP VIEW order_ids');
    expect(JSON.parse((await ownDb(['undo', '--target', '1', '--json'])).stdout)).toEqual({
      undone: ['2'],
      current: '1',
    });
  });
});
