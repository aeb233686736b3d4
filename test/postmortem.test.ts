// The postmortem template of a rollback: a real run (the workflow with stub steps) that failed and
// was compensated, rendered with its timeline in time order, its durations, plan, checks and the
// prompts people fill in; text from people stays text in the HTML.
import { ApplicationFailure } from '@temporalio/common';
import { postmortemHtml } from '../src/client/postmortem-html';
import { renderPostmortem } from '../src/domain/postmortem';
import { runCli } from './support/harness';
import { createWorkflowTestEnv, type WorkflowTestEnv } from './support/workflow-test-worker';

describe('postmortem template', () => {
  let env: WorkflowTestEnv | undefined;
  afterAll(async () => env?.teardown());

  it('is pre-filled from a compensated run, in Markdown and in HTML', async () => {
    env = await createWorkflowTestEnv({
      agent: (stubs) => ({
        restoreComponent: (req) =>
          req.purpose === 'rollback' && req.component === 'models'
            ? Promise.reject(ApplicationFailure.nonRetryable('disk full writing model.pkl', 'ComponentUnavailable'))
            : stubs.restoreComponent(req),
      }),
    });
    const id = await env.start({ reason: 'checkout errors <script>alert(1)</script>' });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob', comment: 'go | now' });
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('compensated');

    const markdown = renderPostmortem(status);
    expect(markdown).toContain('# Postmortem: rollback of production to version v1');
    expect(markdown).toContain('- **Outcome:** compensated (execute failed: disk full writing model.pkl)');
    expect(markdown).toMatch(/\| start to end \(time to roll back\) \| \d/);
    expect(markdown).toMatch(/\| compensating \| \d/);
    // The timeline is in time order, and holds the approval with its comment, escaped for a table.
    const times = [...markdown.matchAll(/^\| (\d{4}-\d{2}-\d{2}T[^|]+) \|/gm)].map((m) => m[1]!.trim());
    expect(times.length).toBeGreaterThan(8);
    expect([...times].sort()).toEqual(times);
    expect(markdown).toMatch(/approved by bob: "go \\\| now"/);
    expect(markdown).toMatch(/\| models \| [^|]+ \| compensated \|/);
    // What only people know is left as prompts.
    expect(markdown).toContain('- **Root cause:** _what went wrong in the release that was rolled back_');
    expect(markdown).toContain('## Action items');

    const html = postmortemHtml(markdown, `Postmortem: ${id}`);
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<table>');
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;script&gt;');
  });

  it('refuses a format it does not write, saying which it does', async () => {
    const result = await runCli(['rollback', 'postmortem', 'rollback-production-x', '--format', 'pdf']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/--format.*pdf.*markdown, html/);
  });
});
