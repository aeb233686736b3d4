// Drift alerts in Slack: a Block Kit message through `@slack/web-api` to the manifest's channel.
// Findings arrive already redacted (secret values never leave an agent), so the message can
// quote their details as they are.
import { WebClient, type KnownBlock } from '@slack/web-api';
import type { DriftNotice } from '../activities/drift';
import type { Manifest } from '../manifest/schema';
import { slackSafe } from '../notify/rollback-slack';

const SEVERITY_MARK: Record<string, string> = {
  critical: ':red_circle:',
  warning: ':large_orange_circle:',
  info: ':white_circle:',
};

/** The notifier for drift alerts, when the manifest names a Slack channel. */
export function driftNotifier(
  manifest: Manifest,
  env: NodeJS.ProcessEnv = process.env,
): { notify?: (notice: DriftNotice) => Promise<void> } {
  const slack = manifest.drift.slack;
  if (!slack) return {};
  let client: WebClient | undefined;
  return {
    async notify(notice) {
      const token = env[slack.tokenEnv];
      if (!token) throw new Error(`environment variable ${slack.tokenEnv} is not set (it holds the Slack bot token)`);
      client ??= new WebClient(token, {
        ...(slack.apiUrl ? { slackApiUrl: slack.apiUrl } : {}),
        retryConfig: { retries: 2 },
      });
      await client.chat.postMessage({
        channel: slack.channel,
        text: driftAlertText(notice),
        blocks: driftAlertBlocks(notice),
      });
    },
  };
}

/** The plain-text fallback (notifications, screen readers). */
export function driftAlertText(notice: DriftNotice): string {
  const { critical, warning, info } = notice.counts;
  if (notice.kind === 'resolved')
    return `Drift resolved: ${notice.from} → ${notice.to} is back under its thresholds (scan ${notice.scanId}).`;
  return `Drift: ${notice.from} → ${notice.to}: ${critical} critical, ${warning} warning, ${info} info (scan ${notice.scanId}).`;
}

export function driftAlertBlocks(notice: DriftNotice): KnownBlock[] {
  const header = notice.kind === 'resolved' ? 'Drift resolved' : 'Drift found';
  const blocks: KnownBlock[] = [
    { type: 'header', text: { type: 'plain_text', text: `${header}: ${notice.from} → ${notice.to}` } },
    { type: 'section', text: { type: 'mrkdwn', text: slackSafe(driftAlertText(notice)) } },
  ];
  if (notice.kind === 'alert' && notice.top.length > 0) {
    const lines = notice.top.map(
      (f) =>
        `${SEVERITY_MARK[f.severity] ?? ''} *${slackSafe(f.component)}* \`${slackSafe(f.subject)}\` ${f.change}: ${slackSafe(f.detail)}${f.state === 'new' ? ' _(new)_' : ''}`,
    );
    if (notice.more > 0) lines.push(`… and ${notice.more} more: \`rewind drift report ${notice.scanId}\``);
    // A section's text holds at most 3,000 characters.
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: lines.join('\n').slice(0, 2900) } });
  }
  blocks.push({
    type: 'context',
    elements: [{ type: 'mrkdwn', text: `\`rewind drift report ${notice.scanId}\`` }],
  });
  return blocks;
}
