// A flood of refused decisions must not lock the approvers out of a run, on stub activities.
// Every decision the handler refuses (a non-approver's approve) is an accepted Update, and the
// server admits at most 2,000 distinct Updates per run (history.maxTotalUpdates): the flood of
// updates-at-scale.test.ts uses them all up.
import { createWorkflowTestEnv, inBatches, type WorkflowTestEnv } from '../support/workflow-test-worker';

/** The server admits at most 10 in-flight Updates per run (history.maxInFlightUpdates). */
const UPDATE_CONCURRENCY = 10;

describe('the update budget of a run (workflow with stub activities)', () => {
  let env: WorkflowTestEnv | undefined;
  afterEach(async () => {
    await env?.teardown();
    env = undefined;
  });

  it('still answers an approver, accepted or refused, after 2,000 refused requests from a non-approver', async () => {
    const e = (env = await createWorkflowTestEnv());
    const id = await e.start();
    await e.waitFor(id, (s) => s.state === 'awaiting-approval');
    const flood = await inBatches(2_000, UPDATE_CONCURRENCY, (i) =>
      e.client.decide(id, 'approve', { user: 'mallory', requestId: `flood-${i}` }),
    );
    expect(flood.filter((o) => o.accepted)).toEqual([]);

    // The approvers must still be heard, in one round trip, with an answer rather than an error.
    const rejection = await e.client.decide(id, 'reject', { user: 'bob', comment: 'stop the flood' });
    expect(rejection).toMatchObject({ accepted: true });
    expect((await e.finalStatus(id)).status.state).toBe('rejected');
  });
});
