// rewind's own state (drift scans and findings; later the audit log), apart from the databases
// it manages. With DATABASE_URL it lives in that PostgreSQL database; without it, in an embedded
// PGlite database under `<dataDir>/store`, so a first run needs no server.
//
// PGlite is one process's database. The process that opens it first (normally the control
// worker) owns it and serves it to the others (the CLI) over a Unix socket that speaks the
// PostgreSQL protocol; a process that finds no owner opens it itself, holding a lock file so
// that two never open it at once.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { STORE_MIGRATIONS } from './migrations';

export interface StoreQueries {
  query<T extends object = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
}

export interface ProjectStore extends StoreQueries {
  /** Runs `fn` in one transaction; a throw rolls it back. */
  transaction<T>(fn: (tx: StoreQueries) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /** Where the store is, for messages: `PostgreSQL db@host:5432/rewind` or `PGlite /srv/rewind/.data/store`. */
  readonly where: string;
}

export interface OpenStoreOptions {
  /** A PostgreSQL URL (DATABASE_URL); absent: the embedded store under dataDir. */
  databaseUrl?: string | undefined;
  dataDir: string;
  /** Owning the embedded store, serve it to other processes (the control worker does). */
  serve?: boolean;
  /** How long to wait for another process that holds the embedded store without serving it. */
  lockWaitMs?: number;
  /**
   * Use the embedded store only when its owner serves it: never open (and create) it here. For
   * a short command's one write, which must not take seconds or hold the store from the worker.
   */
  servedOnly?: boolean;
  /**
   * Open an embedded store only if it exists: a reading command (drift list, audit list) must
   * not create one, and an absent store usually means a DATABASE_URL or dataDir left unset.
   */
  existingOnly?: boolean;
}

export class StoreError extends Error {
  override name = 'StoreError';
}

export async function openProjectStore(options: OpenStoreOptions): Promise<ProjectStore> {
  const store = options.databaseUrl ? await openServerStore(options.databaseUrl) : await openEmbeddedStore(options);
  try {
    await migrate(store);
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

/** Applies the migrations not yet applied, each in its own transaction, in order. */
export async function migrate(store: ProjectStore): Promise<number[]> {
  await store.query(
    `CREATE TABLE IF NOT EXISTS rewind_store_migrations (
       version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
  );
  const applied: number[] = [];
  for (const migration of STORE_MIGRATIONS) {
    await store.transaction(async (tx) => {
      // Two processes starting together on one server: the second waits, then skips.
      await tx.query('SELECT pg_advisory_xact_lock(7412001)');
      const done = await tx.query('SELECT 1 FROM rewind_store_migrations WHERE version = $1', [migration.version]);
      if (done.length) return;
      await tx.query(migration.sql);
      await tx.query('INSERT INTO rewind_store_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      applied.push(migration.version);
    });
  }
  return applied;
}

function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.hostname}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return 'DATABASE_URL';
  }
}

async function openServerStore(url: string): Promise<ProjectStore> {
  // The control worker and the API are long-lived: their connections stay open for minutes when
  // idle (pg closes them after 10 s by default), so that a scan's findings or an approval do not
  // each wait for a new connection and a server process with cold caches. TCP keepalive finds a
  // connection a firewall dropped meanwhile.
  const pool = new pg.Pool({
    connectionString: url,
    max: 4,
    idleTimeoutMillis: 5 * 60_000,
    keepAlive: true,
    // Idle connections never keep a short command (the CLI) from exiting.
    allowExitOnIdle: true,
    application_name: 'rewind-store',
  });
  const where = `PostgreSQL ${describeUrl(url)}`;
  // An idle connection the server ends (a restart, a failover) is dropped from the pool; the
  // next query opens another. Without a listener the pool's error would end the process.
  pool.on('error', () => undefined);
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await pool.end();
    throw new StoreError(`cannot reach the project store (${where}): ${(err as Error).message}`);
  }
  return poolStore(pool, where);
}

function poolStore(pool: pg.Pool, where: string, onClose?: () => Promise<void>): ProjectStore {
  return {
    where,
    async query<T extends object>(text: string, params?: unknown[]) {
      return (await pool.query(text, params)).rows as T[];
    },
    async transaction(fn) {
      const client = await pool.connect();
      // A connection lost while checked out (the owner of a served store stopping, a server
      // restart) fails the statement in flight; without a listener its error would end the process.
      const lost = () => undefined;
      client.on('error', lost);
      try {
        await client.query('BEGIN');
        const result = await fn({
          query: async <T extends object>(text: string, params?: unknown[]) =>
            (await client.query(text, params)).rows as T[],
        });
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.off('error', lost);
        client.release();
      }
    },
    async close() {
      await pool.end();
      await onClose?.();
    },
  };
}

/** The folder of the Unix socket that serves an embedded store: short, so it fits sun_path. */
export function embeddedSocketDir(dataDir: string): string {
  const id = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12);
  return path.join(os.tmpdir(), `rewind-store-${id}`);
}

async function openEmbeddedStore(options: OpenStoreOptions): Promise<ProjectStore> {
  const dir = path.join(options.dataDir, 'store');
  const socketDir = embeddedSocketDir(options.dataDir);
  const where = `PGlite ${dir}`;
  const served = await connectServed(socketDir, where);
  if (served) return served;
  if (options.servedOnly)
    throw new StoreError(
      `no process serves the project store (${where}): start the control worker (rewind start, or rewind worker), or set DATABASE_URL`,
    );

  if (options.existingOnly && !existsSync(path.join(dir, 'pgdata')))
    throw new StoreError(
      `no project store yet (${where}): nothing has been recorded there. The control worker creates it (rewind start, or rewind worker); if the store is a PostgreSQL server, set DATABASE_URL`,
    );
  await mkdir(dir, { recursive: true });
  const release = await takeLock(path.join(options.dataDir, 'store.lock'), options.lockWaitMs ?? 10_000, socketDir);
  if (typeof release !== 'function') return release; // the owner started serving while we waited
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    const db = await PGlite.create(path.join(dir, 'pgdata'));
    let stopServer: (() => Promise<void>) | undefined;
    if (options.serve) stopServer = await serve(db, socketDir);
    // exec runs several statements (migrations); query takes parameters.
    const queryOn =
      (on: Pick<typeof db, 'exec' | 'query'>) =>
      async <T extends object>(text: string, params?: unknown[]): Promise<T[]> => {
        if (params === undefined && !/\$\d/.test(text)) {
          const results = await on.exec(text);
          return (results.at(-1)?.rows ?? []) as T[];
        }
        return (await on.query<T>(text, params)).rows;
      };
    return {
      where,
      query: queryOn(db),
      async transaction(fn) {
        return db.transaction((tx) => fn({ query: queryOn(tx) }));
      },
      async close() {
        await stopServer?.();
        await db.close();
        await release();
      },
    };
  } catch (err) {
    await release();
    throw new StoreError(`cannot open the project store (${where}): ${(err as Error).message}`);
  }
}

async function serve(db: PGlite, socketDir: string): Promise<() => Promise<void>> {
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  mkdirSync(socketDir, { recursive: true, mode: 0o700 });
  const socket = path.join(socketDir, '.s.PGSQL.5432');
  await rm(socket, { force: true }); // left by an owner that died; we hold the lock
  const server = new PGLiteSocketServer({ db, path: socket });
  await server.start();
  return async () => {
    await server.stop();
    await rm(socketDir, { recursive: true, force: true });
  };
}

async function connectServed(socketDir: string, where: string): Promise<ProjectStore | undefined> {
  const socket = await stat(path.join(socketDir, '.s.PGSQL.5432')).catch(() => undefined);
  if (!socket?.isSocket()) return undefined;
  // PGlite has one session: transactions from two connections would interleave, so a served
  // store is used one statement at a time (one connection), and only the owner writes in
  // transactions.
  const pool = new pg.Pool({ host: socketDir, user: 'postgres', database: 'postgres', max: 1 });
  pool.on('error', () => undefined);
  try {
    await pool.query('SELECT 1');
    return poolStore(pool, `${where} (served by its owner)`);
  } catch {
    await pool.end();
    return undefined;
  }
}

/**
 * Takes `<dataDir>/store.lock` (it names the holder's pid). A lock whose process is gone is
 * taken over. While a live holder keeps it, waits up to `waitMs`, trying its socket meanwhile.
 */
async function takeLock(
  file: string,
  waitMs: number,
  socketDir: string,
): Promise<(() => Promise<void>) | ProjectStore> {
  const deadline = Date.now() + waitMs;
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        await rm(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(holder) || holder <= 0 || !isAlive(holder)) {
      await rm(file, { force: true });
      continue;
    }
    const served = await connectServed(socketDir, `PGlite ${path.dirname(file)}`);
    if (served) return served;
    if (Date.now() > deadline) {
      throw new StoreError(
        `the project store is held by process ${holder}, which does not serve it (${file}); ` +
          'wait for it to finish, or set DATABASE_URL to keep the store in PostgreSQL',
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** Math.min(attempt, 4), 500)));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Opens the project store once, on first use: PostgreSQL when DATABASE_URL is set, else the
 * embedded store under dataDir, which this process then owns and serves to the CLI.
 */
export function lazyProjectStore(dataDir: string, env: NodeJS.ProcessEnv = process.env) {
  let opening: Promise<ProjectStore> | undefined;
  const open = () =>
    (opening ??= openProjectStore({ databaseUrl: env.DATABASE_URL, dataDir, serve: true }).catch((err: unknown) => {
      opening = undefined; // the next activity tries again
      throw err;
    }));
  return Object.assign(open, {
    close: async () => {
      const closing = opening;
      opening = undefined;
      const store = await closing?.catch(() => undefined);
      await store?.close();
    },
  });
}
