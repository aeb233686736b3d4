// The approval gate: who may approve, what a rejection or a timeout does, and that a repeated
// request counts once. Every test checks that nothing changed unless a rollback was approved.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTestEnv, readTree, type TestEnv } from './support/harness';

describe('approval gate', () => {
  let env: TestEnv;
  let config: string;

  beforeAll(async () => {
    env = await createTestEnv({
      environments: { production: { config: {} }, regression: { config: {} } },
      approvers: ['alice', 'bob', 'carol'],
    });
    config = env.componentPath('production', 'config');
    writeFileSync(path.join(config, 'app.yaml'), 'release: v1\n');
    writeFileSync(path.join(env.componentPath('regression', 'config'), 'app.yaml'), 'release: v1\n');
    await env.snapshot('production', { version: 'v1' });
    await env.snapshot('regression', { version: 'v1' });
    writeFileSync(path.join(config, 'app.yaml'), 'release: v2\n');
    writeFileSync(path.join(env.componentPath('regression', 'config'), 'app.yaml'), 'release: v2\n');
  });
  afterAll(() => env.teardown());

  const startAndAwait = async (environment = 'production', requester = 'alice') => {
    const id = await env.startRollback({ environment, target: { kind: 'version', version: 'v1' }, requester });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    return id;
  };

  it('ends as rejected and changes nothing when an approver rejects', async () => {
    const before = readTree(config);
    const id = await startAndAwait();
    const outcome = await env.client.decide(id, 'reject', { user: 'bob', comment: 'not during the sale' });
    expect(outcome.accepted).toBe(true);
    const { status, execution } = await env.finalStatus(id);
    expect(execution).toBe('COMPLETED');
    expect(status.state).toBe('rejected');
    expect(status.rejection).toMatchObject({ user: 'bob', comment: 'not during the sale' });
    expect(status.phases.execute).toBeUndefined();
    expect(readTree(config)).toEqual(before);
  });

  it('refuses self-approval in production and approvals from non-approvers', async () => {
    const id = await startAndAwait('production', 'alice');
    const self = await env.client.decide(id, 'approve', { user: 'alice' });
    expect(self).toMatchObject({
      accepted: false,
      reason: 'alice requested this rollback and cannot approve it in production',
    });
    const stranger = await env.client.decide(id, 'approve', { user: 'mallory' });
    expect(stranger.accepted).toBe(false);
    expect(stranger.reason).toMatch(/mallory is not an approver/);
    const view = await env.client.rollbackView(id);
    expect(view.status.state).toBe('awaiting-approval');
    expect(view.status.approvals).toEqual([]);
    expect(view.status.refusals.map((r) => r.user)).toEqual(['alice', 'mallory']);
    await env.client.decide(id, 'reject', { user: 'alice', comment: 'withdrawn' });
    expect((await env.finalStatus(id)).status.state).toBe('rejected');
  });

  it('lets the requester approve their own rollback outside production', async () => {
    const id = await startAndAwait('regression', 'alice');
    expect((await env.client.decide(id, 'approve', { user: 'alice' })).accepted).toBe(true);
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('completed');
    expect(readTree(env.componentPath('regression', 'config'))['app.yaml']?.content).toBe(
      Buffer.from('release: v1\n').toString('base64'),
    );
  });

  it('refuses a second rollback of an environment while one is running', async () => {
    const first = await startAndAwait();
    const message = `rollback ${first} is already running on production; wait for it or cancel it first`;
    // The client refuses before starting anything ...
    await expect(
      env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } }),
    ).rejects.toThrow(message);
    // ... and a run that slips past it (started directly, or in a race) fails in decide.
    const handle = await env.temporal.workflow.start('rollbackWorkflow', {
      taskQueue: env.loaded.manifest.temporal.taskQueue,
      workflowId: `rollback-production-direct-${Date.now()}`,
      args: [
        {
          environment: 'production',
          target: { kind: 'version', version: 'v1' },
          requester: 'carol',
          trigger: 'manual',
          dryRun: false,
        },
      ],
    });
    const { status } = await env.finalStatus(handle.workflowId);
    expect(status.state).toBe('failed');
    expect(status.cause).toBe(`decide failed: ${message}`);
    // A dry run changes nothing, so it may run alongside.
    const dry = await env.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'v1' },
      dryRun: true,
    });
    expect((await env.finalStatus(dry)).status.state).toBe('completed');
    await env.client.decide(first, 'reject', { user: 'bob' });
    expect((await env.finalStatus(first)).status.state).toBe('rejected');
  });

  it('lets exactly one of two rollbacks started at the same moment through, and frees the environment when it ends', async () => {
    // Two alerts firing together: both runs start before either could appear in a list of
    // running runs; the environment lock (a child workflow with a fixed id) admits one.
    const start = (n: number) =>
      env.temporal.workflow.start('rollbackWorkflow', {
        taskQueue: env.loaded.manifest.temporal.taskQueue,
        workflowId: `rollback-production-race-${n}-${Date.now()}`,
        args: [
          {
            environment: 'production',
            target: { kind: 'version', version: 'v1' },
            requester: 'carol',
            trigger: 'alert',
            dryRun: false,
          },
        ],
      });
    const handles = await Promise.all([start(1), start(2)]);
    const ids = handles.map((h) => h.workflowId);
    const settled = await Promise.all(
      ids.map((id) =>
        env.client.waitForRollback(id, (s) => s.state === 'awaiting-approval', { timeoutMs: 60_000, intervalMs: 100 }),
      ),
    );
    const states = settled.map((r) => r.status.state).sort();
    expect(states).toEqual(['awaiting-approval', 'failed']);
    const winner = ids[settled.findIndex((r) => r.status.state === 'awaiting-approval')]!;
    const loser = settled.find((r) => r.status.state === 'failed')!;
    expect(loser.status.cause).toBe(
      `decide failed: rollback ${winner} is already running on production; wait for it or cancel it first`,
    );
    // The loser changed nothing: it took no safety snapshot.
    expect(loser.status.phases.prepare).toBeUndefined();

    await env.client.decide(winner, 'reject', { user: 'bob' });
    expect((await env.finalStatus(winner)).status.state).toBe('rejected');
    // The lock went with it: the next rollback is admitted at once.
    const next = await startAndAwait();
    await env.client.decide(next, 'reject', { user: 'bob' });
    expect((await env.finalStatus(next)).status.state).toBe('rejected');
  });
});

describe('approval with two required approvers', () => {
  let env: TestEnv;

  beforeAll(async () => {
    env = await createTestEnv({ environments: { production: { config: {} } }, policy: { requiredApprovals: 2 } });
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v1\n');
    await env.snapshot('production', { version: 'v1' });
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v2\n');
  });
  afterAll(() => env.teardown());

  it('counts a duplicated approve once, by request id and by user', async () => {
    const id = await env.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'v1' },
      requester: 'alice',
    });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');

    // A double-clicked button: the same request twice.
    const [first, again] = await Promise.all([
      env.client.decide(id, 'approve', { user: 'bob', requestId: 'slack-click-1' }),
      env.client.decide(id, 'approve', { user: 'bob', requestId: 'slack-click-1' }),
    ]);
    expect(first.accepted).toBe(true);
    expect(again.accepted).toBe(true);
    // The same person again, with a new request.
    const secondTime = await env.client.decide(id, 'approve', { user: 'bob' });
    expect(secondTime).toMatchObject({ accepted: false, reason: 'bob has already approved' });

    let view = await env.client.rollbackView(id);
    expect(view.status.state).toBe('awaiting-approval');
    expect(view.status.approvals.map((a) => a.user)).toEqual(['bob']);

    expect((await env.client.decide(id, 'approve', { user: 'carol' })).accepted).toBe(true);
    view = await env.finalStatus(id);
    expect(view.status.state).toBe('completed');
    expect(view.status.approvals.map((a) => a.user)).toEqual(['bob', 'carol']);
    // A retried request, even after the run ended, gets its first answer.
    expect(await env.client.decide(id, 'approve', { user: 'bob', requestId: 'slack-click-1' })).toMatchObject({
      accepted: true,
    });
  });
});

describe('approval timeout', () => {
  let env: TestEnv;

  beforeAll(async () => {
    env = await createTestEnv({ environments: { production: { config: {} } }, policy: { approvalTimeout: '3s' } });
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v1\n');
    await env.snapshot('production', { version: 'v1' });
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'v2\n');
  });
  afterAll(() => env.teardown());

  it('ends as timed-out after policy.approvalTimeout and changes nothing', async () => {
    const before = readTree(env.componentPath('production', 'config'));
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('timed-out');
    expect(status.phases.approval!.durationMs).toBeGreaterThanOrEqual(3_000);
    expect(status.phases.execute).toBeUndefined();
    expect(readTree(env.componentPath('production', 'config'))).toEqual(before);
    const late = await env.client.decide(id, 'approve', { user: 'bob' });
    expect(late).toMatchObject({ accepted: false, reason: 'the rollback already ended (timed-out)' });
  });
});
