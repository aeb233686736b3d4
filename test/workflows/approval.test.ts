// Every approval rule, through the real client and the workflow's Updates, on stub activities:
// who may approve or reject, a destructive plan, two required approvals, decisions that come
// too early or too late, and the approval timeout. A run that is not approved restores nothing.
import type { ComponentPlan } from '../../src/components/core';
import {
  createWorkflowTestEnv,
  gate,
  type WorkflowTestEnv,
  type WorkflowTestOverrides,
} from '../support/workflow-test-worker';

describe('approval rules (workflow with stub activities)', () => {
  let env: WorkflowTestEnv | undefined;
  afterEach(async () => {
    await env?.teardown();
    env = undefined;
  });

  const setUp = async (overrides: WorkflowTestOverrides = {}) => {
    env = await createWorkflowTestEnv(overrides);
    return env;
  };

  /** Starts a rollback requested by `requester` and waits until it awaits approval. */
  const awaitingApproval = async (e: WorkflowTestEnv, over: Record<string, unknown> = {}) => {
    const id = await e.start(over);
    await e.waitFor(id, (s) => s.state === 'awaiting-approval');
    return id;
  };

  it('refuses an approval from a non-approver, saying who may approve', async () => {
    const e = await setUp();
    const id = await awaitingApproval(e);
    const outcome = await e.client.decide(id, 'approve', { user: 'mallory' });
    expect(outcome).toMatchObject({
      accepted: false,
      reason: 'mallory is not an approver (approvers: alice, bob, carol)',
      state: 'awaiting-approval',
      phase: 'approval',
      approvals: 0,
    });
    const { status } = await e.client.rollbackView(id);
    expect(status.state).toBe('awaiting-approval');
    expect(status.approvals).toEqual([]);
    expect(status.refusals).toEqual([
      expect.objectContaining({ user: 'mallory', action: 'approve', reason: outcome.reason }),
    ]);
    expect(e.restores()).toEqual([]);
  });

  it('refuses the requester approving their own rollback in production', async () => {
    const e = await setUp();
    const id = await awaitingApproval(e, { requester: 'alice' });
    const outcome = await e.client.decide(id, 'approve', { user: 'alice' });
    expect(outcome).toMatchObject({
      accepted: false,
      reason: 'alice requested this rollback and cannot approve it in production',
    });
    const { status } = await e.client.rollbackView(id);
    expect(status.requesterMayApprove).toBe(false);
    expect(status.approvals).toEqual([]);
    expect(status.state).toBe('awaiting-approval');
  });

  it('lets the requester approve their own rollback where self-approval is allowed', async () => {
    const e = await setUp({ policy: { allowSelfApproval: true } });
    const id = await awaitingApproval(e, { requester: 'alice' });
    expect(await e.client.decide(id, 'approve', { user: 'alice' })).toMatchObject({ accepted: true, approvals: 1 });
    const { status, execution } = await e.finalStatus(id);
    expect(execution).toBe('COMPLETED');
    expect(status.state).toBe('completed');
    expect(status.approvals.map((a) => a.user)).toEqual(['alice']);
    expect(e.restores('rollback').map((r) => r.component)).toEqual(['config', 'models']);
  });

  it('refuses a second approval by the same approver', async () => {
    const e = await setUp({ policy: { requiredApprovals: 2 } });
    const id = await awaitingApproval(e);
    expect(await e.client.decide(id, 'approve', { user: 'bob' })).toMatchObject({
      accepted: true,
      approvals: 1,
      requiredApprovals: 2,
    });
    const again = await e.client.decide(id, 'approve', { user: 'bob' });
    expect(again).toMatchObject({ accepted: false, reason: 'bob has already approved', approvals: 1 });
    const { status } = await e.client.rollbackView(id);
    expect(status.state).toBe('awaiting-approval');
    expect(status.approvals.map((a) => a.user)).toEqual(['bob']);
    expect(e.restores()).toEqual([]);
  });

  it('keeps waiting after the first of two required approvals and runs after the second', async () => {
    const e = await setUp({ policy: { requiredApprovals: 2 } });
    const id = await awaitingApproval(e);
    const first = await e.client.decide(id, 'approve', { user: 'bob' });
    expect(first).toMatchObject({ accepted: true, state: 'awaiting-approval', approvals: 1, requiredApprovals: 2 });
    expect((await e.client.rollbackView(id)).status.state).toBe('awaiting-approval');
    expect(e.restores()).toEqual([]);

    expect(await e.client.decide(id, 'approve', { user: 'carol' })).toMatchObject({
      accepted: true,
      approvals: 2,
      state: 'running',
      phase: 'execute',
    });
    const { status } = await e.finalStatus(id);
    expect(status.state).toBe('completed');
    expect(status.approvals.map((a) => a.user)).toEqual(['bob', 'carol']);
    expect(e.restores('rollback').map((r) => r.component)).toEqual(['config', 'models']);
    expect(Object.values(status.steps).map((s) => [s.component, s.state, s.verify])).toEqual([
      ['config', 'done', 'passed'],
      ['models', 'done', 'passed'],
    ]);
  });

  /** The models component's plan restores over a dropped column: it loses data. */
  const destructive: WorkflowTestOverrides = {
    agent: (stubs) => ({
      async assessComponent(req): Promise<ComponentPlan> {
        const plan = await stubs.assessComponent(req);
        if (req.component !== 'models') return plan;
        return {
          ...plan,
          strategy: 'restore',
          destructive: true,
          impact: [
            {
              strategy: 'restore',
              available: true,
              destructive: true,
              losses: ['column public.orders.total (1,204 rows)'],
            },
          ],
        };
      },
    }),
  };

  describe('a destructive plan', () => {
    it('is refused without acceptDataLoss, naming the loss, and accepted with it', async () => {
      const e = await setUp(destructive);
      const id = await awaitingApproval(e);
      expect((await e.client.rollbackView(id)).status.plan?.destructive).toBe(true);
      const without = await e.client.decide(id, 'approve', { user: 'bob' });
      expect(without).toMatchObject({
        accepted: false,
        reason:
          'this plan loses data (models: column public.orders.total (1,204 rows)); approve with --accept-data-loss to accept that',
      });
      expect(e.restores()).toEqual([]);
      expect(await e.client.decide(id, 'approve', { user: 'bob', acceptDataLoss: true })).toMatchObject({
        accepted: true,
      });
      const { status } = await e.finalStatus(id);
      expect(status.state).toBe('completed');
      expect(status.approvals).toEqual([expect.objectContaining({ user: 'bob', acceptDataLoss: true })]);
    });

    it('needs no flag on the approval when the requester accepted the loss up front', async () => {
      const e = await setUp(destructive);
      const id = await awaitingApproval(e, { acceptDataLoss: true });
      expect(await e.client.decide(id, 'approve', { user: 'bob' })).toMatchObject({ accepted: true });
      expect((await e.finalStatus(id)).status.state).toBe('completed');
    });
  });

  describe('a trigger rule that approves its own runs (triggers.rules[].autoApprove)', () => {
    const ruled = (acceptDataLoss: boolean, agent?: WorkflowTestOverrides['agent']): WorkflowTestOverrides => ({
      control: (stubs) => ({
        async resolveRollback(req) {
          return { ...(await stubs.resolveRollback(req)), autoApproval: { rule: 'canary', acceptDataLoss } };
        },
      }),
      ...(agent ? { agent } : {}),
    });

    it('executes without waiting for anyone, the rule recorded as the approver', async () => {
      const e = await setUp(ruled(false));
      const id = await e.start({ requester: 'alertmanager', triggerRule: 'canary' });
      const { status } = await e.finalStatus(id);
      expect(status.state).toBe('completed');
      expect(status.approvals).toEqual([expect.objectContaining({ user: 'trigger rule canary' })]);
      expect(status.autoApproval).toMatchObject({ rule: 'canary', applied: true });
      expect(status.approvalDeadline).toBeUndefined();
      expect(
        e
          .restores('rollback')
          .map((r) => r.component)
          .sort(),
      ).toEqual(['config', 'models']);
    });

    it('still waits for a human when the plan loses data and the rule does not accept that', async () => {
      const e = await setUp(ruled(false, destructive.agent));
      const id = await awaitingApproval(e, { requester: 'alertmanager' });
      const waiting = (await e.client.rollbackView(id)).status;
      expect(waiting.approvals).toEqual([]);
      expect(waiting.autoApproval).toMatchObject({
        rule: 'canary',
        applied: false,
        reason: expect.stringMatching(/the plan loses data and trigger rule canary does not accept that/),
      });
      expect(e.restores()).toEqual([]);
      expect(await e.client.decide(id, 'approve', { user: 'bob', acceptDataLoss: true })).toMatchObject({
        accepted: true,
      });
      expect((await e.finalStatus(id)).status.approvals.map((a) => a.user)).toEqual(['bob']);
    });

    it('approves a plan that loses data when the rule accepts that too', async () => {
      const e = await setUp(ruled(true, destructive.agent));
      const id = await e.start({ requester: 'alertmanager' });
      const { status } = await e.finalStatus(id);
      expect(status.state).toBe('completed');
      expect(status.approvals).toEqual([
        expect.objectContaining({ user: 'trigger rule canary', acceptDataLoss: true }),
      ]);
    });
  });

  it.each([
    ['the requester', 'alice'],
    ['an approver', 'bob'],
  ])('ends as rejected and restores nothing when %s rejects', async (_who, user) => {
    const e = await setUp();
    const id = await awaitingApproval(e, { requester: 'alice' });
    expect(await e.client.decide(id, 'reject', { user, comment: 'not during the sale' })).toMatchObject({
      accepted: true,
      state: 'rejected',
      phase: 'complete',
    });
    const { status, execution } = await e.finalStatus(id);
    expect(execution).toBe('COMPLETED');
    expect(status.state).toBe('rejected');
    expect(status.rejection).toMatchObject({ user, comment: 'not during the sale' });
    expect(status.phases.execute).toBeUndefined();
    expect(e.restores()).toEqual([]);
  });

  it('refuses a rejection from someone who is neither an approver nor the requester', async () => {
    const e = await setUp();
    const id = await awaitingApproval(e);
    expect(await e.client.decide(id, 'reject', { user: 'mallory' })).toMatchObject({
      accepted: false,
      reason: 'mallory is neither an approver nor the requester',
    });
    const { status } = await e.client.rollbackView(id);
    expect(status.state).toBe('awaiting-approval');
    expect(status.rejection).toBeUndefined();
  });

  it('refuses an approval before the plan is ready, in the validator, recording no Update in history', async () => {
    const planning = gate();
    const e = await setUp({
      agent: (stubs) => ({
        async assessComponent(req) {
          await planning.wait();
          return stubs.assessComponent(req);
        },
      }),
    });
    const id = await e.start();
    await e.waitFor(id, (s) => s.phase === 'prepare' && planning.waiting === 2);

    const early = await e.client.decide(id, 'approve', { user: 'bob' });
    expect(early).toMatchObject({
      accepted: false,
      reason: 'the plan is not ready yet; approve once the rollback awaits approval',
      phase: 'prepare',
    });
    expect((await e.historyEvents(id)).filter((t) => t.startsWith('WorkflowExecutionUpdate'))).toEqual([]);
    expect((await e.client.rollbackView(id)).status).toMatchObject({ approvals: [], refusals: [] });

    planning.open();
    await e.waitFor(id, (s) => s.state === 'awaiting-approval');
    expect((await e.client.rollbackView(id)).status.approvals).toEqual([]);
    expect(await e.client.decide(id, 'approve', { user: 'bob' })).toMatchObject({ accepted: true });
    expect((await e.finalStatus(id)).status.state).toBe('completed');
    expect((await e.historyEvents(id)).filter((t) => t === 'WorkflowExecutionUpdateAccepted')).toHaveLength(1);
  });

  it('refuses a decision while the rollback is still being decided', async () => {
    const deciding = gate();
    const e = await setUp({
      control: (stubs) => ({
        async resolveRollback(request) {
          await deciding.wait();
          return stubs.resolveRollback(request);
        },
      }),
    });
    const id = await e.start();
    await e.waitFor(id, () => deciding.waiting === 1);
    expect(await e.client.decide(id, 'reject', { user: 'bob' })).toMatchObject({
      accepted: false,
      reason: 'the rollback is still being decided; try again in a moment',
      phase: 'decide',
    });
    expect((await e.historyEvents(id)).filter((t) => t.startsWith('WorkflowExecutionUpdate'))).toEqual([]);
    deciding.open();
    await e.waitFor(id, (s) => s.state === 'awaiting-approval');
    expect((await e.client.rollbackView(id)).status.rejection).toBeUndefined();
  });

  it('answers an approval after the run ended with "the rollback already ended"', async () => {
    const e = await setUp();
    const id = await awaitingApproval(e);
    await e.client.decide(id, 'reject', { user: 'bob' });
    expect((await e.finalStatus(id)).status.state).toBe('rejected');
    const late = await e.client.decide(id, 'approve', { user: 'carol' });
    expect(late).toMatchObject({ accepted: false, reason: 'the rollback already ended (rejected)', state: 'rejected' });
    expect(e.restores()).toEqual([]);
  });
});

describe('approval timeout (workflow with stub activities)', () => {
  let env: WorkflowTestEnv;
  beforeAll(async () => {
    env = await createWorkflowTestEnv({ policy: { approvalTimeoutMs: 2_000 } });
  });
  afterAll(() => env.teardown());

  it('ends as timed-out when nobody decides within the approval timeout, and restores nothing', async () => {
    const id = await env.start();
    const { status, execution } = await env.finalStatus(id, 15_000);
    expect(execution).toBe('COMPLETED');
    expect(status.state).toBe('timed-out');
    expect(status.phases.approval!.durationMs).toBeGreaterThanOrEqual(2_000);
    expect(status.phases.execute).toBeUndefined();
    expect(env.restores()).toEqual([]);
    expect(await env.client.decide(id, 'approve', { user: 'bob' })).toMatchObject({
      accepted: false,
      reason: 'the rollback already ended (timed-out)',
    });
  });
});
