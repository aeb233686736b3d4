// Records the golden histories that test/replay.test.ts replays: one run per outcome of each
// workflow. Run after an intended change to a workflow's commands (behind `patched()`), with a
// new generation name; earlier generations stay, as the histories of runs that older code
// started, which today's code must still replay:
//   npm run record-histories -- v3
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { execFileSync } from 'node:child_process';
import { resolveTool } from '../../src/platform/tools';
import { ensureSearchAttributes } from '../../src/platform/temporal';
import { startDevServer } from '../../src/platform/temporal-dev-server';
import { withPostgres } from '../../src/components/postgres/connect';
import { readMigrations } from '../../src/components/postgres/flyway';
import { Migrator } from '../../src/components/postgres/migrator';
import { drillWorkflow, repositoryMaintenanceWorkflow } from '../../src/workflows';
import { createTestEnv, eventually, type TestEnv } from './harness';
import { createDatabase, dropDatabase, sql } from './postgres';

const OUT = path.resolve(__dirname, '..', 'histories');
const GENERATION = process.argv[2];
if (!GENERATION || !/^v\d+$/.test(GENERATION)) {
  console.error('usage: npm run record-histories -- vN   (the new generation of golden histories)');
  process.exit(2);
}

/** Saves the history of a workflow's latest run, or of `runId`. */
async function save(env: TestEnv, workflowId: string, name: string, runId?: string): Promise<void> {
  await env.temporal.workflow
    .getHandle(workflowId)
    .result()
    .catch(() => undefined);
  // The temporal CLI writes history JSON in the format `historyFromJSON` reads back.
  const json = execFileSync(
    resolveTool('temporal'),
    [
      'workflow',
      'show',
      '--workflow-id',
      workflowId,
      ...(runId ? ['--run-id', runId] : []),
      '--address',
      process.env.TEMPORAL_ADDRESS!,
      '--output',
      'json',
    ],
    {
      encoding: 'utf8',
    },
  );
  writeFileSync(path.join(OUT, `${name}.${GENERATION}.json`), json);
  console.log(`recorded ${name} (${(JSON.parse(json) as { events: unknown[] }).events.length} events)`);
}

async function scenario(faults: string | undefined, run: (env: TestEnv) => Promise<void>): Promise<void> {
  const env = await createTestEnv(faults ? { faults: { production: faults } } : {});
  try {
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v1\n');
    writeFileSync(path.join(env.componentPath('production', 'models'), 'm.pkl'), 'pickle-v1');
    await run(env);
  } finally {
    await env.teardown();
  }
}

/** A database rolled back by undoing a migration, with the data-loss acceptance it needs. */
async function postgresScenario(): Promise<void> {
  const url = await createDatabase();
  const migrations = path.resolve(__dirname, '..', 'fixtures', 'flyway');
  const env = await createTestEnv({ environments: { production: { db: { kind: 'postgres', url, migrations } } } });
  try {
    const migrator = async (target: string) =>
      withPostgres(url, async (client) =>
        new Migrator(client, {
          schema: 'public',
          table: 'flyway_schema_history',
          migrations: await readMigrations(migrations),
        }).migrate(target),
      );
    await migrator('2');
    await env.snapshot('production', { version: 'v2' });
    await migrator('3');
    await sql(url, "INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com')");
    await sql(url, 'INSERT INTO orders (customer_id, total) SELECT id, 1 FROM customers');
    const id = await env.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'v2' },
      strategy: 'undo',
    });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob' });
    await env.client.decide(id, 'approve', { user: 'bob', acceptDataLoss: true });
    await save(env, id, 'rollback-postgres-undo');
  } finally {
    await env.teardown();
    await dropDatabase(url);
  }
}

/** A drift scan that finds a changed config key, and a sync that resolves it without approval. */
async function driftScenario(): Promise<void> {
  const env = await createTestEnv({
    environments: { production: { config: { format: 'config' } }, regression: { config: { format: 'config' } } },
    drift: { rules: [{ component: 'config', severity: 'warning', autoFix: true }] },
  });
  try {
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'pool: 10\n');
    writeFileSync(path.join(env.componentPath('regression', 'config'), 'app.yaml'), 'pool: 20\n');
    const scan = await env.client.startDriftScan({ trigger: 'manual', requestedBy: 'test' });
    await save(env, scan.workflowId, 'drift-scan-completed');
    const sync = await env.client.startSync({ components: ['config'], requestedBy: 'test' });
    await save(env, sync.workflowId, 'sync-completed');
  } finally {
    await env.teardown();
  }
}

/** A drift scan whose history outgrows drift.historyBytes: its first run continues as new, its last finishes. */
async function continuedScanScenario(): Promise<void> {
  const env = await createTestEnv({
    environments: { production: { tree: {} }, regression: { tree: {} } },
    drift: { historyBytes: 64 * 1024 },
  });
  try {
    for (const environment of ['production', 'regression'])
      for (let d = 0; d < 80; d++)
        for (let e = 0; e < 10; e++) {
          const dir = path.join(env.componentPath(environment, 'tree'), `d${d}`, `e${e}`);
          mkdirSync(dir, { recursive: true });
          for (let f = 0; f < 3; f++) {
            const differs = environment === 'regression' && d % 2 === 0 && f === 1;
            writeFileSync(path.join(dir, `f${f}.txt`), `${d}/${e}/${f}${differs ? '!' : ''}\n`);
          }
        }
    const scan = await env.client.startDriftScan({ trigger: 'manual', requestedBy: 'test' });
    const summary = await env.client.driftScanResult(scan.workflowId);
    if (!summary.runs) throw new Error('the scan did not continue as new');
    const first = await eventually(async () => {
      const runs = [];
      for await (const run of env.temporal.workflow.list({ query: `WorkflowId = '${scan.workflowId}'` }))
        runs.push(run);
      return runs
        .filter((r) => r.status.name === 'CONTINUED_AS_NEW')
        .sort((a, b) => a.startTime.getTime() - b.startTime.getTime())[0];
    }, 'the first run of the continued scan');
    await save(env, scan.workflowId, 'drift-scan-continuing', first.runId);
    await save(env, scan.workflowId, 'drift-scan-continued');
  } finally {
    await env.teardown();
  }
}

/** An alert-triggered rollback whose trigger rule approves it (triggers.rules[].autoApprove). */
async function autoApprovedScenario(): Promise<void> {
  const env = await createTestEnv({
    triggers: {
      auth: { bearerTokenEnv: 'AM_TOKEN' },
      rules: [{ name: 'canary', match: { alertname: 'CanaryFailing' }, environment: 'production', autoApprove: true }],
    },
  });
  try {
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v1\n');
    writeFileSync(path.join(env.componentPath('production', 'models'), 'm.pkl'), 'pickle-v1');
    await env.snapshot('production', { version: 'v1' });
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v2\n');
    const id = await env.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'v1' },
      requester: 'alertmanager',
      trigger: 'alert',
      triggerRule: 'canary',
    });
    const { status } = await env.finalStatus(id);
    if (status.state !== 'completed' || !status.autoApproval?.applied)
      throw new Error(
        `the auto-approved run ended ${status.state}, auto-approval ${JSON.stringify(status.autoApproval)}`,
      );
    await save(env, id, 'rollback-auto-approved');
  } finally {
    await env.teardown();
  }
}

/** A full drill (back to v1, forward again) and the repository's check and prune. */
async function operationsScenario(): Promise<void> {
  const env = await createTestEnv({ manifest: { drills: { environment: 'production' } } });
  try {
    const config = path.join(env.componentPath('production', 'config'), 'app.yaml');
    writeFileSync(config, 'v1\n');
    writeFileSync(path.join(env.componentPath('production', 'models'), 'm.pkl'), 'pickle-v1');
    await env.snapshot('production', { version: 'v1' });
    writeFileSync(config, 'v2\n');
    await env.snapshot('production', { version: 'v2' });
    const taskQueue = env.loaded.manifest.temporal.taskQueue;
    const drill = await env.temporal.workflow.execute(drillWorkflow, {
      taskQueue,
      workflowId: 'drill-production-full-recorded',
      args: [{ scope: 'full', requester: 'test' }],
    });
    if (drill.outcome !== 'passed') throw new Error(`the drill ${drill.outcome}: ${drill.reason ?? ''}`);
    await save(env, 'drill-production-full-recorded', 'drill-passed');
    for (const task of ['check', 'prune'] as const) {
      await env.temporal.workflow.execute(repositoryMaintenanceWorkflow, {
        taskQueue,
        workflowId: `repository-${task}-recorded`,
        args: [{ task }],
      });
      await save(env, `repository-${task}-recorded`, `repository-${task}`);
    }
  } finally {
    await env.teardown();
  }
}

/**
 * A staged rollout with verification checks: wave config, then models; a check that fails in
 * verify with onFailure ask, accepted by an approver (the verificationDecision Update).
 */
async function verifiedScenario(): Promise<void> {
  const env = await createTestEnv({
    verify: {
      production: {
        waves: [
          { name: 'first', components: ['config'] },
          { name: 'second', components: ['models'] },
        ],
        checks: [
          { name: 'config-present', after: ['config'], command: { run: 'true' } },
          { name: 'smoke', after: ['models'], command: { run: 'exit 1' } },
        ],
        onFailure: 'ask',
      },
    },
  });
  try {
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v1\n');
    writeFileSync(path.join(env.componentPath('production', 'models'), 'm.pkl'), 'pickle-v1');
    await env.snapshot('production', { version: 'v1' });
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v2\n');
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob' });
    await env.waitFor(id, (s) => s.verification?.awaiting === true);
    await env.client.decide(id, 'accept', { user: 'carol' });
    await save(env, id, 'rollback-verified-accepted');
  } finally {
    await env.teardown();
  }
}

async function main(): Promise<void> {
  const server = await startDevServer({ headless: true });
  process.env.TEMPORAL_ADDRESS = server.address;
  const connection = await Connection.connect({ address: server.address });
  await ensureSearchAttributes(connection, 'default');
  await connection.close();
  try {
    await scenario(undefined, async (env) => {
      const handle = await env.client.startSnapshot({ environment: 'production', version: 'v1', requester: 'test' });
      await save(env, handle.workflowId, 'snapshot-completed');
      writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v2\n');
      const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
      await env.waitFor(id, (s) => s.state === 'awaiting-approval');
      await env.client.decide(id, 'approve', { user: 'alice' });
      await env.client.decide(id, 'approve', { user: 'bob' });
      await save(env, id, 'rollback-completed');
      const rejected = await env.startRollback({
        environment: 'production',
        target: { kind: 'version', version: 'v1' },
      });
      await env.waitFor(rejected, (s) => s.state === 'awaiting-approval');
      await env.client.decide(rejected, 'reject', { user: 'bob' });
      await save(env, rejected, 'rollback-rejected');
    });
    await scenario('before-restore:models=fail', async (env) => {
      await env.snapshot('production', { version: 'v1' });
      writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v2\n');
      const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
      await env.waitFor(id, (s) => s.state === 'awaiting-approval');
      await env.client.decide(id, 'approve', { user: 'bob' });
      await save(env, id, 'rollback-compensated');
    });
    await postgresScenario();
    await verifiedScenario();
    await autoApprovedScenario();
    await driftScenario();
    await continuedScanScenario();
    await operationsScenario();
    await scenario('after-restore:config=pause:60s', async (env) => {
      await env.snapshot('production', { version: 'v1' });
      writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v2\n');
      const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
      await env.waitFor(id, (s) => s.state === 'awaiting-approval');
      await env.client.decide(id, 'approve', { user: 'bob' });
      await eventually(
        async () =>
          (await env.client.rollbackView(id)).live.some((l) => l.progress?.stage === 'paused by REWIND_FAULTS') ||
          undefined,
        'pause',
      );
      await env.client.cancel(id, { user: 'carol', reason: 'test' });
      await save(env, id, 'rollback-cancelled-during-execute');
    });
  } finally {
    await server.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
