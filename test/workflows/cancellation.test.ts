// Cancelling a rollback through the client in each phase, on stub activities that hold the
// phase until they are cancelled. Before execute nothing was changed, so the run ends cancelled;
// from execute on, every step that started is put back from the safety snapshot, newest first.
import type { Phase } from '../../src/domain/rollback';
import { eventually } from '../support/harness';
import {
  createWorkflowTestEnv,
  untilCancelled,
  type WorkflowTestEnv,
  type WorkflowTestOverrides,
} from '../support/workflow-test-worker';

interface PhaseCase {
  phase: Phase;
  overrides: WorkflowTestOverrides;
  /** Brings the run into the phase and resolves once it is held there. */
  reach: (e: WorkflowTestEnv, id: string) => Promise<unknown>;
}

const called = (e: WorkflowTestEnv, activity: string, count: number) =>
  eventually(() => e.calls(activity).length >= count, `${count} call(s) of ${activity}`, 15_000);

const beforeExecute: PhaseCase[] = [
  {
    phase: 'decide',
    overrides: { control: { resolveRollback: () => untilCancelled() } },
    reach: (e) => called(e, 'resolveRollback', 1),
  },
  {
    phase: 'prepare',
    // The safety cross-section and the read-back of the target never finish.
    overrides: { agent: { snapshotComponent: () => untilCancelled(), stageComponent: () => untilCancelled() } },
    reach: (e) => called(e, 'stageComponent', 2),
  },
  {
    phase: 'approval',
    overrides: {},
    reach: (e, id) => e.waitFor(id, (s) => s.state === 'awaiting-approval'),
  },
];

const fromExecute: PhaseCase[] = [
  {
    phase: 'execute',
    // config is restored; models (which depends on it) is still being restored.
    overrides: {
      agent: (stubs) => ({
        restoreComponent: (req) =>
          req.purpose === 'rollback' && req.component === 'models' ? untilCancelled() : stubs.restoreComponent(req),
      }),
    },
    reach: async (e, id) => {
      await e.waitFor(id, (s) => s.state === 'awaiting-approval');
      await e.client.decide(id, 'approve', { user: 'bob' });
      await eventually(
        () => e.restores('rollback').some((r) => r.component === 'models'),
        'the models restore to start',
        15_000,
      );
    },
  },
  {
    phase: 'verify',
    overrides: { agent: { verifyComponent: () => untilCancelled() } },
    reach: async (e, id) => {
      await e.waitFor(id, (s) => s.state === 'awaiting-approval');
      await e.client.decide(id, 'approve', { user: 'bob' });
      await called(e, 'verifyComponent', 2);
    },
  },
];

describe('cancellation in each phase (workflow with stub activities)', () => {
  let env: WorkflowTestEnv | undefined;
  afterEach(async () => {
    await env?.teardown();
    env = undefined;
  });

  /** Starts a run, holds it in the case's phase, cancels it through the client and returns its end. */
  const cancelIn = async ({ phase, overrides, reach }: PhaseCase) => {
    const e = (env = await createWorkflowTestEnv(overrides));
    const id = await e.start({ requester: 'alice' });
    await reach(e, id);
    expect((await e.client.rollbackView(id)).status.phase).toBe(phase);
    const outcome = await e.client.cancel(id, { user: 'bob', reason: 'wrong target' });
    expect(outcome).toMatchObject({ accepted: true, phase });
    const view = await e.finalStatus(id);
    return { e, id, view };
  };

  it.each(beforeExecute)('stops in $phase as cancelled, saying nothing was changed', async (c) => {
    const { e, view } = await cancelIn(c);
    expect(view.execution).toBe('CANCELLED');
    expect(view.status.state).toBe('cancelled');
    expect(view.status.cancellation).toMatchObject({ user: 'bob', reason: 'wrong target', phase: c.phase });
    expect(view.status.cause).toBe(`cancelled by bob during ${c.phase}: wrong target; nothing was changed`);
    expect(view.status.phases.execute).toBeUndefined();
    expect(e.restores()).toEqual([]);
  });

  it.each(fromExecute)('compensates in $phase, putting back every started step newest first', async (c) => {
    const { e, view } = await cancelIn(c);
    expect(view.execution).toBe('CANCELLED');
    expect(view.status.state).toBe('compensated');
    expect(view.status.cancellation).toMatchObject({ user: 'bob', reason: 'wrong target', phase: c.phase });
    expect(view.status.cause).toBe(`cancelled by bob during ${c.phase}: wrong target`);
    expect(e.restores('rollback').map((r) => r.component)).toEqual(['config', 'models']);
    // Compensation: newest step first, each back to its safety snapshot, naming the step it undoes.
    const compensations = e.restores('compensation');
    expect(compensations.map((r) => r.component)).toEqual(['models', 'config']);
    const safety = view.status.plan!.components;
    for (const r of compensations) {
      expect(r.snapshotId).toBe(safety.find((p) => p.component === r.component)!.safetySnapshotId);
      expect(r.compensates?.idempotencyKey).toBe(`${view.status.workflowId}/rollback/${r.component}`);
    }
    expect(Object.values(view.status.steps).map((s) => [s.component, s.state])).toEqual([
      ['config', 'compensated'],
      ['models', 'compensated'],
    ]);
    // The environment is free again: the lock went with the run.
    const next = await e.start();
    await e.waitFor(next, (s) => s.state === 'awaiting-approval');
  });

  it('refuses to cancel a run that already ended', async () => {
    const e = (env = await createWorkflowTestEnv());
    const id = await e.start();
    await e.waitFor(id, (s) => s.state === 'awaiting-approval');
    await e.client.decide(id, 'reject', { user: 'bob' });
    expect((await e.finalStatus(id)).status.state).toBe('rejected');
    await expect(e.client.cancel(id, { user: 'bob' })).rejects.toThrow(
      `${id} already ended (rejected); there is nothing to cancel`,
    );
  });
});
