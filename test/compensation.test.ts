// When a step fails for good, fails verification or is cancelled mid-way, compensation puts
// every touched component back from the safety cross-section: the bytes on disk prove it.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { createTestEnv, eventually, readTree, runCli, writePickle, type TestEnv } from './support/harness';

async function prepareV1AndChange(env: TestEnv): Promise<Record<string, unknown>> {
  const config = env.componentPath('production', 'config');
  const models = env.componentPath('production', 'models');
  writeFileSync(path.join(config, 'app.yaml'), 'release: v1\n');
  writePickle(path.join(models, 'classifier.pkl'), { weights: [1, 2, 3] });
  await env.snapshot('production', { version: 'v1' });
  writeFileSync(path.join(config, 'app.yaml'), 'release: v2\n');
  writeFileSync(path.join(config, 'extra.yaml'), 'added in v2\n');
  writePickle(path.join(models, 'classifier.pkl'), { weights: [4, 5, 6] });
  return readTree(path.join(env.dir, 'envs', 'production'));
}

async function approveAndFinish(env: TestEnv, id: string) {
  await env.waitFor(id, (s) => s.state === 'awaiting-approval');
  await env.client.decide(id, 'approve', { user: 'bob' });
  return env.finalStatus(id);
}

describe('a step that fails for good', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ faults: { production: 'before-restore:models=fail' } });
  });
  afterAll(() => env.teardown());

  it('compensates the steps already done and leaves the environment as it was before the rollback', async () => {
    const before = await prepareV1AndChange(env);
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    const { status, execution } = await approveAndFinish(env, id);

    expect(execution).toBe('FAILED');
    expect(status.state).toBe('compensated');
    expect(status.cause).toBe('execute failed: injected fault at before-restore of models');
    expect(status.steps.config).toMatchObject({ state: 'compensated' });
    expect(status.steps.models).toMatchObject({
      state: 'compensated',
      error: 'injected fault at before-restore of models',
    });
    expect(status.phases.compensate?.durationMs).toBeGreaterThanOrEqual(0);
    expect(status.phases.verify).toBeUndefined();
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(before);

    const failure = await env.temporal.workflow
      .getHandle(id)
      .result()
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect((failure as WorkflowFailedError).cause).toMatchObject({ type: 'RollbackCompensated' });
  });
});

describe('a step that fails twice, then succeeds', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ faults: { production: 'before-restore:config=fail-attempts:2' } });
  });
  afterAll(() => env.teardown());

  it('is retried by policy, shows its attempt and last error while it retries, and the rollback completes', async () => {
    await prepareV1AndChange(env);
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob' });
    // What an operator sees while the step waits for its next attempt.
    const retrying = await eventually(
      async () => {
        const shown = await runCli(['--manifest', env.manifestFile, 'rollback', 'status', id]);
        return /\(attempt [23], last: injected fault at before-restore of config \(attempt [12]\)\)/.test(shown.stdout)
          ? shown.stdout
          : undefined;
      },
      'rollback status to show the step retrying',
      20_000,
    );
    expect(retrying).toMatch(/^ {2}config +running +waiting to retry \(attempt/m);
    expect(retrying).not.toMatch(/^ {2}\? /m);
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('completed');
    expect(readTree(env.componentPath('production', 'config'))['app.yaml']?.content).toBe(
      Buffer.from('release: v1\n').toString('base64'),
    );
    const history = await env.temporal.workflow.getHandle(id).fetchHistory();
    const attempts = history
      .events!.filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt);
    expect(Math.max(...attempts.map(Number))).toBe(3);
  });
});

describe('a restore that does not match the target', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ faults: { production: 'after-restore:models=tamper' } });
  });
  afterAll(() => env.teardown());

  it('fails verification, names the file and compensates', async () => {
    const before = await prepareV1AndChange(env);
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    const { status } = await approveAndFinish(env, id);

    expect(status.state).toBe('compensated');
    expect(status.cause).toBe('verify failed: models differs from the target (change classifier.pkl)');
    expect(status.steps.models!.verify).toBe('failed');
    expect(status.steps.config!.verify).toBe('passed');
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(before);
  });
});

describe('cancellation', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ faults: { production: 'after-restore:config=pause:60s' } });
  });
  afterAll(() => env.teardown());

  it('before execute stops cleanly and changes nothing', async () => {
    const before = await prepareV1AndChange(env);
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.cancel(id, { user: 'carol', reason: 'test' });
    const { status, execution } = await env.finalStatus(id);
    expect(execution).toBe('CANCELLED');
    expect(status.state).toBe('cancelled');
    expect(status.cause).toBe('cancelled by carol during approval: test; nothing was changed');
    expect(status.cancellation).toMatchObject({ user: 'carol', reason: 'test', phase: 'approval' });
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(before);
  });

  it('during execute compensates what was restored', async () => {
    const before = readTree(path.join(env.dir, 'envs', 'production'));
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob' });
    // config has been restored and its step is paused by the fault hook: cancel now.
    await eventually(async () => {
      const view = await env.client.rollbackView(id);
      return (
        view.live.some((l) => l.component === 'config' && l.progress?.stage === 'paused by REWIND_FAULTS') || undefined
      );
    }, 'the config step to pause after its restore');
    expect(readTree(env.componentPath('production', 'config'))['app.yaml']?.content).toBe(
      Buffer.from('release: v1\n').toString('base64'),
    );
    await env.client.cancel(id, { user: 'carol', reason: 'test' });

    const { status, execution } = await env.finalStatus(id);
    expect(execution).toBe('CANCELLED');
    expect(status.state).toBe('compensated');
    expect(status.cause).toBe('cancelled by carol during execute: test');
    expect(status.report).toContain(
      '- **Outcome:** cancelled, then compensated: the environment is back at its state before the rollback',
    );
    expect(status.steps.config!.state).toBe('compensated');
    expect(status.steps.models!.state).toBe('not-run');
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(before);
  });
});

describe('a compensation that fails too', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ faults: { production: 'before-restore:models=fail;before-compensate:config=fail' } });
  });
  afterAll(() => env.teardown());

  it('ends as failed, says which component is not back and where its safety copy is', async () => {
    await prepareV1AndChange(env);
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    const { status, execution } = await approveAndFinish(env, id);
    expect(execution).toBe('FAILED');
    expect(status.state).toBe('failed');
    expect(status.steps.config!.state).toBe('compensation-failed');
    expect(status.steps.models!.state).toBe('compensated');
    expect(status.cause).toBe(
      'execute failed: injected fault at before-restore of models; compensation FAILED for config: injected fault at before-compensate of config. ' +
        `Restore by hand from safety cross-section ${status.plan!.safetyCrossSectionId}`,
    );
  });
});
