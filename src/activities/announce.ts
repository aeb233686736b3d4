// What a rollback tells people as it goes, on the control worker: its message in the
// environment's Slack channel (posted once, then updated) with a thread line per event, and
// the audit log's record of what the run itself did (its end: completed, compensated, failed …).
// A failure here never fails the rollback: the workflow logs it and goes on.
import { Context } from '@temporalio/activity';
import { WebClient } from '@slack/web-api';
import { webUiLink } from '../api/access';
import { appendAudit, auditKey, planEvidence, type AuditEntry } from '../audit/audit-log';
import type { RollbackStatus } from '../domain/rollback';
import { repositoryPassword } from '../manifest/load';
import type { Manifest } from '../manifest/schema';
import { escalate, tellStatusPage } from '../notify/escalation';
import {
  rollbackBlocks,
  rollbackText,
  slackChannel,
  THREADED_EVENTS,
  type RollbackEvent,
} from '../notify/rollback-slack';
import type { Logger } from '../platform/logger';
import type { ProjectStore } from '../store/project-store';
import { recordAwaitingApproval, recordRollbackEnd, recordRollbackStart } from '../store/rollback-history';

export interface AnnounceDeps {
  manifest: Manifest;
  projectStore: () => Promise<ProjectStore>;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
}

/** The run's status as announced: without its report (the message links to it). */
export type AnnouncedStatus = Omit<RollbackStatus, 'report'>;

const ENDINGS: readonly RollbackEvent[] = ['completed', 'compensated', 'failed', 'rejected', 'timed-out', 'cancelled'];

export function createAnnounceActivities(deps: AnnounceDeps) {
  const { manifest } = deps;
  const env = deps.env ?? process.env;
  let slack: WebClient | undefined;
  let key: Buffer | undefined;

  async function announceRollback(req: { event: RollbackEvent; status: AnnouncedStatus }): Promise<void> {
    const status = req.status as RollbackStatus;
    const store = await deps.projectStore();
    // A retry (PagerDuty failed) must not post the thread line again.
    const firstAttempt = Context.current().info.attempt === 1;
    // Slack and the status page inform; a failure there is logged and goes no further.
    const inform = async (what: string, send: () => Promise<void>) => {
      if (!firstAttempt) return;
      await send().catch((err: unknown) =>
        deps.logger.warn({ err, event: req.event, workflowId: status.workflowId }, `could not tell ${what}`),
      );
    };
    await inform('Slack', () => toSlack(store, status, req.event));
    if (manifest.statusPage && (req.event === 'started' || ENDINGS.includes(req.event)))
      await inform('the status page', () => tellStatusPage(manifest.statusPage!, status, req.event, env));
    // PagerDuty escalates: a failure fails the activity, which is tried again.
    if (manifest.pagerduty) {
      const sent = await escalate(manifest.pagerduty, status, req.event, {
        env,
        webUi: webUiLink(manifest, status.workflowId),
      });
      if (sent === 'no route')
        deps.logger.warn({ environment: status.environment, event: req.event }, 'no PagerDuty route matches');
    }
    // Last, and once: the run's history (metrics and stats read it), and the audit log's record
    // of a rule's own approval and of how the run ended.
    if (req.event === 'started') await recordRollbackStart(store, status, new Date());
    if (req.event === 'awaiting-approval') await recordAwaitingApproval(store, status, new Date());
    if (ENDINGS.includes(req.event)) await recordRollbackEnd(store, status, new Date());
    const auto = status.autoApproval;
    if (req.event === 'approved' && auto?.applied)
      await auditOnce(store, {
        actor: `trigger rule ${auto.rule}`,
        // A drill's approval comes from the manifest's drills section, not from an alert.
        door: status.trigger === 'drill' ? 'workflow' : 'alertmanager',
        action: 'rollback.approve',
        outcome: 'accepted',
        runId: status.workflowId,
        environment: status.environment,
        reason:
          status.trigger === 'drill'
            ? "a drill's rollbacks approve themselves (the manifest's drills section)"
            : `the manifest's trigger rule ${auto.rule} approves its own rollbacks (autoApprove)`,
        ...(status.plan ? { evidence: { plan: planEvidence(status.plan) } } : {}),
      });
    if (ENDINGS.includes(req.event))
      await auditOnce(store, {
        actor: 'rewind',
        door: 'workflow',
        action: `rollback.${req.event}`,
        outcome: 'recorded',
        runId: status.workflowId,
        environment: status.environment,
        ...(status.cause ? { reason: status.cause.slice(0, 2000) } : {}),
        detail: { phase: status.phase, requester: status.requester, approvals: status.approvals.map((a) => a.user) },
      });
  }

  /** Appends the row unless the run has one of its action and door already (a retried activity). */
  async function auditOnce(store: ProjectStore, entry: AuditEntry): Promise<void> {
    const recorded = await store.query('SELECT 1 FROM audit_log WHERE run_id = $1 AND action = $2 AND door = $3', [
      entry.runId,
      entry.action,
      entry.door,
    ]);
    if (recorded.length > 0) return;
    key ??= auditKey(repositoryPassword(manifest, env));
    await appendAudit(store, key, entry);
  }

  /** The run's message: posted once, then updated; a line in its thread for the events that get one. */
  async function toSlack(store: ProjectStore, status: RollbackStatus, event: RollbackEvent): Promise<void> {
    const channel = manifest.slack && slackChannel(manifest.slack, status.environment);
    if (!manifest.slack || !channel) return;
    const token = env[manifest.slack.tokenEnv];
    if (!token) {
      deps.logger.warn({ tokenEnv: manifest.slack.tokenEnv }, 'no Slack bot token: the rollback is not announced');
      return;
    }
    slack ??= new WebClient(token, {
      ...(manifest.slack.apiUrl ? { slackApiUrl: manifest.slack.apiUrl } : {}),
      retryConfig: { retries: 2 },
    });
    const text = rollbackText(status, event);
    const blocks = rollbackBlocks(status, event, { webUi: webUiLink(manifest, status.workflowId) });
    const [posted] = await store.query<{ channel: string; ts: string }>(
      'SELECT channel, ts FROM slack_messages WHERE run_id = $1',
      [status.workflowId],
    );
    let message = posted;
    if (message) await slack.chat.update({ channel: message.channel, ts: message.ts, text, blocks });
    else {
      const answer = await slack.chat.postMessage({ channel, text, blocks });
      message = { channel: answer.channel ?? channel, ts: answer.ts ?? '' };
      await store.query(
        'INSERT INTO slack_messages (run_id, channel, ts) VALUES ($1, $2, $3) ON CONFLICT (run_id) DO NOTHING',
        [status.workflowId, message.channel, message.ts],
      );
    }
    if (THREADED_EVENTS.includes(event) && message.ts)
      await slack.chat.postMessage({ channel: message.channel, thread_ts: message.ts, text });
  }

  return { announceRollback };
}

export type AnnounceActivities = ReturnType<typeof createAnnounceActivities>;
