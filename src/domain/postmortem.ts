// The postmortem template of a rollback (seed 6.9.3: the retrospective after a rollback, its
// lessons and improvements written down): what rewind knows filled in (summary, timeline, plan,
// approvals, checks, durations), what only people know left as prompts. Markdown, made of the
// same escaped pieces as the report (report.ts), so text from people or from outside shows as
// typed; `rewind rollback postmortem --format html` renders it to HTML.
import { formatDuration } from '../manifest/duration';
import { markdownSafe as md } from './display-text';
import { formatBytes } from './format';
import { describeOutcome } from './report';
import { describeTarget, type Phase, type RollbackStatus } from './rollback';

interface TimelineEvent {
  at: string;
  what: string;
}

/** Every dated event of the run, in time order (ties keep the order they were recorded in). */
function timeline(s: RollbackStatus): TimelineEvent[] {
  const events: TimelineEvent[] = [];
  for (const [phase, t] of Object.entries(s.phases) as [Phase, NonNullable<RollbackStatus['phases'][Phase]>][]) {
    events.push({ at: t.startedAt, what: `phase **${phase}** started` });
    if (t.endedAt)
      events.push({ at: t.endedAt, what: `phase **${phase}** ended (${formatDuration(t.durationMs ?? 0)})` });
  }
  for (const a of s.approvals)
    events.push({
      at: a.at,
      what: `approved by ${md(a.user)}${a.acceptDataLoss ? ', accepting data loss' : ''}${a.comment ? `: "${md(a.comment)}"` : ''}`,
    });
  for (const r of s.refusals) events.push({ at: r.at, what: `${r.action} by ${md(r.user)} refused: ${md(r.reason)}` });
  if (s.rejection)
    events.push({
      at: s.rejection.at,
      what: `rejected by ${md(s.rejection.user)}${s.rejection.comment ? `: "${md(s.rejection.comment)}"` : ''}`,
    });
  if (s.cancellation)
    events.push({
      at: s.cancellation.at,
      what: `cancelled by ${md(s.cancellation.user)} during ${s.cancellation.phase}${s.cancellation.reason ? `: "${md(s.cancellation.reason)}"` : ''}`,
    });
  if (s.autoApproval?.applied)
    events.push({ at: s.autoApproval.at, what: `approved by trigger rule ${md(s.autoApproval.rule)} (autoApprove)` });
  for (const st of Object.values(s.steps)) {
    if (st.startedAt) events.push({ at: st.startedAt, what: `**${md(st.component)}** restore started` });
    if (st.endedAt) events.push({ at: st.endedAt, what: `**${md(st.component)}** ${st.state}` });
  }
  return events
    .map((e, i) => ({ ...e, i }))
    .sort((a, b) => a.at.localeCompare(b.at) || a.i - b.i)
    .map(({ at, what }) => ({ at, what }));
}

const span = (s: RollbackStatus, from: Phase, to: Phase): number | undefined => {
  const start = s.phases[from]?.startedAt;
  const end = s.phases[to]?.endedAt;
  return start && end ? Date.parse(end) - Date.parse(start) : undefined;
};

/** The postmortem template of an ended (or running) rollback, in Markdown. */
export function renderPostmortem(s: RollbackStatus): string {
  const lines: string[] = [];
  const prompt = (text: string) => `_${text}_`;
  lines.push(`# Postmortem: rollback of ${md(s.environment)} to ${md(describeTarget(s.target))}`, '');
  lines.push(`Run ${md(s.workflowId)}. Written by: ${prompt('names')}. Meeting: ${prompt('date, attendees')}.`, '');

  lines.push('## Summary', '');
  lines.push(`- **Outcome:** ${s.state}${s.cause ? ` (${md(s.cause)})` : ''}`);
  lines.push(
    `- **Trigger:** ${md(s.trigger)}${s.triggerRule ? ` (rule ${md(s.triggerRule)})` : ''}, requested by ${md(s.requester)}${s.reason ? `: ${md(s.reason)}` : ''}`,
  );
  if (s.targetCrossSection)
    lines.push(
      `- **Rolled back to:** cross-section ${md(s.targetCrossSection.crossSectionId)}, taken ${md(s.targetCrossSection.time)}`,
    );
  lines.push(`- **Impact on users:** ${prompt('who was affected, how, for how long')}`);
  lines.push(`- **Detection:** ${prompt('how the problem was noticed (alert, report, drill)')}`);
  lines.push(`- **Root cause:** ${prompt('what went wrong in the release that was rolled back')}`, '');

  lines.push('## Durations', '', '| measure | time |', '| --- | --- |');
  const phases = Object.keys(s.phases) as Phase[];
  const total = phases.length ? span(s, phases[0]!, phases[phases.length - 1]!) : undefined;
  const rows: [string, number | undefined][] = [
    ['start to end (time to roll back)', total],
    ['waiting for approval', s.phases.approval?.durationMs],
    ['changing the environment (execute)', s.phases.execute?.durationMs],
    ['verifying', s.phases.verify?.durationMs],
    ['compensating', s.phases.compensate?.durationMs],
  ];
  for (const [measure, ms] of rows) if (ms !== undefined) lines.push(`| ${measure} | ${formatDuration(ms)} |`);
  lines.push('');

  lines.push('## Timeline (UTC)', '', '| time | event |', '| --- | --- |');
  for (const e of timeline(s)) lines.push(`| ${md(e.at)} | ${e.what} |`);
  lines.push(
    `| ${prompt('time')} | ${prompt('add what happened outside rewind: the deploy, the first alert, the decision to roll back')} |`,
  );
  lines.push('');

  lines.push('## What changed', '');
  if (s.plan) {
    const t = s.plan.totals;
    lines.push(
      `Plan: ${t.added} added, ${t.changed} changed, ${t.removed} removed, ${formatBytes(t.bytesToWrite)} to write${s.plan.destructive ? '; **it lost data**' : ''}. Safety cross-section ${md(s.plan.safetyCrossSectionId)}.`,
      '',
    );
    lines.push('| component | strategy | step | check | what it did |', '| --- | --- | --- | --- | --- |');
    for (const c of s.plan.components) {
      const step = s.steps[c.component];
      lines.push(
        `| ${md(c.component)} | ${md(c.strategy ?? '-')} | ${step?.state ?? '-'} | ${step?.verify ?? '-'} | ${md(describeOutcome(s, c.component) || step?.error || '')} |`,
      );
    }
  } else lines.push('No plan was made.');
  const compensated = Object.values(s.steps).filter((st) => st.compensation);
  if (compensated.length) {
    lines.push('', 'Compensation:', '');
    for (const st of compensated) lines.push(`- **${md(st.component)}**: ${md(st.compensation!)}`);
  }
  lines.push('');

  lines.push('## Lessons', '');
  lines.push(`- What went well: ${prompt('…')}`);
  lines.push(`- What went badly: ${prompt('…')}`);
  lines.push(`- Where we were lucky: ${prompt('…')}`, '');
  lines.push('## Action items', '', '| action | owner | due |', '| --- | --- | --- |');
  lines.push(`| ${prompt('…')} | ${prompt('…')} | ${prompt('…')} |`, '');
  return lines.join('\n');
}
