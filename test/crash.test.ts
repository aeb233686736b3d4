// A crash of the agent process half-way through execute: the rollback finishes on a new agent
// and nothing is applied twice. The agent is a real separate process, killed with SIGKILL.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { copyTree, createTestEnv, eventually, readTree, runCli, writePickle, type TestEnv } from './support/harness';

describe('agent killed during execute', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ externalAgents: ['production'], policy: { heartbeatTimeout: '3s' } });
  });
  afterAll(() => env.teardown());

  it('completes on a new agent, and the step that was already applied is not applied again', async () => {
    // The first agent pauses right after restoring models, before it can report the step done.
    const first = env.spawnAgent('production', { REWIND_FAULTS: 'after-restore:models=pause:10m' });
    const config = env.componentPath('production', 'config');
    const models = env.componentPath('production', 'models');
    writeFileSync(path.join(config, 'app.yaml'), 'release: v1\n');
    writePickle(path.join(models, 'classifier.pkl'), { weights: [1, 2, 3] });
    const v1Copy = path.join(env.dir, 'v1');
    copyTree(path.join(env.dir, 'envs', 'production'), v1Copy);
    await env.snapshot('production', { version: 'v1' });
    writeFileSync(path.join(config, 'app.yaml'), 'release: v2\n');
    writePickle(path.join(models, 'classifier.pkl'), { weights: [7, 8, 9] });

    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob' });
    await eventually(async () => {
      const view = await env.client.rollbackView(id);
      return (
        view.live.some((l) => l.component === 'models' && l.progress?.stage === 'paused by REWIND_FAULTS') || undefined
      );
    }, 'the models step to be restored and paused');
    expect(readTree(models)).toEqual(readTree(path.join(v1Copy, 'models')));

    first.kill('SIGKILL');
    const exited = await new Promise<NodeJS.Signals | null>((resolve) =>
      first.once('exit', (_code, signal) => resolve(signal)),
    );
    expect(exited).toBe('SIGKILL');
    env.spawnAgent('production');

    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('completed');
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(readTree(v1Copy));
    // The retried step found models already at the target and wrote nothing.
    expect(status.steps.models!.outcome).toMatchObject({ alreadyAtTarget: true, bytesWritten: 0 });
    expect(status.steps.config!.outcome!.alreadyAtTarget).toBe(false);

    const history = await env.temporal.workflow.getHandle(id).fetchHistory();
    const scheduled = new Map<string, string>();
    const starts: Record<string, number[]> = {};
    for (const e of history.events!) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s?.activityId) scheduled.set(String(e.eventId), s.activityId);
      const started = e.activityTaskStartedEventAttributes;
      if (started) {
        const activityId = scheduled.get(String(started.scheduledEventId))!;
        (starts[activityId] ??= []).push(Number(started.attempt));
      }
    }
    // Temporal records only the final attempt's start: config ran once, models on its second attempt.
    expect(starts['restore/config']).toEqual([1]);
    expect(starts['restore/models']).toEqual([2]);
  });
});

describe('no agent running', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ environments: { production: { config: {} } }, externalAgents: ['production'] });
  });
  afterAll(() => env.teardown());

  it('warns, waits, and completes once the agent starts', async () => {
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v1\n');
    const started = await runCli([
      '--manifest',
      env.manifestFile,
      'snapshot',
      'create',
      '--env',
      'production',
      '--version',
      'v1',
      '--json',
    ]);
    expect(started.code).toBe(0);
    expect(started.stderr).toContain(
      'warning: no agent serves production right now; the run will wait until `rewind agent --env production` starts',
    );
    const { workflowId } = JSON.parse(started.stdout) as { workflowId: string };
    const describe = () => env.temporal.workflow.getHandle(workflowId).describe();
    await eventually(
      async () => ((await describe()).raw.pendingActivities ?? []).length > 0 || undefined,
      'the snapshot step to be scheduled',
    );
    expect((await describe()).status.name).toBe('RUNNING');

    env.spawnAgent('production');
    const result = await env.client.snapshotResult(workflowId);
    expect(result.components.config!.fingerprint.details).toMatchObject({ kind: 'files', files: 1 });
  });
});
