// The repository's schedules, end to end on the real workflows and a real restic repository: a
// snapshot schedule takes a cross-section when it fires, the prune schedule's workflow forgets
// what the tiers drop and prunes, the check schedule's runs restic check (reading data when due)
// and records it, and the metrics show the check.
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { applySchedules } from '../src/client/schedules';
import { createControlMetrics } from '../src/metrics/control-metrics';
import { renderMetrics } from '../src/metrics/server';
import { createLogger } from '../src/platform/logger';
import { repositoryMaintenanceWorkflow } from '../src/workflows';
import { createTestEnv, eventually, type TestEnv } from './support/harness';

let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv({
    environments: { production: { config: { format: 'config' } } },
    manifest: {
      snapshots: {
        schedules: { production: { every: '1h' } },
        keep: { hourly: '7d', daily: '90d', weekly: '365d', releases: 1 },
        check: { readDataSubset: '50%', readDataEvery: '7d' },
      },
    },
  });
});
afterAll(() => env?.teardown());

const maintain = (task: 'prune' | 'check') =>
  env.temporal.workflow.execute(repositoryMaintenanceWorkflow, {
    taskQueue: env.loaded.manifest.temporal.taskQueue,
    workflowId: `repository-${task}-${Date.now()}`,
    args: [{ task }],
  });

describe('repository maintenance', () => {
  test('the snapshot schedule takes a scheduled cross-section when it fires', async () => {
    const manifest = env.loaded.manifest;
    const changes = await applySchedules(env.temporal, manifest);
    const snapshot = changes.find((c) => c.kind === 'snapshot')!;
    expect(snapshot).toMatchObject({ what: 'cross-section of production', every: '1h', change: 'created' });
    try {
      await env.temporal.schedule.getHandle(snapshot.scheduleId).trigger();
      const taken = await eventually(
        async () => (await env.store.crossSections('production')).find((s) => s.origin === 'schedule' && s.complete),
        'the scheduled cross-section',
        60_000,
      );
      expect(taken.reason).toBe('scheduled, every 1h');
    } finally {
      for (const c of changes)
        await env.temporal.schedule
          .getHandle(c.scheduleId)
          .delete()
          .catch(() => undefined);
    }
  });

  test('prune keeps what the tiers keep; a dry run keeps nothing of its own', async () => {
    const file = path.join(env.componentPath('production', 'config'), 'app.yaml');
    appendFileSync(file, 'a: 1\n');
    const v1 = await env.snapshot('production', { version: 'v1' });
    appendFileSync(file, 'b: 2\n');
    const v2 = await env.snapshot('production', { version: 'v2' });
    // A dry run keeps no cross-section once it has ended; an old one left over (a dry run of an
    // earlier version) goes at the prune.
    const dry = await env.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'v1' },
      requester: 'alice',
      dryRun: true,
    });
    expect((await env.finalStatus(dry)).status.state).toBe('completed');
    expect((await env.store.crossSections('production')).filter((s) => s.workflowId === dry)).toEqual([]);

    const result = await maintain('prune');
    // v1 is within keep.event (90 days), so it stays.
    expect(result.retention!.environments).toEqual([{ environment: 'production', kept: 3, forgotten: 0 }]);
    expect(result.prune!.bytesAfter).toBeLessThanOrEqual(result.prune!.bytesBefore);
    const left = (await env.store.crossSections('production')).map((s) => s.id);
    expect(left).toEqual(expect.arrayContaining([v1.crossSectionId, v2.crossSectionId]));
  }, 120_000);

  test('check runs restic check, reads data when due, records it, and the metrics show it', async () => {
    const first = await maintain('check');
    expect(first.check).toMatchObject({ repository: 'primary', ok: true, readData: '50%' });
    // Within readDataEvery: structure only.
    const second = await maintain('check');
    expect(second.check).toMatchObject({ ok: true });
    expect(second.check).not.toHaveProperty('readData');
    const rows = await (
      await env.projectStore()
    ).query<{ ok: boolean; read_data: string | null }>('SELECT ok, read_data FROM repository_checks ORDER BY id');
    expect(rows).toEqual([
      { ok: true, read_data: '50%' },
      { ok: true, read_data: null },
    ]);
    const metrics = createControlMetrics({
      manifest: env.loaded.manifest,
      projectStore: () => env.projectStore(),
      client: env.temporal,
      snapshots: env.store,
      logger: createLogger('maintenance-test', 'silent'),
    });
    const { body } = await renderMetrics([metrics]);
    const at = /^rewind_repository_check_last_success_timestamp_seconds\{repository="primary"\} (\S+)$/m.exec(body);
    expect(Number(at![1])).toBeGreaterThan(Date.now() / 1000 - 120);
    expect(body).toMatch(/^rewind_snapshots\{repository="primary",environment="production",tier="event"\} 2$/m);
  }, 120_000);
});
