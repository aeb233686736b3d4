// npm run bench:store: the project store's lookup of "the latest completed scan of each
// component" (latestScanOf: a drift scan's first questions and its alert state use it) over a
// pair with years of hourly scans, with the index migration 11 adds and, in the same run,
// without it.
//
//   REWIND_BENCH_SCANS=17520 REWIND_BENCH_ROUNDS=20 npm run bench:store
//   REWIND_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres (the server to use)
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { previousDifferences } from '../src/activities/drift';
import { withDatabase } from '../src/components/postgres/dump';
import { openProjectStore, type ProjectStore } from '../src/store/project-store';
import { median, say } from './stack';

const SCANS = Number(process.env.REWIND_BENCH_SCANS ?? 17_520);
const ROUNDS = Number(process.env.REWIND_BENCH_ROUNDS ?? 20);
const FINDINGS = 20;
const COMPONENTS = ['config', 'models', 'db'];
const ADMIN = process.env.REWIND_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB = 'rewind_bench_store';

async function admin(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

async function timedMs(store: ProjectStore): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const started = process.hrtime.bigint();
    const found = await previousDifferences(store, { from: 'production', to: 'regression' }, COMPONENTS);
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
    // The newest scan's findings, or the measurement measures nothing.
    if (found.get('db')?.length !== FINDINGS) throw new Error('the lookup did not find the latest scan');
  }
  return median(times);
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'rewind-bench-store-'));
  await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${DB}`);
  const store = await openProjectStore({ databaseUrl: withDatabase(ADMIN, DB), dataDir: work });
  try {
    say(`recording ${SCANS} hourly scans of production → regression, ${FINDINGS * COMPONENTS.length} findings each …`);
    await store.query(
      `INSERT INTO drift_scans (id, from_env, to_env, workflow_id, trigger, components, manifest_digest, status,
                                started_at, finished_at)
       SELECT 'bench-' || lpad(g::text, 6, '0'), 'production', 'regression', 'bench', 'schedule',
              $2::jsonb, 'bench', 'completed',
              now() - make_interval(hours => $1 - g), now() - make_interval(hours => $1 - g) + interval '1 minute'
         FROM generate_series(1, $1::int) g`,
      [SCANS, JSON.stringify(COMPONENTS)],
    );
    await store.query(
      `INSERT INTO drift_findings (scan_id, key, component, aspect, subject, change, detail, severity, allowed,
                                   auto_fixable, state)
       SELECT 'bench-' || lpad(g::text, 6, '0'), md5(c || k), c, 'key', 'app.yaml:k' || k, 'changed', '1 → 2',
              'warning', false, false, 'persisting'
         FROM generate_series(1, $1::int) g, unnest($2::text[]) c, generate_series(1, $3::int) k`,
      [SCANS, COMPONENTS, FINDINGS],
    );
    await store.query('ANALYZE');
    const indexed = await timedMs(store);
    await store.query('DROP INDEX drift_scans_latest');
    await store.query('ANALYZE');
    const unindexed = await timedMs(store);
    const result = { scans: SCANS, rounds: ROUNDS, indexedMs: indexed, withoutIndexMs: unindexed };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    say(
      `latest scan of ${COMPONENTS.length} components over ${SCANS} scans: ${indexed.toFixed(2)} ms with drift_scans_latest, ${unindexed.toFixed(2)} ms without (median of ${ROUNDS})`,
    );
  } finally {
    await store.close();
    await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
