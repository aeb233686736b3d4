// Escalation: PagerDuty's own client (@pagerduty/pdjs) reaches a local HTTPS stand-in of the
// Events API v2; the escalation matrix picks the routing key by environment, severity and time
// of day; one incident per run (its id is the dedup key), triggered on approval timeout and on
// compensation, resolved on completion. A status page hears of each start and end.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pagerDutyAction, pagerDutySectionSchema, routeFor } from '../src/notify/escalation';
import { createTestEnv, eventually, type TestEnv } from './support/harness';
import { startPagerDutyApi, type PagerDutyApi } from './support/pagerduty-api';
import { tempDir } from './support/temp';

let env: TestEnv;
let pagerDuty: PagerDutyApi;
let statusPage: Server;
const certificates = tempDir('rewind-pagerduty-');
const statusEvents: { event: string; environment: string; workflowId: string }[] = [];

beforeAll(async () => {
  pagerDuty = await startPagerDutyApi(certificates);
  statusPage = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      if (req.headers.authorization === 'Bearer status-token') statusEvents.push(JSON.parse(raw) as never);
      res.statusCode = req.headers.authorization === 'Bearer status-token' ? 204 : 401;
      res.end();
    });
  });
  await new Promise<void>((resolve) => statusPage.listen(0, '127.0.0.1', resolve));
  process.env.PD_PRODUCTION = 'routing-key-production';
  process.env.PD_STAGING_NIGHT = 'routing-key-never';
  process.env.PD_STAGING = 'routing-key-staging';
  process.env.STATUS_TOKEN = 'status-token';
  env = await createTestEnv({
    environments: { production: { config: { format: 'config' } }, staging: { config: { format: 'config' } } },
    faults: { production: 'before-restore:config=fail' },
    policy: { approvalTimeout: '3s' },
    manifest: {
      pagerduty: {
        server: pagerDuty.server,
        caFile: pagerDuty.caFile,
        routes: [
          { environment: 'production', routingKeyEnv: 'PD_PRODUCTION' },
          // A route whose hours never come: the next one decides.
          { environment: 'staging', hours: '03:00-03:00', routingKeyEnv: 'PD_STAGING_NIGHT' },
          { environment: 'staging', routingKeyEnv: 'PD_STAGING' },
        ],
      },
      statusPage: {
        url: `http://127.0.0.1:${(statusPage.address() as AddressInfo).port}/hooks/rewind`,
        tokenEnv: 'STATUS_TOKEN',
      },
    },
  });
  for (const environment of ['production', 'staging']) {
    const file = path.join(env.componentPath(environment, 'config'), 'app.yaml');
    writeFileSync(file, 'release: v1\n');
    await env.snapshot(environment, { version: 'v1' });
    writeFileSync(file, 'release: v2\n');
  }
});

afterAll(async () => {
  await env?.teardown();
  await pagerDuty?.close();
  await new Promise<void>((resolve) => statusPage?.close(() => resolve()));
});

const rollback = (environment: string) =>
  env.startRollback({ environment, target: { kind: 'version', version: 'v1' }, requester: 'alice' });

describe('escalation', () => {
  test('a run awaiting approval opens its incident, the wait running out escalates it, and a completed run resolves its own', async () => {
    const late = await rollback('staging');
    expect((await env.finalStatus(late)).status.state).toBe('timed-out');
    await eventually(
      () => pagerDuty.events.filter((e) => e.dedup_key === late).length >= 2 || undefined,
      'the escalation',
    );
    expect(pagerDuty.events.filter((e) => e.dedup_key === late)).toEqual([
      expect.objectContaining({
        routing_key: 'routing-key-staging',
        event_action: 'trigger',
        payload: expect.objectContaining({ severity: 'warning' }),
      }),
      expect.objectContaining({
        routing_key: 'routing-key-staging',
        event_action: 'trigger',
        payload: expect.objectContaining({
          severity: 'error',
          source: 'rewind/staging',
          summary: expect.stringMatching(/timed-out/),
        }),
      }),
    ]);

    const onTime = await rollback('staging');
    await env.waitFor(onTime, (s) => s.state === 'awaiting-approval');
    await env.client.decide(onTime, 'approve', { user: 'bob' });
    expect((await env.finalStatus(onTime)).status.state).toBe('completed');
    expect(pagerDuty.events.filter((e) => e.dedup_key === onTime).map((e) => e.event_action)).toEqual([
      'trigger',
      'resolve',
    ]);

    expect(statusEvents.filter((e) => e.workflowId === late).map((e) => e.event)).toEqual(['started', 'timed-out']);
    expect(statusEvents.filter((e) => e.workflowId === onTime).map((e) => e.event)).toEqual(['started', 'completed']);
  });

  test('a compensated rollback triggers an incident on the production route', async () => {
    const id = await rollback('production');
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob' });
    expect((await env.finalStatus(id)).status.state).toBe('compensated');
    const events = pagerDuty.events.filter((e) => e.dedup_key === id);
    expect(events).toEqual([
      expect.objectContaining({ event_action: 'trigger', payload: expect.objectContaining({ severity: 'warning' }) }),
      expect.objectContaining({
        routing_key: 'routing-key-production',
        event_action: 'trigger',
        payload: expect.objectContaining({ severity: 'error' }),
        links: [expect.objectContaining({ href: expect.stringContaining(id) })],
      }),
    ]);
  });

  test('the matrix: by environment, severity, day and hours in a time zone; what each event sends', () => {
    const matrix = pagerDutySectionSchema.parse({
      routes: [
        { environment: 'production', severities: ['critical'], routingKeyEnv: 'PAGE_NOW' },
        {
          environment: 'production',
          days: ['mon', 'tue', 'wed', 'thu', 'fri'],
          hours: '09:00-18:00',
          timeZone: 'Europe/Berlin',
          routingKeyEnv: 'TEAM_DAYTIME',
        },
        { environment: 'production', hours: '22:00-06:00', timeZone: 'Europe/Berlin', routingKeyEnv: 'NIGHT_DESK' },
      ],
    })!;
    // Monday 2026-11-30, 08:30 UTC is 09:30 in Berlin.
    expect(routeFor(matrix, 'production', 'critical', new Date('2026-11-30T08:30:00Z'))).toBe('PAGE_NOW');
    expect(routeFor(matrix, 'production', 'error', new Date('2026-11-30T08:30:00Z'))).toBe('TEAM_DAYTIME');
    expect(routeFor(matrix, 'production', 'error', new Date('2026-11-30T07:30:00Z'))).toBeUndefined();
    expect(routeFor(matrix, 'production', 'error', new Date('2026-11-30T23:30:00Z'))).toBe('NIGHT_DESK');
    // Saturday daytime: no weekday route, not night.
    expect(routeFor(matrix, 'production', 'error', new Date('2026-11-28T12:00:00Z'))).toBeUndefined();
    expect(routeFor(matrix, 'staging', 'critical', new Date('2026-11-30T08:30:00Z'))).toBeUndefined();
    expect(
      ['started', 'awaiting-approval', 'approved', 'timed-out', 'compensated', 'failed', 'completed'].map((e) =>
        pagerDutyAction(e as never),
      ),
    ).toEqual([
      undefined,
      { action: 'trigger', severity: 'warning' },
      undefined,
      { action: 'trigger', severity: 'error' },
      { action: 'trigger', severity: 'error' },
      { action: 'trigger', severity: 'critical' },
      { action: 'resolve' },
    ]);
  });
});
