// Escalation (seed 6.9, 7.5.2): PagerDuty Events API v2 through PagerDuty's own client
// (@pagerduty/pdjs), routed by an escalation matrix of environment, severity and time of day;
// and a status page told, by a plain JSON webhook, when a rollback starts and ends.
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { event as pagerDutyEvent, type Severity } from '@pagerduty/pdjs/build/src/events';
import { z } from 'zod';
import { describeTarget, type RollbackStatus } from '../domain/rollback';
import type { RollbackEvent } from './rollback-slack';

const envVar = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be the name of an environment variable');
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const SEVERITIES = ['critical', 'error', 'warning', 'info'] as const;

export const pagerDutySectionSchema = z
  .strictObject({
    server: z
      .string()
      .regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, 'must be a host[:port]')
      .default('events.pagerduty.com')
      .describe("The Events API's host (a proxy's, say)."),
    caFile: z.string().min(1).optional().describe('An extra CA certificate (PEM) to trust, for a TLS proxy.'),
    routes: z
      .array(
        z.strictObject({
          environment: z.string().min(1).optional().describe('Default: any.'),
          severities: z.array(z.enum(SEVERITIES)).min(1).optional().describe('Default: any.'),
          days: z.array(z.enum(DAYS)).min(1).optional().describe('Default: every day.'),
          hours: z
            .string()
            .regex(/^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$/, 'must be HH:MM-HH:MM, e.g. 09:00-18:00')
            .optional()
            .describe('Default: all day. An end before the start wraps past midnight.'),
          timeZone: z.string().default('UTC'),
          routingKeyEnv: envVar.describe("Variable holding the PagerDuty service's integration (routing) key."),
        }),
      )
      .min(1)
      .describe('The escalation matrix: the first route that matches decides the routing key.'),
  })
  .optional()
  .describe('PagerDuty: trigger on approval timeout, compensation and failure; resolve on completion.');
export type PagerDutySection = z.output<typeof pagerDutySectionSchema>;

export const statusPageSectionSchema = z
  .strictObject({
    url: z.url(),
    tokenEnv: envVar.optional().describe('Variable holding a bearer token to send.'),
  })
  .optional()
  .describe('A status page webhook: a JSON POST when a rollback starts and when it ends.');
export type StatusPageSection = z.output<typeof statusPageSectionSchema>;

/**
 * What PagerDuty hears of an event. A run awaiting approval opens its incident at `warning`
 * (someone must approve: route it to a low-urgency service if that is enough); the wait running
 * out escalates it to `error`, as does compensation; a failure is `critical`. The run's incident
 * is resolved when it ends without needing anyone: completed, rejected or cancelled.
 */
export function pagerDutyAction(
  event: RollbackEvent,
): { action: 'trigger'; severity: Severity } | { action: 'resolve' } | undefined {
  if (event === 'awaiting-approval') return { action: 'trigger', severity: 'warning' };
  if (event === 'failed') return { action: 'trigger', severity: 'critical' };
  if (event === 'compensated' || event === 'timed-out') return { action: 'trigger', severity: 'error' };
  if (event === 'completed' || event === 'rejected' || event === 'cancelled') return { action: 'resolve' };
  return undefined;
}

function clockIn(timeZone: string, at: Date): { day: (typeof DAYS)[number]; minutes: number } {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(at);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return {
    day: get('weekday').toLowerCase().slice(0, 3) as (typeof DAYS)[number],
    minutes: Number(get('hour')) * 60 + Number(get('minute')),
  };
}

/** The route (its routing key's variable) for an environment and severity at a moment, if any. */
export function routeFor(
  pagerDuty: NonNullable<PagerDutySection>,
  environment: string,
  severity: Severity,
  at: Date,
): string | undefined {
  for (const route of pagerDuty.routes) {
    if (route.environment && route.environment !== environment) continue;
    if (route.severities && !route.severities.includes(severity)) continue;
    const { day, minutes } = clockIn(route.timeZone, at);
    if (route.days && !route.days.includes(day)) continue;
    if (route.hours) {
      const [from, to] = route.hours.split('-').map((t) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3))) as [
        number,
        number,
      ];
      const inside = from <= to ? minutes >= from && minutes < to : minutes >= from || minutes < to;
      if (!inside) continue;
    }
    return route.routingKeyEnv;
  }
  return undefined;
}

/**
 * Sends what PagerDuty should hear of a rollback event: one incident per run (its workflow id
 * is the dedup key), triggered when the run needs people, resolved when it completes.
 */
export async function escalate(
  pagerDuty: NonNullable<PagerDutySection>,
  status: RollbackStatus,
  event: RollbackEvent,
  options: { env: NodeJS.ProcessEnv; webUi: string; now?: Date },
): Promise<'sent' | 'nothing to send' | 'no route'> {
  const what = pagerDutyAction(event);
  if (!what) return 'nothing to send';
  // A resolve goes where the incident was opened: the approval wait's route.
  const severity = what.action === 'trigger' ? what.severity : 'warning';
  const keyEnv = routeFor(pagerDuty, status.environment, severity, options.now ?? new Date());
  if (!keyEnv) return 'no route';
  const routingKey = options.env[keyEnv];
  if (!routingKey) throw new Error(`environment variable ${keyEnv} is not set (a PagerDuty routing key)`);
  const summary = `Rollback of ${status.environment} to ${describeTarget(status.target)}: ${event}${status.cause ? `: ${status.cause}` : ''}`;
  const response = await pagerDutyEvent({
    server: pagerDuty.server,
    ...(pagerDuty.caFile ? { agent: new Agent({ ca: readFileSync(pagerDuty.caFile) }) } : {}),
    data: {
      routing_key: routingKey,
      event_action: what.action,
      dedup_key: status.workflowId,
      payload: {
        summary: summary.slice(0, 1024),
        source: `rewind/${status.environment}`,
        severity,
        component: status.environment,
        group: 'rewind',
        class: 'rollback',
        custom_details: {
          workflowId: status.workflowId,
          state: status.state,
          phase: status.phase,
          requester: status.requester,
        },
      },
      links: [{ href: options.webUi, text: 'Temporal Web UI' }],
    },
  });
  if (!response.ok)
    throw new Error(`PagerDuty answered ${response.status}: ${JSON.stringify(response.data).slice(0, 300)}`);
  return 'sent';
}

/** Tells the status page that a rollback started or ended. */
export async function tellStatusPage(
  page: NonNullable<StatusPageSection>,
  status: RollbackStatus,
  event: RollbackEvent,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const token = page.tokenEnv ? env[page.tokenEnv] : undefined;
  const response = await fetch(page.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({
      source: 'rewind',
      event,
      environment: status.environment,
      target: describeTarget(status.target),
      state: status.state,
      workflowId: status.workflowId,
      at: new Date().toISOString(),
    }),
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`the status page answered ${response.status}`);
}
