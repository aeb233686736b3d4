// Metrics as operators read them: real Prometheus scrapes the control worker's /metrics after one
// completed and one compensated rollback (real workflows, stub agent steps, the real announce
// activity recording the runs in a real PostgreSQL project store), and its query API answers the
// counters. A second metrics process, started afterwards, reports the same history.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { createAnnounceActivities, type AnnounceActivities } from '../src/activities/announce';
import { createControlMetrics } from '../src/metrics/control-metrics';
import { exportedSeriesNames } from '../src/metrics/catalog';
import { processMetricsRegistry } from '../src/metrics/registry';
import { renderMetrics, serveMetrics } from '../src/metrics/server';
import { timedTool } from '../src/metrics/tool-metrics';
import { createLogger } from '../src/platform/logger';
import { freePort } from '../src/platform/temporal-dev-server';
import { openSnapshotStore } from '../src/snapshots/open';
import { openProjectStore, type ProjectStore } from '../src/store/project-store';
import { recordRollbackEnd } from '../src/store/rollback-history';
import { eventually, TEST_PASSWORD } from './support/harness';
import { createDatabase, dropDatabase } from './support/postgres';
import { tempDir } from './support/temp';
import { createWorkflowTestEnv, type WorkflowTestEnv } from './support/workflow-test-worker';

const PROMETHEUS = '/usr/bin/prometheus';
const logger = createLogger('rewind-metrics-test', 'silent');

type Sample = { metric: Record<string, string>; value: [number, string] };

async function promQuery(base: string, query: string): Promise<Sample[]> {
  const response = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await response.json()) as { status: string; data: { result: Sample[] } };
  if (body.status !== 'success') throw new Error(`Prometheus refused ${query}: ${JSON.stringify(body)}`);
  return body.data.result;
}

describe('metrics', () => {
  let env: WorkflowTestEnv;
  let databaseUrl: string;
  let store: ProjectStore;
  let prometheus: ChildProcess | undefined;
  const servers: Server[] = [];
  const storeDir = tempDir('rewind-metrics-store-');
  const promDir = tempDir('rewind-prometheus-');

  beforeAll(async () => {
    if (!existsSync(PROMETHEUS))
      throw new Error(`${PROMETHEUS} is missing: apt-get install prometheus (.ci/run installs it)`);
    process.env.REWIND_TEST_PASSWORD = TEST_PASSWORD;
    databaseUrl = await createDatabase();
    store = await openProjectStore({ databaseUrl, dataDir: storeDir });
    let announce: AnnounceActivities | undefined;
    env = await createWorkflowTestEnv({
      control: {
        // The real announcement: it records each run's start and end in the project store.
        announceRollback: (req) => {
          announce ??= createAnnounceActivities({
            manifest: env.manifest,
            projectStore: () => Promise.resolve(store),
            logger,
          });
          return announce.announceRollback(req);
        },
      },
      agent: (stubs) => ({
        restoreComponent: (req) =>
          req.purpose === 'rollback' && req.component === 'models' && req.idempotencyKey?.includes('fail')
            ? Promise.reject(ApplicationFailure.nonRetryable('disk full writing model.pkl', 'ComponentUnavailable'))
            : stubs.restoreComponent(req),
      }),
    });
  });
  afterAll(async () => {
    prometheus?.kill('SIGKILL');
    for (const server of servers) server.close();
    await env?.teardown();
    await store?.close();
    if (databaseUrl) await dropDatabase(databaseUrl);
  });

  const approvedRun = async (requestId?: string) => {
    const id = await env.start({}, requestId ? { requestId } : {});
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    expect(await env.client.decide(id, 'approve', { user: 'bob' })).toMatchObject({ accepted: true });
    return (await env.finalStatus(id)).status;
  };

  it('real Prometheus scrapes the rollback counters of a completed and a compensated run', async () => {
    const completed = await approvedRun();
    expect(completed.state).toBe('completed');
    // Keyed: its steps' idempotency keys hold the run id, which holds the key.
    const compensated = await approvedRun('fail-once');
    expect(compensated.state).toBe('compensated');

    const rows = await store.query<{ run_id: string; state: string; approval_wait_seconds: number | null }>(
      'SELECT run_id, state, approval_wait_seconds FROM rollback_runs ORDER BY ended_seq',
    );
    expect(rows.map((r) => [r.run_id, r.state])).toEqual([
      [completed.workflowId, 'completed'],
      [compensated.workflowId, 'compensated'],
    ]);
    expect(rows.every((r) => r.approval_wait_seconds !== null && r.approval_wait_seconds >= 0)).toBe(true);

    const snapshots = openSnapshotStore(env.manifest);
    await snapshots.restic.ensureInitialized();
    const metrics = createControlMetrics({
      manifest: env.manifest,
      projectStore: () => Promise.resolve(store),
      client: env.temporal,
      snapshots,
      logger,
    });
    const metricsPort = await freePort();
    servers.push(
      await serveMetrics(`127.0.0.1:${metricsPort}`, [{ registry: processMetricsRegistry() }, metrics], logger),
    );

    const dir = promDir;
    const config = path.join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        'scrape_configs:',
        '  - job_name: rewind-worker',
        `    static_configs: [{ targets: ['127.0.0.1:${metricsPort}'] }]`,
      ].join('\n'),
    );
    const promPort = await freePort();
    prometheus = spawn(
      PROMETHEUS,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: 'ignore' },
    );
    const base = `http://127.0.0.1:${promPort}`;
    const totals = await eventually(
      async () => {
        const result = await promQuery(base, 'rewind_rollbacks_total').catch(() => []);
        return result.length >= 2 ? result : undefined;
      },
      'Prometheus to have scraped the rollback counters',
      60_000,
    );
    const byResult = Object.fromEntries(totals.map((s) => [s.metric.result, s]));
    expect(byResult.completed).toMatchObject({
      metric: { environment: 'production', trigger: 'manual', job: 'rewind-worker' },
      value: [expect.any(Number), '1'],
    });
    expect(byResult.compensated).toMatchObject({
      metric: { environment: 'production' },
      value: [expect.any(Number), '1'],
    });

    const [durations] = await promQuery(base, 'sum(rewind_rollback_duration_seconds_count{phase="total"})');
    expect(durations!.value[1]).toBe('2');
    const [compensations] = await promQuery(base, 'sum(rewind_rollback_duration_seconds_count{phase="compensate"})');
    expect(compensations!.value[1]).toBe('1');
    const [waits] = await promQuery(base, 'sum(rewind_approval_wait_seconds_count)');
    expect(waits!.value[1]).toBe('2');
    const [success] = await promQuery(
      base,
      'sum(rewind_rollbacks_total{result="completed"}) / sum(rewind_rollbacks_total)',
    );
    expect(Number(success!.value[1])).toBe(0.5);
    const inProgress = await promQuery(base, 'rewind_rollbacks_in_progress');
    expect(inProgress.map((s) => [s.metric.state, s.value[1]]).sort()).toEqual([
      ['awaiting-approval', '0'],
      ['running', '0'],
    ]);
    const [up] = await promQuery(base, 'up{job="rewind-worker"}');
    expect(up!.value[1]).toBe('1');
  }, 120_000);

  it('a restarted metrics process reports the same history, and a retried ending counts once', async () => {
    const [run] = await store.query<{ run_id: string }>("SELECT run_id FROM rollback_runs WHERE state = 'completed'");
    const { status } = await env.client.rollbackView(run!.run_id);
    // The ending announced again (a retried activity): nothing changes.
    await recordRollbackEnd(store, status, new Date());
    const fresh = createControlMetrics({
      manifest: env.manifest,
      projectStore: () => Promise.resolve(store),
      client: env.temporal,
      snapshots: openSnapshotStore(env.manifest),
      logger,
    });
    const { body } = await renderMetrics([fresh]);
    expect(body).toMatch(/rewind_rollbacks_total\{environment="production",trigger="manual",result="completed"\} 1\n/);
    expect(body).toMatch(
      /rewind_rollbacks_total\{environment="production",trigger="manual",result="compensated"\} 1\n/,
    );
    expect(body).toMatch(
      /rewind_rollback_duration_seconds_count\{environment="production",result="completed",phase="total"\} 1\n/,
    );
    expect(body).toMatch(/rewind_repository_size_bytes\{repository="primary"\} \d+/);
  });

  it('counts the tools a process ran, failures apart', async () => {
    await timedTool('restic', 'backup', () => Promise.resolve());
    await expect(
      timedTool('restic', 'backup', () => Promise.reject(new Error('repository is locked'))),
    ).rejects.toThrow('locked');
    const { body } = await renderMetrics([{ registry: processMetricsRegistry() }]);
    expect(body).toMatch(/rewind_tool_duration_seconds_count\{tool="restic",operation="backup",outcome="ok"\} 1\n/);
    expect(body).toMatch(/rewind_tool_duration_seconds_count\{tool="restic",operation="backup",outcome="error"\} 1\n/);
    expect(body).toMatch(/^process_cpu_seconds_total /m);
  });

  it('every series a process exports is in the catalog the dashboards are checked against', async () => {
    const metrics = createControlMetrics({
      manifest: env.manifest,
      projectStore: () => Promise.resolve(store),
      client: env.temporal,
      snapshots: openSnapshotStore(env.manifest),
      logger,
    });
    const { body } = await renderMetrics([{ registry: processMetricsRegistry() }, metrics]);
    const names = new Set(
      body
        .split('\n')
        .filter((l) => l.startsWith('rewind_'))
        .map((l) => l.split(/[{ ]/)[0]!),
    );
    expect(names.size).toBeGreaterThan(5);
    const catalog = exportedSeriesNames();
    expect([...names].filter((n) => !catalog.includes(n))).toEqual([]);
  });

  it('refuses a metrics address that is taken, saying which', async () => {
    const port = await freePort();
    servers.push(await serveMetrics(`127.0.0.1:${port}`, [], logger));
    await expect(serveMetrics(`127.0.0.1:${port}`, [], logger, 'metrics.worker')).rejects.toThrow(
      `the metrics address 127.0.0.1:${port} is in use`,
    );
    const answer = await fetch(`http://127.0.0.1:${port}/other`);
    expect(answer.status).toBe(404);
  });
});
