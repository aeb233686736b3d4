// Decisions and starts at scale, on stub activities: a retried request counts once however many
// copies arrive together, a flood of refused requests is counted rather than appended, malformed
// requests never reach history, and a keyed start gives every caller the one run.
import { MAX_RECORDED_REPEATS } from '../../src/domain/rollback-rules';
import { randomBytes, randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { approveUpdate } from '../../src/domain/messages';
import { keyedRollbackId } from '../../src/domain/rollback';
import { eventually } from '../support/harness';
import { createWorkflowTestEnv, inBatches, type WorkflowTestEnv } from '../support/workflow-test-worker';

/**
 * Requests in flight at once. The server admits at most 10 in-flight Updates per workflow
 * (history.maxInFlightUpdates); more are refused with RESOURCE_EXHAUSTED and retried by the
 * client with backoff, which only slows the test down (and, past its retries, fails a request).
 */
const UPDATE_CONCURRENCY = 10;

describe('updates at scale (workflow with stub activities)', () => {
  let env: WorkflowTestEnv | undefined;
  afterEach(async () => {
    await env?.teardown();
    env = undefined;
  });

  const awaitingApproval = async (e: WorkflowTestEnv) => {
    const id = await e.start();
    await e.waitFor(id, (s) => s.state === 'awaiting-approval');
    return id;
  };

  it('records one approval for 200 concurrent approvals with one request id', async () => {
    const e = (env = await createWorkflowTestEnv({ policy: { requiredApprovals: 2 } }));
    const id = await awaitingApproval(e);
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, () => e.client.decide(id, 'approve', { user: 'bob', requestId: 'same' })),
    );
    expect(outcomes.filter((o) => !o.accepted)).toEqual([]);
    const { status } = await e.client.rollbackView(id);
    expect(status.approvals).toHaveLength(1);
    expect(status.approvals[0]).toMatchObject({ user: 'bob', requestId: 'same' });
    expect(status.state).toBe('awaiting-approval');
    expect((await e.historyEvents(id)).filter((t) => t === 'WorkflowExecutionUpdateAccepted')).toHaveLength(1);

    expect(await e.client.decide(id, 'approve', { user: 'carol' })).toMatchObject({ accepted: true, approvals: 2 });
    expect((await e.finalStatus(id)).status.state).toBe('completed');
  });

  it('answers 2,000 approvals from one non-approver with the reason, records the first ten on one record, and keeps the status under 64 KB', async () => {
    const e = (env = await createWorkflowTestEnv());
    const id = await awaitingApproval(e);
    const outcomes = await inBatches(2_000, UPDATE_CONCURRENCY, (i) =>
      e.client.decide(id, 'approve', { user: 'mallory', requestId: `flood-${i}` }),
    );
    expect(outcomes.filter((o) => o.accepted)).toEqual([]);
    // The first ones are recorded; the rest are refused by the validator, unrecorded.
    expect(new Set(outcomes.map((o) => o.reason))).toEqual(
      new Set([
        'mallory is not an approver (approvers: alice, bob, carol)',
        'mallory is not an approver (approvers: alice, bob, carol) (refused before; not recorded again)',
      ]),
    );

    const { status } = await e.client.rollbackView(id);
    expect(JSON.stringify(status).length).toBeLessThan(64 * 1024);
    expect(status.refusals).toHaveLength(1);
    expect(status.refusals[0]).toMatchObject({ user: 'mallory', action: 'approve', count: MAX_RECORDED_REPEATS });
    expect((await e.historyEvents(id)).filter((t) => t === 'WorkflowExecutionUpdateAccepted')).toHaveLength(
      MAX_RECORDED_REPEATS,
    );
    expect(status.approvals).toEqual([]);
    expect(status.state).toBe('awaiting-approval');
  });

  it('refuses 2,000 malformed approvals in the validator without adding an event to history', async () => {
    const e = (env = await createWorkflowTestEnv());
    const id = await awaitingApproval(e);
    const handle = e.handle(id);
    const before = await e.historyEvents(id);

    const answers = await inBatches(2_000, UPDATE_CONCURRENCY, (i) =>
      handle
        .executeUpdate(approveUpdate, {
          updateId: `malformed-${i}-${randomUUID()}`,
          args: [{ user: '', requestId: 'x' }],
        })
        .then(
          () => 'accepted',
          (err: unknown) => (err instanceof WorkflowUpdateFailedError ? 'refused' : `unexpected: ${String(err)}`),
        ),
    );
    expect(answers.filter((a) => a !== 'refused')).toEqual([]);

    // The safety snapshot's background steps may still add their events; no Update may.
    const updates = (events: string[]) => events.filter((t) => t.includes('UPDATE'));
    const after = await e.historyEvents(id);
    expect(updates(before)).toEqual([]);
    expect(updates(after)).toEqual([]);
    expect(after.slice(0, before.length)).toEqual(before);
    const { status } = await e.client.rollbackView(id);
    expect(status).toMatchObject({ state: 'awaiting-approval', approvals: [], refusals: [] });
  });

  it('gives 200 concurrent starts of one keyed request one run and every caller its id, and finds it again after it ended', async () => {
    const e = (env = await createWorkflowTestEnv());
    const requestId = `incident-42-${randomBytes(3).toString('hex')}`;
    const expectedId = keyedRollbackId('production', requestId);
    const starts = await Promise.all(
      Array.from({ length: 200 }, () => e.client.startRollback(e.request(), { requestId })),
    );
    expect(new Set(starts.map((s) => s.workflowId))).toEqual(new Set([expectedId]));

    const executions = async () => {
      const runs: string[] = [];
      for await (const run of e.temporal.workflow.list({ query: `WorkflowId = '${expectedId}'` })) runs.push(run.runId);
      return runs;
    };
    const firstRuns = await eventually(
      async () => {
        const runs = await executions();
        return runs.length > 0 ? runs : undefined;
      },
      `${expectedId} in visibility`,
      10_000,
    );
    expect(firstRuns).toHaveLength(1);
    const { runId } = await e.handle(expectedId).describe();

    await e.waitFor(expectedId, (s) => s.state === 'awaiting-approval');
    await e.client.decide(expectedId, 'reject', { user: 'bob' });
    expect((await e.finalStatus(expectedId)).status.state).toBe('rejected');

    const again = await e.client.startRollback(e.request(), { requestId });
    expect(again).toMatchObject({ workflowId: expectedId, existing: true });
    const described = await e.handle(expectedId).describe();
    expect(described.runId).toBe(runId);
    expect(described.status.name).toBe('COMPLETED');
    expect(await executions()).toEqual([runId]);
    expect(e.calls('resolveRollback')).toHaveLength(1);
  });
});
