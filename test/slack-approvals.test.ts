// Approving in Slack, end to end: the run's message reaches a local stand-in for Slack's Web API
// (through the real @slack/web-api client) with Approve and Reject buttons; signed interactions
// arrive at the real API server; the run's own rules decide. Forged, stale, replayed, unknown,
// unauthorised and self-approving clicks are each refused, audited, and change nothing.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { signedSlackHeaders } from '../src/api/slack-signature';
import { listAudit } from '../src/audit/audit-log';
import { startTestApi, type TestApi } from './support/api-server';
import { createTestEnv, eventually, type TestEnv } from './support/harness';
import { startSlackApi, type SlackApi, type SlackCall } from './support/slack-api';

const SECRET = 'test-signing-secret-8f2d';
let env: TestEnv;
let slack: SlackApi;
let api: TestApi;
let base: string;

beforeAll(async () => {
  slack = await startSlackApi();
  env = await createTestEnv({
    environments: { production: { config: { format: 'config' } } },
    api: {
      principals: {
        alice: { roles: ['approver', 'operator'], slackUserId: 'UALICE01' },
        bob: { roles: ['approver'], slackUserId: 'UBOB0001' },
        vic: { roles: ['viewer'], slackUserId: 'UVIC0001' },
      },
    },
    slack: { channels: { production: '#ops-prod' }, apiUrl: slack.url },
    controlEnv: { SLACK_BOT_TOKEN: 'xoxb-test' },
  });
  api = await startTestApi(env, { SLACK_SIGNING_SECRET: SECRET });
  base = api.base;
});

afterAll(async () => {
  await api?.close();
  await env?.teardown();
  await slack?.close();
});

let clicks = 0;
/** A block_actions payload as Slack sends it for a click on one of the run's buttons. */
function interaction(user: string, action: 'rewind_approve' | 'rewind_reject', workflowId: string): string {
  const payload = {
    type: 'block_actions',
    user: { id: user, username: user.toLowerCase() },
    actions: [
      { action_id: action, block_id: 'rewind_decision', value: workflowId, action_ts: `1700000${++clicks}.000200` },
    ],
    response_url: slack.responseUrl,
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

async function post(body: string, options: { secret?: string; ageSeconds?: number } = {}) {
  const response = await fetch(`${base}/v1/slack/interactions`, {
    method: 'POST',
    headers: signedSlackHeaders(options.secret ?? SECRET, body, options.ageSeconds),
    body,
  });
  return { status: response.status, text: await response.text() };
}

const replies = () => slack.calls.filter((c) => c.method === 'response_url').map((c) => String(c.body.text));
const messageText = (c: SlackCall) => JSON.stringify(c.body.blocks ?? c.body.text);

describe('approvals in Slack', () => {
  test('the run is posted with buttons; every bad click is refused and audited; a good one approves and the message follows the run', async () => {
    const config = env.componentPath('production', 'config');
    writeFileSync(path.join(config, 'app.yaml'), 'release: v1\n');
    await env.snapshot('production', { version: 'v1' });
    writeFileSync(path.join(config, 'app.yaml'), 'release: v2\n');
    const { workflowId: id } = await env.client.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'v1' },
      requester: 'alice',
      reason: 'error rate up',
    });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');

    // The message, with the buttons, in the environment's channel.
    const withButtons = await eventually(
      () =>
        slack.calls.find(
          (c) => ['chat.postMessage', 'chat.update'].includes(c.method) && messageText(c).includes('rewind_approve'),
        ),
      'the message with Approve and Reject',
    );
    expect(withButtons.body.channel).toBe('#ops-prod');
    expect(withButtons.token).toBe('xoxb-test');
    const actions = (
      withButtons.body.blocks as { type: string; elements?: { action_id: string; value: string }[] }[]
    ).find((b) => b.type === 'actions')!;
    expect(actions.elements!.map((e) => [e.action_id, e.value])).toEqual([
      ['rewind_approve', id],
      ['rewind_reject', id],
    ]);
    expect(messageText(withButtons)).toContain('error rate up');

    // Forged, stale and replayed requests: 401, nothing else.
    expect((await post(interaction('UBOB0001', 'rewind_approve', id), { secret: 'not-the-secret' })).status).toBe(401);
    expect((await post(interaction('UBOB0001', 'rewind_approve', id), { ageSeconds: 6 * 60 })).status).toBe(401);
    const unknown = interaction('UNOBODY01', 'rewind_approve', id);
    expect((await post(unknown)).status).toBe(200);
    const replayed = await post(unknown);
    expect(replayed.status).toBe(401);
    expect(replayed.text).toMatch(/replay/);
    // Known, but not allowed: a viewer, and the requester approving her own rollback in production.
    expect((await post(interaction('UVIC0001', 'rewind_approve', id))).status).toBe(200);
    expect((await post(interaction('UALICE01', 'rewind_approve', id))).status).toBe(200);
    await eventually(() => replies().length >= 3 || undefined, 'three private replies');
    expect(replies()).toEqual([
      expect.stringMatching(/your Slack user \(UNOBODY01\) is not a rewind principal/),
      expect.stringMatching(/vic may not approve in production/),
      expect.stringMatching(/alice requested this rollback and cannot approve it in production/),
    ]);
    const view = await env.client.rollbackView(id);
    expect(view.status).toMatchObject({ state: 'awaiting-approval', approvals: [] });
    const refused = (await listAudit(await env.projectStore(), { limit: 100 })).filter((r) => r.door === 'slack');
    expect(refused.map((r) => [r.action, r.actor, r.outcome])).toEqual([
      ['auth.refused', 'unknown', 'refused'],
      ['auth.refused', 'unknown', 'refused'],
      ['rollback.approve', 'slack:UNOBODY01', 'refused'],
      ['auth.refused', 'unknown', 'refused'],
      ['rollback.approve', 'vic', 'refused'],
      ['rollback.approve', 'alice', 'refused'],
    ]);

    // Bob approves, clicking eight times at once: one approval counts, the other clicks hear it
    // already did; the run completes, and the message says who approved and how it ended.
    const burst = await Promise.all(
      Array.from({ length: 8 }, () => post(interaction('UBOB0001', 'rewind_approve', id))),
    );
    expect(burst.map((r) => r.status)).toEqual(Array(8).fill(200));
    const final = await env.finalStatus(id);
    expect(final.status.state).toBe('completed');
    expect(final.status.approvals.map((a) => a.user)).toEqual(['bob']);
    await eventually(() => replies().length >= 3 + 7 || undefined, 'seven more private replies');
    expect(replies().slice(3)).toEqual(Array(7).fill(':no_entry: Not approved: bob has already approved'));
    const bobs = (await listAudit(await env.projectStore(), { runId: id }))
      .filter((r) => r.door === 'slack' && r.actor === 'bob')
      .map((r) => [r.outcome, r.reason ?? null]);
    expect(bobs.filter(([outcome]) => outcome === 'accepted')).toHaveLength(1);
    expect(bobs.filter(([outcome]) => outcome === 'refused')).toEqual(
      Array(7).fill(['refused', 'bob has already approved']),
    );
    const updates = slack.calls.filter((c) => c.method === 'chat.update');
    expect(updates.length).toBeGreaterThan(0);
    const last = updates.at(-1)!;
    // One message per run: every update names the same one.
    expect(new Set(updates.map((u) => u.body.ts)).size).toBe(1);
    expect(messageText(last)).toContain('approved by *bob*');
    expect(messageText(last)).toContain('completed');
    expect(messageText(last)).not.toContain('rewind_approve');
    // Each event as a line in the message's thread.
    const thread = slack.calls
      .filter((c) => c.method === 'chat.postMessage' && c.body.thread_ts)
      .map((c) => String(c.body.text));
    expect(thread).toEqual([
      expect.stringMatching(/started by alice/),
      expect.stringMatching(/awaits approval/),
      expect.stringMatching(/approved by bob/),
      expect.stringMatching(/: completed\.$/),
    ]);
    const accepted = (await listAudit(await env.projectStore(), { runId: id })).map((r) => [r.door, r.action, r.actor]);
    expect(accepted).toContainEqual(['slack', 'rollback.approve', 'bob']);
    expect(accepted.at(-1)).toEqual(['workflow', 'rollback.completed', 'rewind']);
  });
});
