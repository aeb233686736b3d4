// One rollback per environment at a time, on stub activities: two runs started at the same
// moment (two alerts firing together) race for the environment's lock workflow, and exactly
// one wins; the loser ends in decide, having changed nothing.
import { lockWorkflowId } from '../../src/domain/rollback';
import type { SnapshotComponentRequest } from '../../src/components/driver';
import { runningRollbacks } from '../../src/platform/rollback-runs';
import { eventually } from '../support/harness';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../support/workflow-test-worker';

describe('environment lock (workflow with stub activities)', () => {
  let env: WorkflowTestEnv | undefined;
  afterEach(async () => {
    await env?.teardown();
    env = undefined;
  });

  const awaitingOrEnded = (e: WorkflowTestEnv, id: string) => e.waitFor(id, (s) => s.state === 'awaiting-approval');

  it('lets exactly one of two rollbacks started at the same moment through, and frees the environment when it ends', async () => {
    const e = (env = await createWorkflowTestEnv());
    const ids = await Promise.all([e.startDirect(), e.startDirect()]);
    const views = await Promise.all(ids.map((id) => awaitingOrEnded(e, id)));
    expect(views.map((v) => v.status.state).sort()).toEqual(['awaiting-approval', 'failed']);

    const winner = ids[views.findIndex((v) => v.status.state === 'awaiting-approval')]!;
    const loser = await e.finalStatus(ids.find((id) => id !== winner)!);
    expect(loser.status.cause).toContain('is already running on production');
    expect(loser.status.cause).toBe(
      `decide failed: rollback ${winner} is already running on production; wait for it or cancel it first`,
    );
    expect(loser.execution).toBe('FAILED');
    // The loser changed nothing: it took no safety snapshot and made no plan.
    expect(loser.status.phases.prepare).toBeUndefined();
    const snapshotsBy = new Set(
      e.calls('snapshotComponent').map((c) => (c.args[0] as SnapshotComponentRequest).workflowId),
    );
    expect(snapshotsBy).toEqual(new Set([winner]));

    await e.client.decide(winner, 'reject', { user: 'bob' });
    expect((await e.finalStatus(winner)).status.state).toBe('rejected');
    // The lock went with the winner: the next rollback is admitted at once.
    const next = await e.start();
    expect((await awaitingOrEnded(e, next)).status.state).toBe('awaiting-approval');
  });

  it('names the lock workflow when the rollback holding it cannot be found', async () => {
    const e = (env = await createWorkflowTestEnv({ control: { lockHolder: () => Promise.resolve(undefined) } }));
    const first = await e.start();
    await awaitingOrEnded(e, first);
    const second = await e.startDirect();
    const { status } = await e.finalStatus(second);
    expect(status.state).toBe('failed');
    expect(status.cause).toBe(
      `decide failed: rollback (lock workflow ${lockWorkflowId(e.agentTaskQueue)}) is already running on production; wait for it or cancel it first`,
    );
    // A holder that vanished may have just released the lock: the run asks three times.
    expect(e.calls('lockHolder')).toHaveLength(3);
  });

  it('refuses, in the client, a second rollback of an environment while one is running', async () => {
    const e = (env = await createWorkflowTestEnv());
    const first = await e.start();
    await awaitingOrEnded(e, first);
    await eventually(
      async () => (await runningRollbacks(e.temporal, e.taskQueue, 'production')).includes(first),
      `${first} in visibility`,
      10_000,
    );
    await expect(e.start({ requester: 'carol' })).rejects.toThrow(
      `rollback ${first} is already running on production; wait for it or cancel it first`,
    );
    // A dry run changes nothing, so it may run alongside.
    const dry = await e.start({ dryRun: true });
    expect((await e.finalStatus(dry)).status.state).toBe('completed');
    expect(e.restores()).toEqual([]);
  });

  it('completes a rollback whose lock workflow was terminated meanwhile: releasing a lock that is gone is no failure', async () => {
    const e = (env = await createWorkflowTestEnv());
    const id = await e.start();
    await awaitingOrEnded(e, id);
    await e.temporal.workflow.getHandle(lockWorkflowId(e.agentTaskQueue)).terminate('an operator cleared it by hand');
    expect(await e.client.decide(id, 'approve', { user: 'bob' })).toMatchObject({ accepted: true });
    const { status, execution } = await e.finalStatus(id);
    expect(execution).toBe('COMPLETED');
    expect(status.state).toBe('completed');
    expect(status.cause).toBeUndefined();
    expect(e.restores('rollback').map((r) => r.component)).toEqual(['config', 'models']);
  });
});
