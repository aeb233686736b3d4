// Rollback drills on the regression environment: back to the previous release through a real
// rollback (approved by the drills section, verified), forward to the exact state before the
// drill, timed against the goal, recorded in the store and the metrics.
import { appendFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { failureMessage } from '../src/client/client';
import type { DrillResult } from '../src/domain/drill';
import { createControlMetrics } from '../src/metrics/control-metrics';
import { renderMetrics } from '../src/metrics/server';
import { createLogger } from '../src/platform/logger';
import { drillWorkflow } from '../src/workflows';
import { createTestEnv, readTree, runCli, type TestEnv } from './support/harness';

let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv({
    environments: {
      regression: { config: { format: 'config' }, models: { format: 'any' }, assets: { format: 'any' } },
    },
    allowSelfApproval: { regression: false },
  });
});
afterAll(() => env?.teardown());

const runDrill = (scope: 'partial' | 'full', id: string) =>
  env.temporal.workflow.execute(drillWorkflow, {
    taskQueue: env.loaded.manifest.temporal.taskQueue,
    workflowId: id,
    args: [{ scope, requester: 'test' }],
  });

describe('rollback drills', () => {
  test('refuse to run without a previous release, saying how to make one', async () => {
    const err = await runDrill('full', `drill-none-${Date.now()}`).catch((e: unknown) => e as Error);
    expect(failureMessage(err)).toMatch(
      /regression has no release in the repository: a drill rolls back to the release before the current one/,
    );
  });

  test('a full drill rolls back to the previous release and forward to the state before it, unattended', async () => {
    const config = env.componentPath('regression', 'config');
    const models = env.componentPath('regression', 'models');
    writeFileSync(path.join(config, 'app.yaml'), 'release: v1\n');
    writeFileSync(path.join(models, 'weights.bin'), 'v1 weights\n');
    // The same in both releases: the drill leaves it alone, back and forward.
    writeFileSync(path.join(env.componentPath('regression', 'assets'), 'logo.svg'), '<svg/>\n');
    await env.snapshot('regression', { version: 'v1' });
    writeFileSync(path.join(config, 'app.yaml'), 'release: v2\n');
    writeFileSync(path.join(models, 'weights.bin'), 'v2 weights\n');
    await env.snapshot('regression', { version: 'v2' });
    // Changed since the release: the drill must put this back too, not just v2.
    appendFileSync(path.join(config, 'app.yaml'), 'tuned: true\n');
    const before = { config: readTree(config), models: readTree(models) };

    const result: DrillResult = await runDrill('full', `drill-regression-full-${Date.now()}`);
    expect(result).toMatchObject({
      outcome: 'passed',
      environment: 'regression',
      scope: 'full',
      components: ['config', 'models', 'assets'],
      current: 'v2',
      previous: 'v1',
      rollbackState: 'completed',
      forwardState: 'completed',
      metGoal: true,
    });
    expect(result.rollbackMs).toBeLessThanOrEqual(result.mttrGoalMs);
    expect({ config: readTree(config), models: readTree(models) }).toEqual(before);
    const forward = await env.client.rollbackView(result.forwardRunId!);
    expect(forward.status.components).toEqual(['config', 'models']);

    // The drill's rollbacks are rollbacks: approved by the drills section, recorded with trigger drill.
    const back = await env.client.rollbackView(result.rollbackRunId);
    expect(back.status.approvals.map((a) => a.user)).toEqual(['trigger rule drills']);
    expect(back.status.target).toEqual({ kind: 'version', version: 'v1' });
    const store = await env.projectStore();
    const runs = await store.query<{ trigger: string; state: string }>(
      "SELECT trigger, state FROM rollback_runs WHERE run_id LIKE 'drill-%' ORDER BY ended_seq",
    );
    expect(runs).toEqual([
      { trigger: 'drill', state: 'completed' },
      { trigger: 'drill', state: 'completed' },
    ]);

    const metrics = createControlMetrics({
      manifest: env.loaded.manifest,
      projectStore: () => env.projectStore(),
      client: env.temporal,
      snapshots: env.store,
      logger: createLogger('drill-test', 'silent'),
    });
    const { body } = await renderMetrics([metrics]);
    expect(body).toMatch(/^rewind_drills_total\{environment="regression",scope="full",outcome="passed"\} 1$/m);
    expect(body).toMatch(/^rewind_drill_goal_seconds\{environment="regression"\} 900$/m);
    expect(body).toMatch(/^rewind_rollbacks_total\{environment="regression",trigger="drill",result="completed"\} 2$/m);

    const listed = await runCli(['drill', 'list', '--json'], {
      env: { REWIND_MANIFEST: env.manifestFile, DATABASE_URL: await env.projectStoreUrl() },
    });
    expect(listed.stderr).toBe('');
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({
        id: result.drillId,
        outcome: 'passed',
        from_version: 'v2',
        to_version: 'v1',
        met_goal: true,
      }),
    ]);
  }, 180_000);

  test('partial drills take the components in turn', async () => {
    const first = await runDrill('partial', `drill-regression-partial-a-${Date.now()}`);
    // The second through the CLI, as an operator runs one.
    const cli = await runCli(['drill', 'run', '--scope', 'partial', '--json'], {
      env: { REWIND_MANIFEST: env.manifestFile },
      timeoutMs: 120_000,
    });
    expect(cli.code).toBe(0);
    const second = JSON.parse(cli.stdout) as DrillResult;
    expect([first.components, second.components]).toEqual([['config'], ['models']]);
    expect([first.outcome, second.outcome]).toEqual(['passed', 'passed']);
    // The third takes assets, the same in both releases: nothing to roll forward.
    const third = await runDrill('partial', `drill-regression-partial-c-${Date.now()}`);
    expect(third).toMatchObject({
      components: ['assets'],
      outcome: 'passed',
      reason: 'nothing to roll forward: assets did not differ from v1',
    });
    expect(third.forwardRunId).toBeUndefined();
    const bad = await runCli(['drill', 'run', '--scope', 'weekly'], { env: { REWIND_MANIFEST: env.manifestFile } });
    expect(bad.stderr).toMatch(/--scope.*weekly.*partial, full/);
  }, 180_000);
});
