// Prepare's order, on stub activities: the target's data is read back before anyone is asked to
// approve, and a target that cannot be read ends the run in prepare as not possible, with nothing
// changed; a new safety snapshot is read back while the approval waits, and execute writes
// nothing until that read-back has succeeded.
import { ApplicationFailure } from '@temporalio/common';
import { renderPlan } from '../../src/client/render';
import { eventually } from '../support/harness';
import { createWorkflowTestEnv, gate, type WorkflowTestEnv } from '../support/workflow-test-worker';

describe('prepare (workflow with stub activities)', () => {
  let env: WorkflowTestEnv | undefined;
  afterEach(async () => {
    await env?.teardown();
    env = undefined;
  });

  it('ends in prepare, nothing changed, when the target data cannot be read, showing it in the plan', async () => {
    const e = (env = await createWorkflowTestEnv({
      agent: (stubs) => ({
        stageComponent: (req) =>
          req.component === 'models'
            ? Promise.resolve({
                readable: false,
                note: 'the target snapshot cannot be read: pack 3f2a… contains 1 errors',
                bytes: 0,
              })
            : stubs.stageComponent(req),
      }),
    }));
    const id = await e.start();
    const { status, execution } = await e.finalStatus(id);
    expect(execution).toBe('FAILED');
    expect(status.state).toBe('failed');
    expect(status.phases.approval).toBeUndefined();
    expect(status.cause).toBe(
      'models: not possible: the target snapshot cannot be read: pack 3f2a… contains 1 errors; choose another target',
    );
    expect(e.restores()).toEqual([]);
    const models = status.plan!.components.find((c) => c.component === 'models')!;
    expect(models.targetCheck).toEqual({
      readable: false,
      note: 'the target snapshot cannot be read: pack 3f2a… contains 1 errors',
    });
    expect(renderPlan(status.plan!)).toContain(
      'target data: NOT POSSIBLE: the target snapshot cannot be read: pack 3f2a… contains 1 errors',
    );
    expect(renderPlan(status.plan!)).toContain('target data: 2 files (2 KiB) read back, checked and staged');
    // What was staged for the run is discarded with it.
    expect(e.calls('discardStaging').map((c) => c.args[0])).toEqual([{ environment: 'production', workflowId: id }]);
  });

  it('waits in execute for the safety read-back, and writes nothing when it fails', async () => {
    const readBack = gate();
    const e = (env = await createWorkflowTestEnv({
      control: (stubs) => ({
        async confirmReadable(snapshots) {
          await readBack.wait();
          if (snapshots.some((s) => s.component === 'models'))
            throw ApplicationFailure.nonRetryable('snapshot 1a2b3c4d of models lists 3 entries, expected 4');
          return stubs.confirmReadable(snapshots);
        },
      }),
    }));
    const id = await e.start();
    // Approval is asked while the safety snapshots are still being stored or read back.
    await e.waitFor(id, (s) => s.state === 'awaiting-approval');
    await eventually(() => readBack.waiting > 0 || undefined, 'the safety read-back to be under way', 10_000);
    expect((await e.client.rollbackView(id)).status.state).toBe('awaiting-approval');
    expect(await e.client.decide(id, 'approve', { user: 'bob' })).toMatchObject({ accepted: true });
    await e.waitFor(id, (s) => s.phase === 'execute');
    expect(e.restores()).toEqual([]);
    readBack.open();
    const { status } = await e.finalStatus(id);
    expect(status.state).toBe('failed');
    expect(status.cause).toBe(
      'the safety snapshot could not be read back, so nothing was changed: snapshot 1a2b3c4d of models lists 3 entries, expected 4',
    );
    expect(e.restores()).toEqual([]);
  });

  it('asks for approval while the safety snapshot is stored, and ends at once, nothing changed, if it fails', async () => {
    const storing = gate();
    const e = (env = await createWorkflowTestEnv({
      agent: (stubs) => ({
        async snapshotComponent(req) {
          if (req.component !== 'models') return stubs.snapshotComponent(req);
          await storing.wait();
          throw ApplicationFailure.nonRetryable('no space left on the repository disk', 'ResticRefused');
        },
      }),
    }));
    const id = await e.start();
    const { status: waiting } = await e.waitFor(id, (s) => s.state === 'awaiting-approval');
    // The files plan was made from the live component; models' safety snapshot is not there yet.
    expect(waiting.plan!.components.find((c) => c.component === 'models')!.safetySnapshotId).toBe('');
    expect(waiting.plan!.components.find((c) => c.component === 'config')!.safetySnapshotId).not.toBe('');
    storing.open();
    const { status } = await e.finalStatus(id);
    expect(status.state).toBe('failed');
    expect(status.cause).toBe(
      'prepare failed: the safety snapshot could not be taken, so nothing was changed: no space left on the repository disk',
    );
    expect(e.restores()).toEqual([]);
  });

  it('stores the safety snapshot before asking for approval when the plan writes more than 64 MiB', async () => {
    const storing = gate();
    const e = (env = await createWorkflowTestEnv({
      agent: (stubs) => ({
        async snapshotComponent(req) {
          if (req.component === 'models') await storing.wait();
          return stubs.snapshotComponent(req);
        },
        async assessComponent(req) {
          const plan = await stubs.assessComponent(req);
          return req.component === 'models' ? { ...plan, bytesToWrite: 65 * 1024 * 1024 } : plan;
        },
      }),
    }));
    const id = await e.start();
    await eventually(() => storing.waiting > 0 || undefined, 'the safety snapshot of models to be under way', 10_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await e.client.rollbackView(id)).status).toMatchObject({ state: 'running', phase: 'prepare' });
    storing.open();
    const { status } = await e.waitFor(id, (s) => s.state === 'awaiting-approval');
    expect(status.plan!.components.every((c) => c.safetySnapshotId !== '')).toBe(true);
    await e.client.cancel(id, { user: 'bob' });
  });
});
