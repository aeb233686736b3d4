// npm run bench:stats: `rewind stats` over 10,000 recorded rollbacks (goal: under 1 s), as an
// operator runs it (the CLI, a process of its own, against PostgreSQL), side by side in the
// same run with the same numbers asked of psql directly.
//
//   REWIND_BENCH_RUNS=10000 REWIND_BENCH_ROUNDS=5 npm run bench:stats
//   REWIND_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres (the server to use)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { withDatabase } from '../src/components/postgres/dump';
import { pgBin } from '../src/components/postgres/tools';
import { openProjectStore } from '../src/store/project-store';
import { rollbackStats } from '../src/store/rollback-history';
import { median, say } from './stack';

const RUNS = Number(process.env.REWIND_BENCH_RUNS ?? 10_000);
const ROUNDS = Number(process.env.REWIND_BENCH_ROUNDS ?? 5);
const ADMIN = process.env.REWIND_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB = 'rewind_bench_stats';

async function query(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

function timedMs(fn: () => void): number {
  const started = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function main(): Promise<void> {
  const url = withDatabase(ADMIN, DB);
  const work = mkdtempSync(path.join(os.tmpdir(), 'rewind-bench-stats-'));
  try {
    await query(ADMIN, `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    await query(ADMIN, `CREATE DATABASE ${DB}`);
    const store = await openProjectStore({ databaseUrl: url, dataDir: work });
    say(`recording ${RUNS} ended rollbacks over two years …`);
    // Two environments, three triggers, every ending state; durations of seconds to an hour.
    await store.query(
      `INSERT INTO rollback_runs (run_id, environment, trigger, requester, target, state, started_at, ended_at,
                                  duration_seconds, approval_wait_seconds, phase_seconds, ended_seq)
       SELECT 'rollback-bench-' || i,
              (ARRAY['production', 'regression'])[1 + i % 2],
              (ARRAY['manual', 'alert', 'drill'])[1 + i % 3],
              'alice', 'version v' || (i % 50),
              (ARRAY['completed', 'completed', 'completed', 'compensated', 'failed', 'rejected', 'timed-out', 'cancelled'])[1 + i % 8],
              now() - make_interval(mins => i * 105) - make_interval(secs => 30 + i % 3600),
              now() - make_interval(mins => i * 105),
              30 + i % 3600, i % 600, '{"execute": 12.5, "verify": 1.5}'::jsonb,
              nextval('rollback_runs_ended_seq')
         FROM generate_series(1, $1) AS i`,
      [RUNS],
    );
    await store.query('ANALYZE rollback_runs');
    const library: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const started = process.hrtime.bigint();
      await rollbackStats(store);
      library.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    await store.close();

    const manifest = path.join(work, 'rewind.yaml');
    writeFileSync(
      manifest,
      [
        'repository: { path: ./repo }',
        'approvers: [alice]',
        'environments:',
        '  production: { components: { config: { kind: files, path: ./p } } }',
        '  regression: { components: { config: { kind: files, path: ./r } } }',
      ].join('\n'),
    );
    const cli = path.resolve('lib/src/client/cli.js');
    const env = { ...process.env, DATABASE_URL: url, REWIND_MANIFEST: manifest };
    const psql = pgBin().tool('psql');
    // The totals by environment, trigger and month in one GROUP BY: the least psql would do.
    const rawSql = `SELECT environment, trigger, to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month, state,
                           count(*), avg(duration_seconds) FROM rollback_runs WHERE ended_seq IS NOT NULL
                     GROUP BY 1, 2, 3, 4`;
    const cliMs: number[] = [];
    const psqlMs: number[] = [];
    let output = '';
    for (let r = 0; r < ROUNDS; r++) {
      cliMs.push(
        timedMs(() => (output = execFileSync(process.execPath, [cli, 'stats', '--json'], { env }).toString())),
      );
      psqlMs.push(timedMs(() => execFileSync(psql, ['-X', '-q', '-A', '-c', rawSql, url], { stdio: 'pipe' })));
    }
    const stats = JSON.parse(output) as { total: { runs: number; successRate: number }; groups: unknown[] };
    say('');
    say(
      `${RUNS} ended rollbacks, ${stats.groups.length} environment/trigger/month groups, success rate ${(stats.total.successRate * 100).toFixed(1)}%`,
    );
    say(`| measure | median of ${ROUNDS} | min | max |`);
    say('| --- | --- | --- | --- |');
    const line = (label: string, ms: number[]) =>
      say(
        `| ${label} | ${median(ms).toFixed(0)} ms | ${Math.min(...ms).toFixed(0)} ms | ${Math.max(...ms).toFixed(0)} ms |`,
      );
    line('`rewind stats --json` (the CLI, a new process, end to end)', cliMs);
    line('its query alone (rollbackStats, warm connection)', library);
    line('`psql -c` of a plain GROUP BY (the raw tool, a new process)', psqlMs);
    if (stats.total.runs !== RUNS) throw new Error(`stats counted ${stats.total.runs} runs, not ${RUNS}`);
  } finally {
    await query(ADMIN, `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
