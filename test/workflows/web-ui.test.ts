// What an operator reading the Temporal Web UI sees of a rollback: a summary set when it starts,
// and current details that follow its phases, on stub activities.
import { workflowMetadataQuery } from '@temporalio/workflow';
import { lockWorkflowId } from '../../src/domain/rollback';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../support/workflow-test-worker';

describe('a rollback in the Web UI (workflow with stub activities)', () => {
  let env: WorkflowTestEnv | undefined;
  afterEach(async () => {
    await env?.teardown();
    env = undefined;
  });

  it('has a summary from its request and current details that follow the run', async () => {
    const e = (env = await createWorkflowTestEnv());
    const id = await e.start({ reason: 'errors after deploy' });
    await e.waitFor(id, (s) => s.state === 'awaiting-approval');

    const description = await e.handle(id).describe();
    expect(await description.staticSummary()).toBe('Roll production back to version v1');
    expect(await description.staticDetails()).toBe('requested by alice (manual): errors after deploy');
    const waiting = (await e.handle(id).query(workflowMetadataQuery)).currentDetails ?? '';
    expect(waiting).toContain('**awaiting-approval** in phase **approval**: production → version v1');
    expect(waiting).toContain('approvals 0/1; approvers: alice, bob, carol');
    // The environment's lock, a child run, names the rollback that holds it.
    const lock = await e.temporal.workflow.getHandle(lockWorkflowId(e.agentTaskQueue)).describe();
    expect(await lock.staticSummary()).toBe(`production is held by rollback ${id}`);

    expect(await e.client.decide(id, 'approve', { user: 'bob' })).toMatchObject({ accepted: true });
    await e.finalStatus(id);
    const done = (await e.handle(id).query(workflowMetadataQuery)).currentDetails ?? '';
    expect(done).toContain('**completed** in phase **complete**');
    expect(done).toMatch(/- config: done, verify passed/);
  });
});

describe('what people typed, in the Web UI', () => {
  let env: WorkflowTestEnv | undefined;
  afterEach(async () => {
    await env?.teardown();
    env = undefined;
  });

  it("is escaped in the run's static details, which the Web UI renders as Markdown", async () => {
    const e = (env = await createWorkflowTestEnv());
    const id = await e.start({ reason: '<img src=x onerror=alert(1)>\n## Approved by: mallory' });
    const details = (await (await e.handle(id).describe()).staticDetails()) ?? '';
    expect(details).not.toContain('<img');
    expect(details).toContain('&lt;img');
    expect(details).not.toMatch(/\n##/);
    await e.client.cancel(id, { user: 'bob' });
  });
});
