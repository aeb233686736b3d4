// A rollback in Slack: one message per run in the environment's channel, posted when the run
// starts and updated as it goes (Approve and Reject buttons while it awaits approval, then who
// decided, each phase with its time, the result), and a reply in its thread for each event
// (seed 6.9.1). Pure: the blocks and texts; the announce activity sends them.
import type { KnownBlock } from '@slack/web-api';
import { terminalSafe } from '../domain/display-text';
import { formatBytes } from '../domain/format';
import { describeTarget, type RollbackStatus } from '../domain/rollback';
import { z } from 'zod';

export const APPROVE_ACTION = 'rewind_approve';
export const REJECT_ACTION = 'rewind_reject';

export const ROLLBACK_EVENTS = [
  'started',
  'awaiting-approval',
  'approved',
  'phase',
  'completed',
  'compensated',
  'failed',
  'rejected',
  'timed-out',
  'cancelled',
] as const;
export type RollbackEvent = (typeof ROLLBACK_EVENTS)[number];

/** Events that also get a line in the message's thread (a phase only updates the message). */
export const THREADED_EVENTS: readonly RollbackEvent[] = ROLLBACK_EVENTS.filter((e) => e !== 'phase');

export const slackSectionSchema = z
  .strictObject({
    channels: z
      .record(z.string(), z.string().min(1))
      .describe("Channel per environment (`production: '#ops-prod'`); `'*'` for the others."),
    tokenEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
      .default('SLACK_BOT_TOKEN')
      .describe("Environment variable holding the bot token (the control worker's)."),
    signingSecretEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
      .default('SLACK_SIGNING_SECRET')
      .describe("Environment variable holding the app's signing secret (the API's), to verify interactions."),
    apiUrl: z.url().optional().describe("Slack's Web API base URL (for a proxy). Default: https://slack.com/api/."),
  })
  .optional()
  .describe('Rollbacks in Slack: a message per run with Approve and Reject buttons, updated as it goes.');
export type SlackSection = z.output<typeof slackSectionSchema>;

export function slackChannel(slack: SlackSection, environment: string): string | undefined {
  return slack?.channels[environment] ?? slack?.channels['*'];
}

/** Slack's mrkdwn escapes only &, < and >; backticks would end a code span early. */
export function slackSafe(text: string): string {
  return terminalSafe(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/`/g, "'");
}

const STATE_LINE: Record<string, string> = {
  running: ':arrows_counterclockwise: running',
  'awaiting-approval': ':hourglass_flowing_sand: awaiting approval',
  completed: ':white_check_mark: completed',
  compensated: ':leftwards_arrow_with_hook: compensated: everything it touched is back',
  failed: ':x: failed',
  rejected: ':no_entry: rejected',
  'timed-out': ':alarm_clock: timed out waiting for approval',
  cancelled: ':octagonal_sign: cancelled',
};

/** The one-line summary: notifications, screen readers, the thread. */
export function rollbackText(status: RollbackStatus, event: RollbackEvent): string {
  const what = `Rollback of ${status.environment} to ${describeTarget(status.target)}`;
  switch (event) {
    case 'started':
      return `${what} started by ${status.requester} (${status.trigger}).`;
    case 'awaiting-approval':
      return `${what} awaits approval${status.approvalDeadline ? ` until ${status.approvalDeadline}` : ''}.`;
    case 'approved':
      return `${what} approved by ${status.approvals.map((a) => a.user).join(', ')}; executing.`;
    case 'phase':
      return `${what}: ${status.phase}.`;
    default:
      return `${what}: ${event}${status.cause ? `: ${status.cause}` : ''}.`;
  }
}

/** The run's message as it stands after `event`. */
export function rollbackBlocks(status: RollbackStatus, event: RollbackEvent, links: { webUi: string }): KnownBlock[] {
  const blocks: KnownBlock[] = [
    {
      type: 'header',
      text: {
        type: 'plain_text',
        text: `Rollback: ${status.environment} → ${describeTarget(status.target)}`.slice(0, 150),
      },
    },
    {
      type: 'section',
      fields: [
        { type: 'mrkdwn', text: `*State*\n${STATE_LINE[status.state] ?? status.state}` },
        { type: 'mrkdwn', text: `*Requester*\n${slackSafe(status.requester)} (${status.trigger})` },
        { type: 'mrkdwn', text: `*Target*\n${slackSafe(describeTarget(status.target))}` },
        { type: 'mrkdwn', text: `*Reason*\n${slackSafe(status.reason ?? '—')}` },
      ],
    },
  ];
  if (status.plan) {
    const lines = status.plan.components.map((c) => {
      const counts = `${c.added} added, ${c.changed} changed, ${c.removed} removed, ${formatBytes(c.bytesToWrite)}`;
      const losses = c.impact?.find((i) => i.strategy === c.strategy)?.losses ?? [];
      return `• *${slackSafe(c.component)}*${c.strategy ? ` (${slackSafe(c.strategy)})` : ''}: ${counts}${losses.length ? `\n  :warning: loses data: ${slackSafe(losses.join('; '))}` : ''}`;
    });
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `*Plan*\n${lines.join('\n')}`.slice(0, 2900) } });
    if (status.plan.destructive)
      blocks.push({
        type: 'section',
        text: {
          type: 'mrkdwn',
          text: ':warning: *This plan loses data.* Approving here accepts it only if the requester already did; otherwise approve with `rewind rollback approve --accept-data-loss`.',
        },
      });
  }
  const phases = Object.entries(status.phases).map(
    ([phase, t]) => `${phase} ${t.durationMs !== undefined ? `${(t.durationMs / 1000).toFixed(1)} s` : '…'}`,
  );
  if (phases.length) blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: phases.join(' · ') }] });
  const decided = [
    ...status.approvals.map((a) => `approved by *${slackSafe(a.user)}*${a.comment ? `: ${slackSafe(a.comment)}` : ''}`),
    ...(status.rejection ? [`rejected by *${slackSafe(status.rejection.user)}*`] : []),
    ...(status.cancellation ? [`cancelled by *${slackSafe(status.cancellation.user)}*`] : []),
  ];
  if (decided.length) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: decided.join('\n') } });
  if (status.state === 'awaiting-approval' && event !== 'phase')
    blocks.push({
      type: 'actions',
      block_id: 'rewind_decision',
      elements: [
        {
          type: 'button',
          action_id: APPROVE_ACTION,
          style: 'primary',
          text: { type: 'plain_text', text: 'Approve' },
          value: status.workflowId,
        },
        {
          type: 'button',
          action_id: REJECT_ACTION,
          style: 'danger',
          text: { type: 'plain_text', text: 'Reject' },
          value: status.workflowId,
        },
      ],
    });
  if (status.cause && status.state !== 'running' && status.state !== 'awaiting-approval')
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: `*Why*: ${slackSafe(status.cause)}`.slice(0, 2900) },
    });
  blocks.push({
    type: 'context',
    elements: [
      {
        type: 'mrkdwn',
        text: `<${links.webUi}|${slackSafe(status.workflowId)}> · \`rewind rollback ${['running', 'awaiting-approval'].includes(status.state) ? 'status' : 'report'} ${slackSafe(status.workflowId)}\``,
      },
    ],
  });
  return blocks;
}
