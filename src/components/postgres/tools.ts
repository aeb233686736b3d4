// PostgreSQL's own client programs (pg_dump, pg_restore, pg_basebackup, pg_ctl …), the newest
// installed, which must be at least as new as the server they talk to.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { DatabaseError } from './connect';

export type PgTool = 'pg_dump' | 'pg_restore' | 'pg_basebackup' | 'pg_ctl' | 'initdb' | 'psql' | 'postgres' | 'pgbench';

export interface PgBin {
  dir: string;
  major: number;
  tool(name: PgTool): string;
}

/** Folders holding PostgreSQL programs, newest first: $REWIND_PG_BIN, Debian's layout, then PATH. */
function candidateDirs(env: NodeJS.ProcessEnv): string[] {
  // An explicit choice is the only candidate.
  if (env.REWIND_PG_BIN) return [env.REWIND_PG_BIN];
  const dirs: string[] = [];
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    dirs.push(...versions.map((v) => path.join(debian, v, 'bin')));
  }
  dirs.push(...(env.PATH ?? '').split(path.delimiter).filter(Boolean));
  return dirs;
}

function majorOf(binary: string): number | undefined {
  try {
    const out = execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    const match = /\(PostgreSQL\)\s+(\d+)/.exec(out);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The newest PostgreSQL programs installed, checked against the server's major version:
 * pg_dump refuses to dump a newer server, and rewind says so before it starts.
 */
export function pgBin(serverMajor?: number, env: NodeJS.ProcessEnv = process.env): PgBin {
  let best: PgBin | undefined;
  for (const dir of candidateDirs(env)) {
    const dump = path.join(dir, 'pg_dump');
    if (!existsSync(dump)) continue;
    const major = majorOf(dump);
    if (major !== undefined && (!best || major > best.major))
      best = { dir, major, tool: (name) => path.join(dir, name) };
  }
  if (!best) {
    throw new DatabaseError(
      'no PostgreSQL client programs found (pg_dump); install the postgresql-client package or set REWIND_PG_BIN',
      'version',
    );
  }
  if (serverMajor !== undefined && best.major < serverMajor) {
    throw new DatabaseError(
      `pg_dump ${best.major} (${best.dir}) cannot dump a PostgreSQL ${serverMajor} server; install the PostgreSQL ${serverMajor} client programs or set REWIND_PG_BIN`,
      'version',
    );
  }
  return best;
}
