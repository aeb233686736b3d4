// A step that fails for good, or a verify that finds the component differs from the target, on
// stub activities: the run puts back every step it started, newest first, and says why.
import { ApplicationFailure } from '@temporalio/common';
import { eventually } from '../support/harness';
import {
  createWorkflowTestEnv,
  gate,
  type WorkflowTestEnv,
  type WorkflowTestOverrides,
} from '../support/workflow-test-worker';

describe('failures after approval (workflow with stub activities)', () => {
  let env: WorkflowTestEnv | undefined;
  afterEach(async () => {
    await env?.teardown();
    env = undefined;
  });

  const approvedRun = async (overrides: WorkflowTestOverrides) => {
    const e = (env = await createWorkflowTestEnv(overrides));
    const id = await e.start();
    await e.waitFor(id, (s) => s.state === 'awaiting-approval');
    expect(await e.client.decide(id, 'approve', { user: 'bob' })).toMatchObject({ accepted: true });
    return { e, view: await e.finalStatus(id) };
  };

  it('compensates every started step, newest first, when a restore fails for good', async () => {
    const { e, view } = await approvedRun({
      agent: (stubs) => ({
        restoreComponent: (req) =>
          req.purpose === 'rollback' && req.component === 'models'
            ? Promise.reject(ApplicationFailure.nonRetryable('disk full writing model.pkl', 'ComponentUnavailable'))
            : stubs.restoreComponent(req),
      }),
    });
    expect(view.execution).toBe('FAILED');
    expect(view.status.state).toBe('compensated');
    expect(view.status.cause).toBe('execute failed: disk full writing model.pkl');
    expect(view.status.steps.models).toMatchObject({ state: 'compensated', error: 'disk full writing model.pkl' });
    expect(e.restores('rollback').map((r) => r.component)).toEqual(['config', 'models']);
    expect(e.restores('compensation').map((r) => r.component)).toEqual(['models', 'config']);
    expect(e.calls('verifyComponent')).toEqual([]);
    // The report lists the phases in the order they ran.
    const phaseRows = view.status.report!.split('\n').filter((l) => /^\| [a-z]+ \| \d{4}-/.test(l));
    expect(phaseRows.map((l) => l.split('|')[1]!.trim())).toEqual([
      'decide',
      'prepare',
      'approval',
      'execute',
      'compensate',
      'complete',
    ]);
  });

  it('compensates when verify finds a component differs from the target, saying how', async () => {
    const { e, view } = await approvedRun({
      agent: (stubs) => ({
        async verifyComponent(req) {
          const outcome = await stubs.verifyComponent(req);
          if (req.component !== 'models') return outcome;
          return {
            matches: false,
            actual: { ...req.expected, digest: 'ffff' },
            differences: [{ op: 'change', subject: 'model.pkl' }],
          };
        },
      }),
    });
    expect(view.execution).toBe('FAILED');
    expect(view.status.state).toBe('compensated');
    expect(view.status.cause).toBe('verify failed: models differs from the target (change model.pkl)');
    expect(view.status.steps.config!.verify).toBe('passed');
    expect(view.status.steps.models!.verify).toBe('failed');
    expect(e.restores('compensation').map((r) => r.component)).toEqual(['models', 'config']);
  });

  it('refuses to cancel its compensation, which goes on to put everything back', async () => {
    const compensating = gate();
    const e = (env = await createWorkflowTestEnv({
      agent: (stubs) => ({
        restoreComponent: async (req) => {
          if (req.purpose === 'rollback' && req.component === 'models') {
            throw ApplicationFailure.nonRetryable('disk full writing model.pkl', 'ComponentUnavailable');
          }
          if (req.purpose === 'compensation') await compensating.wait();
          return stubs.restoreComponent(req);
        },
      }),
    }));
    const id = await e.start();
    await e.waitFor(id, (s) => s.state === 'awaiting-approval');
    expect(await e.client.decide(id, 'approve', { user: 'bob' })).toMatchObject({ accepted: true });
    await eventually(() => compensating.waiting > 0 || undefined, 'compensation to start');

    await expect(e.client.cancel(id, { user: 'carol', reason: 'stop it' })).rejects.toThrow(
      `cannot cancel ${id}: compensation is putting back what the rollback changed and cannot be cancelled; wait for it to end`,
    );
    compensating.open();
    const view = await e.finalStatus(id);
    expect(view.status.state).toBe('compensated');
    expect(view.status.cancellation).toBeUndefined();
    expect(e.restores('compensation').map((r) => r.component)).toEqual(['models', 'config']);
  });
});
