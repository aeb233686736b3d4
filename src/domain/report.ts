// The Markdown rollback report: what was planned, done and verified, and how long each phase
// took. Pure, so the workflow renders it from its own state.
import { formatDuration } from '../manifest/duration';
import { presenterOf } from '../components/registry';
import { formatBytes } from './format';
import { refusalTimes } from './rollback-rules';
import { describeTarget, PHASES, type Phase, type RollbackStatus } from './rollback';

const OUTCOME: Record<RollbackStatus['state'], string> = {
  running: 'still running',
  'awaiting-approval': 'awaiting approval',
  completed: 'completed',
  compensated: 'failed and compensated: the environment is back at its state before the rollback',
  rejected: 'rejected: nothing was changed',
  'timed-out': 'approval timed out: nothing was changed',
  failed: 'failed',
  cancelled: 'cancelled: nothing was changed',
};

export function renderRollbackReport(s: RollbackStatus): string {
  const lines: string[] = [];
  const target = s.targetCrossSection;
  lines.push(`# Rollback report: ${s.workflowId}`, '');
  lines.push(`- **Environment:** ${s.environment}`);
  lines.push(
    `- **Target:** ${describeTarget(s.target)}${target ? ` (cross-section ${target.crossSectionId}, taken ${target.time})` : ''}`,
  );
  const cancelledThenCompensated = s.state === 'compensated' && s.cancellation !== undefined;
  const outcome = cancelledThenCompensated
    ? 'cancelled, then compensated: the environment is back at its state before the rollback'
    : OUTCOME[s.state];
  lines.push(`- **Outcome:** ${s.dryRun ? 'dry run (plan only)' : outcome}`);
  if (s.cause) lines.push(`- **Cause:** ${s.cause}`);
  lines.push(`- **Requested by:** ${s.requester} (trigger: ${s.trigger})${s.reason ? `, reason: ${s.reason}` : ''}`);
  if (s.approvals.length) {
    lines.push(
      `- **Approved by:** ${s.approvals.map((a) => `${a.user} at ${a.at}${a.acceptDataLoss ? ' (accepting data loss)' : ''}`).join(', ')}`,
    );
  }
  if (s.acceptDataLoss) lines.push('- **Data loss accepted by the requester** when starting the rollback');
  if (s.cancellation) {
    const c = s.cancellation;
    lines.push(`- **Cancelled by:** ${c.user} at ${c.at}, during ${c.phase}${c.reason ? ` ("${c.reason}")` : ''}`);
  }
  if (s.rejection) {
    lines.push(
      `- **Rejected by:** ${s.rejection.user} at ${s.rejection.at}${s.rejection.comment ? ` ("${s.rejection.comment}")` : ''}`,
    );
  }
  if (s.plan) lines.push(`- **Safety cross-section:** ${s.plan.safetyCrossSectionId}`);
  lines.push('');

  lines.push('## Phases', '', '| phase | started | duration |', '| --- | --- | --- |');
  for (const phase of [...PHASES, 'compensate'] as Phase[]) {
    const t = s.phases[phase];
    if (t)
      lines.push(
        `| ${phase} | ${t.startedAt} | ${t.durationMs === undefined ? 'running' : formatDuration(t.durationMs)} |`,
      );
  }
  lines.push('');

  if (s.plan) {
    lines.push('## Plan', '');
    lines.push(`Order: ${s.plan.order.map((wave) => wave.join(' + ')).join(' → ')}`, '');
    lines.push(
      '| component | added | changed | removed | bytes to write | step | verify |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const c of s.plan.components) {
      const step = s.steps[c.component];
      const outcome = step?.outcome?.alreadyAtTarget ? ' (already at target)' : '';
      lines.push(
        `| ${c.component} | ${c.added} | ${c.changed}${presenterOf(c.kind).planCounts(c)} | ${c.removed} | ${formatBytes(c.bytesToWrite)} | ${step?.state ?? '-'}${outcome} | ${step?.verify ?? '-'} |`,
      );
    }
    lines.push('');
    for (const c of s.plan.components) {
      const differences = c.differences ?? [];
      if (differences.length === 0 && !c.impact) continue;
      lines.push(`### ${c.component} (${c.path})`, '');
      for (const i of c.impact ?? []) {
        const state = !i.available
          ? `not possible: ${i.unavailable ?? '?'}`
          : i.destructive
            ? 'loses data'
            : 'loses no data';
        lines.push(
          `- strategy **${i.strategy}**${i.strategy === c.strategy ? ' (chosen)' : ''}: ${state}${i.keeps ? `; keeps ${i.keeps}` : ''}`,
        );
        for (const loss of i.losses) lines.push(`  - ${loss}`);
      }
      if (c.impact) lines.push('');
      for (const d of differences) lines.push(`- ${d.op} \`${d.subject}\`${d.detail ? ` (${d.detail})` : ''}`);
      if (c.more > 0) lines.push(`- … and ${c.more} more`);
      lines.push(`- Full list: \`${c.changeListFile}\``, '');
    }
  }

  const done = Object.values(s.steps).filter((st) => st.outcome && !st.outcome.alreadyAtTarget);
  if (done.length) {
    lines.push('## Steps', '');
    for (const st of done) lines.push(`- **${st.component}**: ${describeOutcome(s, st.component)}`);
    lines.push('');
  }
  const compensated = Object.values(s.steps).filter((st) => st.compensation);
  if (compensated.length) {
    lines.push('## Compensation', '');
    for (const st of compensated) lines.push(`- **${st.component}**: ${st.compensation}`);
    lines.push('');
  }
  const notes = Object.values(s.steps).filter((st) => st.outcome?.note);
  if (notes.length) {
    lines.push('## Notes', '');
    for (const st of notes) lines.push(`- **${st.component}**: ${st.outcome!.note}`);
    lines.push('');
  }
  const errors = Object.values(s.steps).filter((st) => st.error);
  if (errors.length) {
    lines.push('## Errors', '');
    for (const st of errors) lines.push(`- **${st.component}** (${st.state}): ${st.error}`);
    lines.push('');
  }
  if (s.refusals.length) {
    lines.push('## Refused requests', '');
    for (const r of s.refusals) {
      const times = refusalTimes(r.count) ? ` (${refusalTimes(r.count)}, last recorded at ${r.lastAt ?? '?'})` : '';
      lines.push(`- ${r.action} by ${r.user} at ${r.at}${times}: ${r.reason}`);
    }
    if (s.refusalsOmitted) lines.push(`- … and ${s.refusalsOmitted} more, not recorded`);
    lines.push('');
  }
  return lines.join('\n');
}

/** What a step did, in its component kind's words. */
export function describeOutcome(s: RollbackStatus, component: string): string {
  const outcome = s.steps[component]?.outcome;
  if (!outcome) return '';
  if (outcome.alreadyAtTarget) return 'already at target';
  const kind = s.plan?.components.find((c) => c.component === component)?.kind ?? outcome.details?.kind ?? '';
  return presenterOf(kind).outcome(outcome);
}

/** A few lines for the Temporal Web UI's "current details" of a run. */
export function renderCurrentDetails(s: RollbackStatus): string {
  const lines = [
    `**${s.state}** in phase **${s.phase}**: ${s.environment} → ${describeTarget(s.target)}${s.dryRun ? ' (dry run)' : ''}`,
  ];
  lines.push(`requested by ${s.requester} (${s.trigger})${s.reason ? `: ${s.reason}` : ''}`);
  if (s.cause) lines.push(`cause: ${s.cause}`);
  if (s.plan) {
    const t = s.plan.totals;
    lines.push(
      `plan: +${t.added} ~${t.changed} -${t.removed}, ${formatBytes(t.bytesToWrite)} to write${s.plan.destructive ? ', LOSES DATA' : ''}`,
    );
  }
  if (s.state === 'awaiting-approval')
    lines.push(
      `approvals ${s.approvals.length}/${s.requiredApprovals ?? 1}; approvers: ${(s.approvers ?? []).join(', ')}`,
    );
  for (const st of Object.values(s.steps))
    if (st.state !== 'pending') lines.push(`- ${st.component}: ${st.state}${st.verify ? `, verify ${st.verify}` : ''}`);
  return lines.join('\n');
}
