// npm run bench:postgres: rewind's snapshot and restore of a ~1 GB database (pgbench -i -s 70)
// against raw pg_dump -Fc to a file and pg_restore of that file, in the same run; how much a
// second snapshot adds after 1% more rows; and how long the swap keeps the database away.
//
//   REWIND_BENCH_PG_SCALE=70 REWIND_BENCH_ROUNDS=1 npm run bench:postgres
//   REWIND_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres (the server to use)
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadManifest } from '../src/manifest/load';
import { runProgram } from '../src/platform/process';
import { libpqTarget, withDatabase } from '../src/components/postgres/dump';
import { pgBin } from '../src/components/postgres/tools';
import { openSnapshotStore } from '../src/snapshots/open';
import { median, rollbackApprovedAtOnce, say, startBenchStack } from './stack';

const SCALE = Number(process.env.REWIND_BENCH_PG_SCALE ?? 70);
const ROUNDS = Number(process.env.REWIND_BENCH_ROUNDS ?? 1);
const ADMIN = process.env.REWIND_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB = 'rewind_bench_pg';
const PASSWORD = 'bench-password';

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function query(url: string, text: string): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<pg.QueryResultRow>(text);
    return result.rows;
  } finally {
    await client.end();
  }
}

function duBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += statSync(path.join(entry.parentPath, entry.name)).size;
  }
  return total;
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const started = process.hrtime.bigint();
  const value = await fn();
  return [Number(process.hrtime.bigint() - started) / 1e6, value];
}

async function main(): Promise<void> {
  const bin = pgBin();
  const url = withDatabase(ADMIN, DB);
  const work = mkdtempSync(path.join(os.tmpdir(), 'rewind-bench-pg-'));
  say(`creating ${DB} with pgbench -i -s ${SCALE} …`);
  await query(ADMIN, `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await query(ADMIN, `CREATE DATABASE ${DB}`);
  const target = libpqTarget(url);
  await runProgram(bin.tool('pgbench'), ['-i', '-q', '-s', String(SCALE), target.dbname], { env: target.env });
  const size = Number((await query(url, 'SELECT pg_database_size(current_database()) AS b'))[0]!.b);
  say(`database size: ${(size / 2 ** 30).toFixed(2)} GiB`);

  const manifestFile = path.join(work, 'rewind.yaml');
  writeFileSync(
    manifestFile,
    `repository: { path: ./repo, passwordEnv: REWIND_BENCH_PASSWORD }
dataDir: ./state
approvers: [alice, bob]
policy: { approvalTimeout: 30m, heartbeatTimeout: 60s }
temporal: { taskQueue: bench-pg }
environments:
  production:
    components:
      db: { kind: postgres, url: "${url}", strategy: restore }
`,
  );
  const { manifest } = loadManifest(manifestFile);
  const env = { ...process.env, REWIND_BENCH_PASSWORD: PASSWORD };
  const stack = await startBenchStack({ manifest, manifestFile, env, store: openSnapshotStore(manifest, env) });
  const { client } = stack;
  try {
    stack.launch(['worker']);
    stack.launch(['agent', '--env', 'production']);
    const repo = manifest.repository.path;

    const raw: number[] = [];
    const ours: { snapshot: number; restore: number; swap: number }[] = [];
    let firstAdded = 0;
    let secondAdded = 0;
    // restic's own count of new data before compression, which shows deduplication alone.
    const dataAdded = async (version: string): Promise<number> => {
      const [list] = (await client.store!.restic.run([
        'snapshots',
        '--no-lock',
        '--tag',
        `rewind,version=${version},role=data`,
      ])) as unknown as [{ summary?: { data_added?: number } }[]];
      return list?.[0]?.summary?.data_added ?? 0;
    };
    let rawAdded: [number, number] = [0, 0];
    for (let round = 1; round <= ROUNDS; round++) {
      say(`round ${round}/${ROUNDS}: raw pg_dump -Fc and pg_restore …`);
      const file = path.join(work, 'raw.dump');
      const [dumpMs] = await timed(() =>
        runProgram(bin.tool('pg_dump'), ['-Fc', '-f', file, target.dbname], { env: target.env }),
      );
      await query(ADMIN, 'DROP DATABASE IF EXISTS rewind_bench_raw WITH (FORCE)');
      await query(ADMIN, 'CREATE DATABASE rewind_bench_raw');
      const rawTarget = libpqTarget(withDatabase(ADMIN, 'rewind_bench_raw'));
      const [restoreMs] = await timed(() =>
        runProgram(bin.tool('pg_restore'), ['-d', rawTarget.dbname, file], { env: rawTarget.env }),
      );
      await query(ADMIN, 'DROP DATABASE rewind_bench_raw WITH (FORCE)');
      rmSync(file, { force: true });
      raw.push(dumpMs + restoreMs);
      say(`  raw: pg_dump ${seconds(dumpMs)} + pg_restore ${seconds(restoreMs)}`);

      say(`round ${round}/${ROUNDS}: rewind snapshot …`);
      const before = round === 1 ? 0 : duBytes(repo);
      const version = `r${round}`;
      const [snapshotMs] = await timed(async () =>
        client.snapshotResult(
          (await client.startSnapshot({ environment: 'production', version, requester: 'bench' })).workflowId,
        ),
      );
      if (round === 1) firstAdded = duBytes(repo) - before;

      say(`round ${round}/${ROUNDS}: 1% more rows, second snapshot …`);
      const rows = SCALE * 1000;
      await query(
        url,
        `INSERT INTO pgbench_accounts SELECT aid + ${SCALE * 100_000}, bid, abalance, filler FROM pgbench_accounts WHERE aid <= ${rows}`,
      );
      const beforeSecond = duBytes(repo);
      await client.snapshotResult(
        (await client.startSnapshot({ environment: 'production', version: `${version}-plus`, requester: 'bench' }))
          .workflowId,
      );
      if (round === 1) {
        secondAdded = duBytes(repo) - beforeSecond;
        rawAdded = [await dataAdded(version), await dataAdded(`${version}-plus`)];
      }

      say(`round ${round}/${ROUNDS}: rewind restore (rollback to ${version}) …`);
      const status = await rollbackApprovedAtOnce(client, {
        environment: 'production',
        target: { kind: 'version', version },
        acceptDataLoss: true,
      });
      const outcome = status.steps.db!.outcome!;
      const swapWindowMs = (outcome.details as { swapWindowMs?: number } | undefined)?.swapWindowMs;
      ours.push({ snapshot: snapshotMs, restore: outcome.durationMs, swap: swapWindowMs ?? 0 });
      say(
        `  rewind: snapshot ${seconds(snapshotMs)} + restore ${seconds(outcome.durationMs)} (swap ${swapWindowMs ?? '?'} ms)`,
      );
    }

    const rawMedian = median(raw);
    const oursMedian = median(ours.map((o) => o.snapshot + o.restore));
    const ratio = oursMedian / rawMedian;
    const growth = secondAdded / firstAdded;
    process.stdout.write(
      [
        `rewind postgres benchmark: pgbench scale ${SCALE} (${(size / 2 ** 30).toFixed(2)} GiB), ${ROUNDS} round(s), medians`,
        `  snapshot + restore ${seconds(oursMedian)}  vs  pg_dump -Fc + pg_restore ${seconds(rawMedian)}  = ${ratio.toFixed(2)}x  (goal < 1.3x: ${ratio < 1.3 ? 'PASS' : 'FAIL'})`,
        `  second snapshot after 1% more rows added ${(secondAdded / 2 ** 20).toFixed(1)} MiB to the repository, ${(growth * 100).toFixed(1)}% of the first snapshot's ${(firstAdded / 2 ** 20).toFixed(1)} MiB  (goal < 10%: ${growth < 0.1 ? 'PASS' : 'FAIL'})`,
        `  before compression (restic data_added): first ${(rawAdded[0] / 2 ** 20).toFixed(1)} MiB, second ${(rawAdded[1] / 2 ** 20).toFixed(1)} MiB (${((rawAdded[1] / rawAdded[0]) * 100).toFixed(1)}%)`,
        `  swap window (database refusing connections): ${median(ours.map((o) => o.swap))} ms`,
        `  samples: rewind snapshot+restore [${ours.map((o) => `${seconds(o.snapshot)}+${seconds(o.restore)}`).join(', ')}], raw [${raw.map(seconds).join(', ')}]`,
      ].join('\n') + '\n',
    );
  } finally {
    await stack.stop();
    await query(ADMIN, `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
