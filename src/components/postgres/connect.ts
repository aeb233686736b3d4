// Connections to a component's database, with errors an operator can act on and the password
// kept out of every message.
import pg from 'pg';
import { parse, toClientConfig } from 'pg-connection-string';

export class DatabaseError extends Error {
  constructor(
    message: string,
    /** Only unreachable, sql and lock errors are worth retrying. */
    readonly kind: 'unreachable' | 'auth' | 'permission' | 'config' | 'no-database' | 'version' | 'sql' | 'lock',
  ) {
    super(message);
    this.name = 'DatabaseError';
  }
}

/** The URL with its password replaced, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    // Not a URL: a keyword/value string ("host=… password=…") or something mangled.
    return url
      .replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@')
      .replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)/gi, '$1***');
  }
}

export function describeTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.hostname}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return redactUrl(url);
  }
}

export async function connectPostgres(url: string, options: { applicationName?: string } = {}): Promise<pg.Client> {
  let config: pg.ClientConfig;
  try {
    // sslmode with libpq's meaning, as pg_dump and pg_restore read the same URL: `require`
    // encrypts without checking the certificate; `verify-full` checks it.
    config = toClientConfig(parse(url, { useLibpqCompat: true }));
  } catch (err) {
    throw new DatabaseError(
      `cannot use the connection URL ${redactUrl(url)}: ${err instanceof Error ? err.message : String(err)}`,
      'config',
    );
  }
  const client = new pg.Client({
    ...config,
    connectionTimeoutMillis: 10_000,
    application_name: options.applicationName ?? 'rewind',
  });
  // A dropped connection emits 'error'; without a listener Node would crash the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw toDatabaseError(err, url);
  }
  return client;
}

export async function withPostgres<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connectPostgres(url);
  try {
    return await fn(client);
  } catch (err) {
    // Errors from the server itself (they carry a SQLSTATE) become rewind's own, with the
    // database named and the password hidden; everything else passes through unchanged.
    if (isServerError(err)) throw toDatabaseError(err, url);
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function isServerError(err: unknown): boolean {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'string' &&
    typeof (err as { severity?: unknown }).severity === 'string'
  );
}

export function toDatabaseError(err: unknown, url: string): DatabaseError {
  const where = describeTarget(url);
  const e = err as NodeJS.ErrnoException & { code?: string; message?: string };
  const message = String(e?.message ?? err).replace(url, redactUrl(url));
  switch (e?.code) {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
      return new DatabaseError(`cannot reach PostgreSQL at ${where}: ${message}`, 'unreachable');
    case '28P01':
    case '28000':
      return new DatabaseError(`PostgreSQL refused the credentials for ${where}: ${message}`, 'auth');
    case '3D000':
      return new DatabaseError(`PostgreSQL at ${where}: ${message}`, 'no-database');
    case '42501': // insufficient_privilege: the role lacks a grant, which retrying will not give it
      return new DatabaseError(
        `PostgreSQL at ${where}: ${message} (the connection's role lacks a privilege)`,
        'permission',
      );
    default:
      if (/timeout|terminated unexpectedly/i.test(message)) {
        return new DatabaseError(`cannot reach PostgreSQL at ${where}: ${message}`, 'unreachable');
      }
      return new DatabaseError(`PostgreSQL at ${where}: ${message}`, 'sql');
  }
}

/**
 * A postgres component's connection URL: `url`, or the value of the variable `urlEnv` names.
 * Throws a message that names the variable but never its value, which may hold a password
 * (a keyword/value string such as "host=… password=…" is refused for that reason too).
 */
export function componentUrl(
  component: { url?: string | undefined; urlEnv?: string | undefined },
  env: NodeJS.ProcessEnv,
  what: string,
): string {
  if (component.url !== undefined) return component.url;
  const value = env[component.urlEnv ?? ''];
  if (!value) throw new Error(`environment variable ${component.urlEnv ?? '?'} (the URL of ${what}) is not set`);
  let valid = /^postgres(ql)?:\/\//.test(value);
  try {
    new URL(value);
  } catch {
    valid = false;
  }
  if (!valid) {
    throw new Error(
      `environment variable ${component.urlEnv ?? '?'} (the URL of ${what}) does not hold a postgres://user:password@host:port/database URL; its value is not shown, as it may hold a password`,
    );
  }
  return value;
}
