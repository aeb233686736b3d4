// Alert-driven rollbacks: a real Alertmanager (Debian's prometheus-alertmanager) on loopback
// routes an alert to rewind's webhook; the rollback starts and waits; a signed Slack click
// approves it; the files come back. The decision policy (credentials, labels, time since the
// last deploy, one rollback per environment, duplicate deliveries) is checked on its own too.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  alertmanagerPayloadSchema,
  decideTriggers,
  triggerRuleSchema,
  triggersSectionSchema,
} from '../src/api/triggers';
import { autoApprovalOf } from '../src/domain/rollback-rules';
import { signedSlackHeaders } from '../src/api/slack-signature';
import type { CrossSection } from '../src/domain/cross-section';
import { listAudit } from '../src/audit/audit-log';
import { startTestApi, type TestApi } from './support/api-server';
import { createTestEnv, eventually, type TestEnv } from './support/harness';
import { startPagerDutyApi, type PagerDutyApi } from './support/pagerduty-api';
import { startSlackApi, type SlackApi } from './support/slack-api';
import { tempDir } from './support/temp';

const ALERTMANAGER = '/usr/bin/prometheus-alertmanager';
const TOKEN = 'am-webhook-token-5c1e';
const SECRET = 'slack-signing-secret-77aa';
let env: TestEnv;
let slack: SlackApi;
let pagerDuty: PagerDutyApi;
const certificates = tempDir('rewind-am-pagerduty-');
let api: TestApi;
let base: string;

beforeAll(async () => {
  slack = await startSlackApi();
  pagerDuty = await startPagerDutyApi(certificates);
  env = await createTestEnv({
    environments: { production: { config: { format: 'config' } }, staging: { config: { format: 'config' } } },
    api: { principals: { bob: { roles: ['approver'], slackUserId: 'UBOB0001' } } },
    slack: { channels: { '*': '#ops' }, apiUrl: slack.url },
    controlEnv: { SLACK_BOT_TOKEN: 'xoxb-test', PD_PRODUCTION: 'routing-key-production' },
    manifest: {
      pagerduty: {
        server: pagerDuty.server,
        caFile: pagerDuty.caFile,
        routes: [{ environment: 'production', routingKeyEnv: 'PD_PRODUCTION' }],
      },
    },
    triggers: {
      auth: { bearerTokenEnv: 'AM_TOKEN' },
      rules: [
        {
          name: 'service down',
          match: { alertname: 'ServiceDown', severity: ['critical', 'page'] },
          environmentLabel: 'env',
        },
        {
          name: 'checkout errors',
          match: { alertname: 'CheckoutErrors', severity: 'critical' },
          environment: 'staging',
          withinHoursOfDeploy: 2,
        },
        {
          name: 'canary',
          match: { alertname: 'CanaryFailing' },
          environment: 'production',
          autoApprove: true,
        },
      ],
    },
  });
  // Two releases in each environment: v1, then v2 deployed (the newest cross-section).
  for (const environment of ['production', 'staging']) {
    const file = path.join(env.componentPath(environment, 'config'), 'app.yaml');
    writeFileSync(file, 'release: v1\n');
    await env.snapshot(environment, { version: 'v1' });
    writeFileSync(file, 'release: v2\n');
    await env.snapshot(environment, { version: 'v2', reason: 'deploy' });
  }
  api = await startTestApi(env, { AM_TOKEN: TOKEN, SLACK_SIGNING_SECRET: SECRET });
  base = api.base;
});

afterAll(async () => {
  await api?.close();
  await env?.teardown();
  await slack?.close();
  await pagerDuty?.close();
});

function payload(alertname: string, labels: Record<string, string>, startsAt = '2026-11-29T10:00:00Z') {
  return {
    version: '4',
    groupKey: `{}:{alertname="${alertname}"}`,
    status: 'firing',
    receiver: 'rewind',
    groupLabels: { alertname },
    commonLabels: { alertname, ...labels },
    commonAnnotations: { summary: `${alertname} fired` },
    externalURL: 'http://alertmanager.example',
    alerts: [
      {
        status: 'firing',
        labels: { alertname, ...labels },
        annotations: { summary: `${alertname} fired` },
        startsAt,
        endsAt: '0001-01-01T00:00:00Z',
        generatorURL: 'http://prometheus.example/graph',
        fingerprint: 'f1',
      },
    ],
  };
}

async function deliver(body: unknown, authorization = `Bearer ${TOKEN}`) {
  const response = await fetch(`${base}/v1/webhooks/alertmanager`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    json: (await response.json()) as { decisions?: Record<string, unknown>[]; reason?: string },
  };
}

async function rollbacks(environment: string): Promise<number> {
  const { count } = await env.temporal.workflow.count(
    `WorkflowType = 'rollbackWorkflow' AND TaskQueue = '${env.loaded.manifest.temporal.taskQueue}' AND RewindEnvironment = '${environment}'`,
  );
  return count;
}

describe('alert triggers', () => {
  test('refuses deliveries without the right credentials, and a firing alert no rule matches starts nothing', async () => {
    expect((await deliver(payload('CheckoutErrors', { severity: 'critical' }), 'Bearer wrong')).status).toBe(401);
    expect((await deliver(payload('CheckoutErrors', { severity: 'critical' }), '')).status).toBe(401);
    const warning = await deliver(payload('CheckoutErrors', { severity: 'warning' }));
    expect(warning.status).toBe(200);
    expect(warning.json.decisions).toEqual([
      { outcome: 'not rolled back', reason: expect.stringMatching(/^no trigger rule matches the firing alerts/) },
    ]);
    const malformed = await deliver({ version: '3', alerts: [] });
    expect(malformed.status).toBe(400);
    expect(await rollbacks('staging')).toBe(0);
    const rows = await listAudit(await env.projectStore(), { actor: 'alertmanager' });
    expect(rows.map((r) => [r.action, r.outcome])).toEqual([['trigger.decision', 'refused']]);
  });

  test('200 concurrent deliveries of one alert group start exactly one rollback, to the release before the last', async () => {
    const body = payload('CheckoutErrors', { severity: 'critical' });
    const answers = await Promise.all(Array.from({ length: 200 }, () => deliver(body)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const outcomes = answers.map((a) => a.json.decisions![0]!.outcome);
    expect(outcomes.filter((o) => o === 'started')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'attached')).toHaveLength(199);
    const ids = new Set(answers.map((a) => a.json.decisions![0]!.workflowId));
    expect(ids.size).toBe(1);
    const [id] = [...ids] as string[];
    await eventually(async () => ((await rollbacks('staging')) === 1 ? true : undefined), 'one staging rollback');
    const view = await env.waitFor(id!, (s) => s.state === 'awaiting-approval');
    expect(view.status).toMatchObject({
      requester: 'alertmanager',
      trigger: 'alert',
      target: { kind: 'version', version: 'v1' },
      reason: 'alert CheckoutErrors: CheckoutErrors fired (rule checkout errors)',
    });

    // Another alert group for staging while that run waits: at most one rollback per environment.
    const other = await deliver({
      ...payload('CheckoutErrors', { severity: 'critical', shard: '2' }, '2026-11-29T11:00:00Z'),
      groupKey: '{}:{alertname="CheckoutErrors",shard="2"}',
    });
    expect(other.json.decisions![0]).toMatchObject({
      outcome: 'not rolled back',
      reason: expect.stringMatching(/already running on staging/),
    });
    await env.client.cancel(id!, { user: 'bob', reason: 'test done' });
    await env.finalStatus(id!);
  });

  test('a real Alertmanager routes an alert to the webhook; the rollback waits, a signed Slack click approves it, the files come back', async () => {
    if (!existsSync(ALERTMANAGER))
      throw new Error(`${ALERTMANAGER} is missing: .ci/run installs prometheus-alertmanager`);
    const dir = path.join(env.dir, 'alertmanager');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      path.join(dir, 'alertmanager.yml'),
      [
        'route:',
        '  receiver: rewind',
        '  group_by: [alertname]',
        '  group_wait: 1s',
        '  group_interval: 5s',
        '  repeat_interval: 1h',
        'receivers:',
        '  - name: rewind',
        '    webhook_configs:',
        `      - url: ${base}/v1/webhooks/alertmanager`,
        '        send_resolved: true',
        '        http_config:',
        `          authorization: { type: Bearer, credentials: ${TOKEN} }`,
        '',
      ].join('\n'),
    );
    const port = 19093 + Math.floor(Math.random() * 500);
    const alertmanager: ChildProcess = spawn(
      ALERTMANAGER,
      [
        `--config.file=${path.join(dir, 'alertmanager.yml')}`,
        `--storage.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--cluster.listen-address=',
      ],
      { stdio: 'ignore' },
    );
    try {
      const am = `http://127.0.0.1:${port}`;
      await eventually(
        () =>
          fetch(`${am}/-/ready`).then(
            (r) => r.ok || undefined,
            () => undefined,
          ),
        'Alertmanager ready',
      );
      const posted = await fetch(`${am}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([
          {
            labels: { alertname: 'ServiceDown', env: 'production', severity: 'critical' },
            annotations: { summary: 'checkout is down' },
            startsAt: new Date().toISOString(),
          },
        ]),
      });
      expect(posted.ok).toBe(true);

      const row = await eventually(
        async () =>
          (await listAudit(await env.projectStore(), { actor: 'alertmanager' })).find(
            (r) => r.action === 'rollback.start' && r.environment === 'production',
          ),
        'the rollback Alertmanager started',
      );
      const id = row.runId!;
      const view = await env.waitFor(id, (s) => s.state === 'awaiting-approval');
      expect(view.status).toMatchObject({ requester: 'alertmanager', target: { kind: 'version', version: 'v1' } });

      // Bob approves in Slack.
      const body = new URLSearchParams({
        payload: JSON.stringify({
          type: 'block_actions',
          user: { id: 'UBOB0001' },
          actions: [{ action_id: 'rewind_approve', value: id, action_ts: '1800000000.000100' }],
          response_url: slack.responseUrl,
        }),
      }).toString();
      const click = await fetch(`${base}/v1/slack/interactions`, {
        method: 'POST',
        headers: signedSlackHeaders(SECRET, body),
        body,
      });
      expect(click.status).toBe(200);
      const final = await env.finalStatus(id);
      expect(final.status.state).toBe('completed');
      expect(final.status.approvals.map((a) => a.user)).toEqual(['bob']);
      expect(readFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'utf8')).toBe(
        'release: v1\n',
      );
      const methods = slack.calls.map((c) => c.method);
      expect(methods).toContain('chat.postMessage');
      expect(methods).toContain('chat.update');
      // PagerDuty: the wait for a human opened the run's incident; the completed run resolved it.
      const incident = await eventually(() => {
        const actions = pagerDuty.events.filter((e) => e.dedup_key === id).map((e) => e.event_action);
        return actions.includes('resolve') ? actions : undefined;
      }, "the run's incident resolved");
      expect(incident).toEqual(['trigger', 'resolve']);
      expect(pagerDuty.events.find((e) => e.dedup_key === id)).toMatchObject({
        routing_key: 'routing-key-production',
        payload: { severity: 'warning' },
      });
    } finally {
      alertmanager.kill('SIGTERM');
    }
  });

  test('a rule with autoApprove rolls back without waiting for anyone, recorded as its approver', async () => {
    const file = path.join(env.componentPath('production', 'config'), 'app.yaml');
    writeFileSync(file, 'release: v2-canary\n');
    const answer = await deliver(payload('CanaryFailing', { severity: 'critical' }));
    expect(answer.status).toBe(200);
    expect(answer.json.decisions).toEqual([
      expect.objectContaining({ rule: 'canary', outcome: 'started', approval: 'rule', environment: 'production' }),
    ]);
    const id = answer.json.decisions![0]!.workflowId as string;
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('completed');
    expect(status).toMatchObject({ triggerRule: 'canary', autoApproval: { rule: 'canary', applied: true } });
    expect(status.approvals.map((a) => a.user)).toEqual(['trigger rule canary']);
    expect(readFileSync(file, 'utf8')).toBe('release: v1\n');
    const rows = await eventually(async () => {
      const all = await listAudit(await env.projectStore(), { runId: id });
      return all.some((r) => r.action === 'rollback.completed') ? all : undefined;
    }, "the run's audit rows");
    expect(rows.map((r) => [r.actor, r.door, r.action, r.outcome])).toEqual(
      expect.arrayContaining([
        ['alertmanager', 'alertmanager', 'rollback.start', 'accepted'],
        ['trigger rule canary', 'alertmanager', 'rollback.approve', 'accepted'],
        ['rewind', 'workflow', 'rollback.completed', 'recorded'],
      ]),
    );
    expect(rows.find((r) => r.action === 'rollback.approve')?.evidence?.plan).toMatch(/^[0-9a-f]{64}$/);
    // Nobody had to be paged: no incident was opened for it.
    expect(pagerDuty.events.filter((e) => e.dedup_key === id && e.event_action === 'trigger')).toEqual([]);

    // The group's first alert resolved and another fires: a new episode, within the cooldown.
    // A second API process (nothing cached) reads the group's last start from the audit log.
    const second = await startTestApi(env, { AM_TOKEN: TOKEN, SLACK_SIGNING_SECRET: SECRET });
    try {
      const shifted = await fetch(`${second.base}/v1/webhooks/alertmanager`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify(payload('CanaryFailing', { severity: 'critical' }, '2026-11-29T10:07:00Z')),
      });
      expect(shifted.status).toBe(200);
      expect(((await shifted.json()) as { decisions: unknown[] }).decisions).toEqual([
        {
          rule: 'canary',
          environment: 'production',
          outcome: 'not rolled back',
          reason: expect.stringMatching(
            new RegExp(
              `^this alert group started ${id} at .*; rule canary starts at most one rollback per alert group within 1h \\(cooldown\\)$`,
            ),
          ),
        },
      ]);
    } finally {
      await second.close();
    }
    expect(await rollbacks('production')).toBe(2); // the Slack-approved run and this one
  });
});

describe('the decision policy', () => {
  const rule = triggerRuleSchema.parse({
    name: 'errors',
    match: { alertname: 'Errors' },
    environment: 'production',
    withinHoursOfDeploy: 2,
  });
  const release = (version: string, time: string): CrossSection => ({
    id: `xs-${version}`,
    environment: 'production',
    time,
    origin: 'manual',
    version,
    members: [],
    components: {},
    complete: true,
  });
  const decide = (
    now: string,
    sections = [release('v2', '2026-11-29T10:00:00Z'), release('v1', '2026-11-28T10:00:00Z')],
  ) =>
    decideTriggers(alertmanagerPayloadSchema.parse(payload('Errors', {})), [rule], {
      environments: ['production'],
      crossSections: () => Promise.resolve([...sections]),
      now: new Date(now),
    });

  test('acts within N hours of the last deploy, and says why not after', async () => {
    expect(await decide('2026-11-29T11:30:00Z')).toMatchObject([
      { outcome: 'start', plan: { environment: 'production', target: { kind: 'version', version: 'v1' } } },
    ]);
    expect(await decide('2026-11-29T12:30:00Z')).toEqual([
      {
        rule: 'errors',
        environment: 'production',
        outcome: 'not rolled back',
        reason: 'the last deploy of production (v2 at 2026-11-29T10:00:00Z) is 2.5 h ago; the rule acts within 2 h',
      },
    ]);
    expect((await decide('2026-11-29T10:30:00Z', [release('v2', '2026-11-29T10:00:00Z')]))[0]).toMatchObject({
      outcome: 'not rolled back',
      reason: 'production has no release before v2 to go back to',
    });
  });

  test('a cooldown keeps an alert group whose episode moved from starting a second rollback', async () => {
    const runOf = async (sections: CrossSection[], lastStart?: { at: Date; runId: string }, cooldown?: string) => {
      const ruled = triggerRuleSchema.parse({
        name: 'errors',
        match: { alertname: 'Errors' },
        environment: 'production',
        ...(cooldown ? { cooldown } : {}),
      });
      return decideTriggers(alertmanagerPayloadSchema.parse(payload('Errors', {})), [ruled], {
        environments: ['production'],
        crossSections: () => Promise.resolve(sections),
        lastStart: () => Promise.resolve(lastStart),
        now: new Date('2026-11-29T11:00:00Z'),
      });
    };
    const sections = [release('v2', '2026-11-29T10:00:00Z'), release('v1', '2026-11-28T10:00:00Z')];
    const first = (await runOf(sections))[0] as { outcome: string; plan: { requestId: string } };
    expect(first.outcome).toBe('start');
    const ownRun = `rollback-production-req-${first.plan.requestId}`;
    const tenMinutesAgo = new Date('2026-11-29T10:50:00Z');
    // The same episode: its own run, which a duplicate attaches to.
    expect((await runOf(sections, { at: tenMinutesAgo, runId: ownRun }))[0]).toMatchObject({ outcome: 'start' });
    // Another episode of the group, 10 minutes after it started a run.
    expect((await runOf(sections, { at: tenMinutesAgo, runId: 'rollback-production-req-am-older' }))[0]).toEqual({
      rule: 'errors',
      environment: 'production',
      outcome: 'not rolled back',
      reason:
        'this alert group started rollback-production-req-am-older at 2026-11-29T10:50:00.000Z; rule errors starts at most one rollback per alert group within 1h (cooldown)',
    });
    // Past the cooldown, or with none.
    expect(
      (await runOf(sections, { at: tenMinutesAgo, runId: 'rollback-production-req-am-older' }, '5m'))[0],
    ).toMatchObject({ outcome: 'start' });
    expect(
      (await runOf(sections, { at: tenMinutesAgo, runId: 'rollback-production-req-am-older' }, '0s'))[0],
    ).toMatchObject({ outcome: 'start' });
  });

  test('autoApprove is checked again against the manifest the workflow runs with', () => {
    const triggers = triggersSectionSchema.parse({
      auth: { bearerTokenEnv: 'AM_TOKEN' },
      rules: [
        { name: 'errors', match: { alertname: 'Errors' }, environment: 'production', autoApprove: true },
        { name: 'slow', match: { alertname: 'Slow' }, environmentLabel: 'env' },
      ],
    });
    const manifest = { triggers };
    const request = { environment: 'production', trigger: 'alert' as const, dryRun: false };
    expect(autoApprovalOf(manifest, { ...request, triggerRule: 'errors' })).toEqual({
      rule: 'errors',
      acceptDataLoss: false,
    });
    expect(autoApprovalOf(manifest, { ...request, triggerRule: 'slow' })).toBeUndefined();
    expect(autoApprovalOf(manifest, request)).toBeUndefined();
    expect(autoApprovalOf(manifest, { ...request, triggerRule: 'gone' })).toEqual({
      problem: 'the manifest has no trigger rule "gone" (triggers.rules: errors, slow)',
    });
    expect(autoApprovalOf(manifest, { ...request, trigger: 'manual', triggerRule: 'errors' })).toEqual({
      problem: "triggerRule names the rule of an alert-triggered run; this run's trigger is manual",
    });
    expect(autoApprovalOf(manifest, { ...request, environment: 'staging', triggerRule: 'errors' })).toEqual({
      problem: 'trigger rule "errors" rolls back production, not staging',
    });
    // A manifest that would make the rule ambiguous, or accept data loss with nothing to apply it to.
    const issues = (rules: unknown[]) =>
      triggersSectionSchema
        .safeParse({ auth: { bearerTokenEnv: 'T' }, rules })
        .error?.issues.map((i) => [i.path.join('.'), i.message]);
    expect(
      issues([
        { name: 'a', match: { x: 'y' }, environment: 'p' },
        { name: 'a', match: { x: 'z' }, environment: 'p' },
      ]),
    ).toEqual([['rules.1.name', 'a second rule is named "a"']]);
    expect(issues([{ name: 'b', match: { x: 'y' }, environment: 'p', acceptDataLoss: true }])).toEqual([
      ['rules.0.acceptDataLoss', 'acceptDataLoss applies only to a rule with autoApprove: true'],
    ]);
  });

  test('a resolved group, or an alert group in a new firing episode', async () => {
    const resolved = alertmanagerPayloadSchema.parse({ ...payload('Errors', {}), status: 'resolved', alerts: [] });
    expect(
      await decideTriggers(resolved, [rule], {
        environments: ['production'],
        crossSections: () => Promise.resolve([]),
        now: new Date(),
      }),
    ).toEqual([{ outcome: 'not rolled back', reason: 'the alert group is resolved, with no firing alert' }]);
    const first = (await decide('2026-11-29T11:00:00Z'))[0] as { plan: { requestId: string } };
    const again = await decideTriggers(
      alertmanagerPayloadSchema.parse(payload('Errors', {}, '2026-11-29T11:05:00Z')),
      [rule],
      {
        environments: ['production'],
        crossSections: () =>
          Promise.resolve([release('v2', '2026-11-29T10:00:00Z'), release('v1', '2026-11-28T10:00:00Z')]),
        now: new Date('2026-11-29T11:10:00Z'),
      },
    );
    expect((again[0] as { plan: { requestId: string } }).plan.requestId).not.toBe(first.plan.requestId);
  });
});
