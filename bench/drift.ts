// bench:drift: a drift scan of two generated trees (100,000 files, 2 GB each, 0.1 % of files
// differing) through the real stack (Temporal dev server, control worker, one agent process per
// environment), side by side in one run with the tools that answer the same questions:
//   - first scan (empty indexes: every file hashed)  vs  rsync -rcn --delete (checksums both trees)
//   - re-scan with nothing changed (stat walk only)  vs  find's stat walk of both trees
//   - schema diff of two 1,000-table databases       vs  pg_dump --schema-only of one of them
//   - each agent's peak RSS (VmHWM) over the scans
// The trees are generated once under REWIND_BENCH_DIR (default /tmp/rewind-bench-drift) and kept.
// REWIND_BENCH_FILES and REWIND_BENCH_BYTES scale it down for a quick look; REWIND_BENCH_TABLES
// the databases; REWIND_BENCH_GENERATE_ONLY=1 only generates them; REWIND_BENCH_ONLY=trees or
// REWIND_BENCH_ONLY=schema runs only that part.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { loadManifest } from '../src/manifest/load';
import { pgBin } from '../src/components/postgres/tools';
import { median, say, startBenchStack } from './stack';
import pg from 'pg';

const FILES = Number(process.env.REWIND_BENCH_FILES ?? 100_000);
const BYTES = Number(process.env.REWIND_BENCH_BYTES ?? 2 * 1024 ** 3);
const TABLES = Number(process.env.REWIND_BENCH_TABLES ?? 1000);
const ROUNDS = Number(process.env.REWIND_BENCH_ROUNDS ?? 3);
const BASE = process.env.REWIND_BENCH_DIR ?? '/tmp/rewind-bench-drift';
const ONLY = process.env.REWIND_BENCH_ONLY;
const PG_ADMIN = process.env.REWIND_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function time(fn: () => void): number {
  const started = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

/** Two trees: 100 top folders × 10 sub-folders × files; B is A with 0.1 % of its files changed. */
function generateTrees(): { a: string; b: string; changed: number } {
  const dir = path.join(BASE, `${FILES}-${BYTES}`);
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');
  const marker = path.join(dir, 'ready.json');
  const changed = Math.max(1, Math.round(FILES / 1000));
  if (existsSync(marker)) return { a, b, changed };
  rmSync(dir, { recursive: true, force: true });
  say(`generating ${FILES} files, ${(BYTES / 1024 ** 3).toFixed(1)} GiB, in ${a} …`);
  const pool = randomBytes(64 << 20);
  const average = Math.floor(BYTES / FILES);
  let offset = 0;
  for (let i = 0; i < FILES; i++) {
    const folder = path.join(a, `d${Math.floor(i / 1000) % 100}`, `s${Math.floor(i / 100) % 10}`);
    if (i % 100 === 0) mkdirSync(folder, { recursive: true });
    // Sizes from half to one and a half times the average; content from a random pool, each file
    // its own slice, so no two files are alike.
    const size = Math.floor(average / 2 + ((i * 7919) % average));
    offset = (offset + 4099) % (pool.length - size - 1);
    writeFileSync(path.join(folder, `f${i}.bin`), pool.subarray(offset, offset + size));
  }
  say(`copying to ${b} …`);
  execFileSync('cp', ['-a', a, b]);
  for (let k = 0; k < changed; k++) {
    const i = Math.floor((k * FILES) / changed);
    const file = path.join(b, `d${Math.floor(i / 1000) % 100}`, `s${Math.floor(i / 100) % 10}`, `f${i}.bin`);
    writeFileSync(file, randomBytes(1024), { flag: 'r+' });
  }
  writeFileSync(marker, JSON.stringify({ files: FILES, bytes: BYTES, changed }));
  return { a, b, changed };
}

async function withDb<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function dbUrl(name: string): string {
  const url = new URL(PG_ADMIN);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Two databases of TABLES tables each (columns, a primary key, an index, a check); one table differs. */
async function generateDatabases(): Promise<{ from: string; to: string }> {
  const names = [`rewind_bench_drift_a_${TABLES}`, `rewind_bench_drift_b_${TABLES}`];
  for (const [i, name] of names.entries()) {
    const exists = await withDb(
      PG_ADMIN,
      async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount,
    );
    if (exists) continue;
    say(`creating ${name} with ${TABLES} tables …`);
    await withDb(PG_ADMIN, (c) => c.query(`CREATE DATABASE "${name}"`));
    await withDb(dbUrl(name), async (c) => {
      const statements: string[] = [];
      for (let t = 0; t < TABLES; t++) {
        statements.push(
          `CREATE TABLE t${t} (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2) CHECK (amount >= 0), created timestamptz DEFAULT now());`,
          `CREATE INDEX t${t}_name ON t${t} (name);`,
        );
      }
      if (i === 1) statements.push('ALTER TABLE t7 ADD COLUMN extra int;', 'CREATE INDEX t9_amount ON t9 (amount);');
      await c.query(statements.join('\n'));
    });
  }
  return { from: dbUrl(names[0]!), to: dbUrl(names[1]!) };
}

function peakRss(pid: number | undefined): number {
  if (!pid) return 0;
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmHWM:'));
  return Number(line?.match(/\d+/)?.[0] ?? 0) * 1024;
}

async function main(): Promise<void> {
  const { a, b, changed } = generateTrees();
  const dbs = await generateDatabases();
  if (process.env.REWIND_BENCH_GENERATE_ONLY === '1') return;
  const work = path.join(BASE, `run-${process.pid}`);
  mkdirSync(work, { recursive: true });
  const manifestFile = path.join(work, 'rewind.yaml');
  writeFileSync(
    manifestFile,
    stringify({
      repository: { path: './repo', passwordEnv: 'REWIND_BENCH_PASSWORD' },
      dataDir: './data',
      approvers: ['alice', 'bob'],
      environments: {
        production: { components: { tree: { kind: 'files', path: a }, db: { kind: 'postgres', url: dbs.from } } },
        regression: { components: { tree: { kind: 'files', path: b }, db: { kind: 'postgres', url: dbs.to } } },
      },
    }),
  );
  const env = { REWIND_BENCH_PASSWORD: 'bench', DATABASE_URL: dbUrl('postgres'), REWIND_LOG_LEVEL: 'warn' };
  process.env.REWIND_BENCH_PASSWORD = 'bench';
  const { manifest } = loadManifest(manifestFile);
  // The project store: a schema of its own would do, but one database of its own is simpler to drop.
  const storeDb = `rewind_bench_drift_store_${process.pid}`;
  await withDb(PG_ADMIN, (c) => c.query(`CREATE DATABASE "${storeDb}"`));
  env.DATABASE_URL = dbUrl(storeDb);

  const stack = await startBenchStack({ manifest, manifestFile, env });
  const agents = ['production', 'regression'].map((e) => stack.launch(['agent', '--env', e]));
  stack.launch(['worker']);
  try {
    const scan = async (components: string[]) => {
      const started = await stack.client.startDriftScan({ components, trigger: 'manual' });
      const summary = await stack.client.driftScanResult(started.workflowId);
      if (summary.status !== 'completed') throw new Error(`scan failed: ${summary.error}`);
      if (process.env.REWIND_BENCH_TRACE === '1') {
        const status = await stack.client.driftScanStatus(started.workflowId);
        say(`index refresh: ${JSON.stringify(Object.values(status.components).map((c) => c.index ?? {}))}`);
        await trace(started.workflowId).catch((err: unknown) => say(`no trace: ${String(err)}`.slice(0, 200)));
      }
      return summary;
    };
    // REWIND_BENCH_TRACE=1: where each scan's time went, its activities in ms from the start.
    const trace = async (workflowId: string) => {
      const events = (await stack.client.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
      const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
        Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
      const t0 = ms(events[0]?.eventTime);
      const names = new Map<string, string>();
      const lines: string[] = [];
      for (const e of events) {
        const scheduled = e.activityTaskScheduledEventAttributes;
        if (scheduled) names.set(String(e.eventId), scheduled.activityType?.name ?? '?');
        const done = e.activityTaskCompletedEventAttributes;
        const started = e.activityTaskStartedEventAttributes;
        const id = String(done?.scheduledEventId ?? started?.scheduledEventId ?? e.eventId);
        const what = scheduled ? 'scheduled' : started ? 'started' : done ? 'completed' : '';
        if (what) lines.push(`${(ms(e.eventTime) - t0).toFixed(0).padStart(6)} ms ${what} ${names.get(id)}`);
        else if (e.markerRecordedEventAttributes)
          lines.push(
            `${(ms(e.eventTime) - t0).toFixed(0).padStart(6)} ms marker ${e.markerRecordedEventAttributes.markerName}`,
          );
        else if (e.workflowTaskStartedEventAttributes || e.workflowTaskCompletedEventAttributes)
          lines.push(
            `${(ms(e.eventTime) - t0).toFixed(0).padStart(6)} ms workflow task ${e.workflowTaskStartedEventAttributes ? 'started' : 'completed'}`,
          );
      }
      lines.push(`${(ms(events.at(-1)?.eventTime) - t0).toFixed(0).padStart(6)} ms closed`);
      say(lines.join('\n'));
    };
    say('warming up (agents and worker start, page cache) …');
    time(() => spawnSync('find', [a, b, '-printf', ''], { stdio: 'ignore' }));
    await scan(['db']);
    const rssAfter: string[] = [];
    const noteRss = (phase: string) =>
      rssAfter.push(`${phase}: ${agents.map((c) => `${(peakRss(c.pid) / 2 ** 20).toFixed(0)} MB`).join(' / ')}`);
    noteRss('agents started, one schema scan');

    // First scan: empty indexes. Side by side with rsync, same page cache state (warm: both trees
    // were just read by find, and the machine has room to keep them).
    const indexDir = path.join(work, 'data', 'agent');
    const firsts: number[] = [];
    const rsyncs: number[] = [];
    let found = 0;
    for (let r = 0; r < (ONLY === 'schema' ? 0 : ROUNDS); r++) {
      for (const e of ['production', 'regression'])
        rmSync(path.join(indexDir, e, 'drift', 'tree'), { recursive: true, force: true });
      rsyncs.push(time(() => spawnSync('rsync', ['-rcn', '--delete', `${a}/`, `${b}/`], { stdio: 'ignore' })));
      // A new scan id makes the agents read the index from disk, which is gone: every file is hashed.
      firsts.push(await timeAsync(async () => (found = (await scan(['tree'])).counts.warning)));
    }
    if (ONLY !== 'schema') noteRss('after the first scans');
    const rescans: number[] = [];
    const finds: number[] = [];
    for (let r = 0; r < (ONLY === 'schema' ? 0 : ROUNDS); r++) {
      finds.push(time(() => spawnSync('find', [a, b, '-printf', '%s %T@ %C@ %i\n'], { stdio: 'ignore' })));
      rescans.push(await timeAsync(() => scan(['tree'])));
    }
    if (ONLY !== 'schema') noteRss('after the re-scans');
    const schemas: number[] = [];
    const dumps: number[] = [];
    const bin = pgBin();
    for (let r = 0; r < (ONLY === 'trees' ? 0 : ROUNDS); r++) {
      dumps.push(
        time(() => spawnSync(bin.tool('pg_dump'), ['--schema-only', '-f', '/dev/null', dbs.from], { stdio: 'ignore' })),
      );
      schemas.push(await timeAsync(() => scan(['db'])));
    }
    const rss = agents.map((c) => peakRss(c.pid));
    // pg_dump 15 sends a LOCK TABLE per table, about 1,060 statements for 1,000 tables, one round
    // trip each; the scan sends a few dozen. How long a round trip takes here says how much of
    // pg_dump's time that is, and so how the ratio would move on another machine.
    const roundTrip =
      ONLY === 'trees'
        ? undefined
        : await withDb(dbs.from, async (c) => {
            const trips: number[] = [];
            for (let i = 0; i < 200; i++) trips.push(await timeAsync(() => c.query('SELECT 1')));
            return median(trips);
          });

    const measured: [string, number | undefined, string, number | undefined, number][] = [
      ['first scan (every file hashed)', median(firsts), 'rsync -rcn --delete', median(rsyncs), 2],
      ['re-scan, nothing changed', median(rescans), 'find stat walk of both', median(finds), 3],
      [`schema diff, ${TABLES} tables each`, median(schemas), 'pg_dump --schema-only of one', median(dumps), 1],
    ];
    const rows = measured.filter((row): row is [string, number, string, number, number] => row[1] !== undefined);
    const lines = [
      `bench:drift — ${FILES} files, ${(BYTES / 1024 ** 3).toFixed(2)} GiB per tree, ${changed} files differ; median of ${ROUNDS}`,
      `findings in the tree: ${found} (expected ${changed} changed files)`,
      '',
      '| measure | rewind | tool | tool time | ratio | goal |',
      '| --- | --- | --- | --- | --- | --- |',
      ...rows.map(
        ([what, ours, tool, theirs, goal]) =>
          `| ${what} | ${seconds(ours)} | ${tool} | ${seconds(theirs)} | ${(ours / theirs).toFixed(2)}× | < ${goal}× |`,
      ),
      '',
      ...(roundTrip === undefined
        ? []
        : [`PostgreSQL round trip (SELECT 1 over loopback TCP, median of 200): ${roundTrip.toFixed(2)} ms`]),
      `agent peak RSS: production ${(rss[0]! / 2 ** 20).toFixed(0)} MB, regression ${(rss[1]! / 2 ** 20).toFixed(0)} MB (goal < 300 MB)`,
      `peak RSS so far (production / regression), ${rssAfter.join('; ')}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await stack.stop();
    await withDb(PG_ADMIN, (c) => c.query(`DROP DATABASE IF EXISTS "${storeDb}" WITH (FORCE)`));
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  say(`bench:drift failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
