// The Markdown rollback report: what was planned, done and verified, and how long each phase
// took. Pure, so the workflow renders it from its own state.
import { formatDuration } from '../manifest/duration';
import { describeTarget, PHASES, type Phase, type RollbackStatus } from './rollback';

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

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
  lines.push(`- **Outcome:** ${s.dryRun ? 'dry run (plan only)' : OUTCOME[s.state]}`);
  if (s.cause) lines.push(`- **Cause:** ${s.cause}`);
  lines.push(`- **Requested by:** ${s.requester} (trigger: ${s.trigger})${s.reason ? `, reason: ${s.reason}` : ''}`);
  if (s.approvals.length) {
    lines.push(`- **Approved by:** ${s.approvals.map((a) => `${a.user} at ${a.at}${a.acceptDataLoss ? ' (accepting data loss)' : ''}`).join(', ')}`);
  }
  if (s.acceptDataLoss) lines.push('- **Data loss accepted by the requester** when starting the rollback');
  if (s.rejection) {
    lines.push(`- **Rejected by:** ${s.rejection.user} at ${s.rejection.at}${s.rejection.comment ? ` ("${s.rejection.comment}")` : ''}`);
  }
  if (s.plan) lines.push(`- **Safety cross-section:** ${s.plan.safetyCrossSectionId}`);
  lines.push('');

  lines.push('## Phases', '', '| phase | started | duration |', '| --- | --- | --- |');
  for (const phase of [...PHASES, 'compensate'] as Phase[]) {
    const t = s.phases[phase];
    if (t) lines.push(`| ${phase} | ${t.startedAt} | ${t.durationMs === undefined ? 'running' : formatDuration(t.durationMs)} |`);
  }
  lines.push('');

  if (s.plan) {
    lines.push('## Plan', '');
    lines.push(`Order: ${s.plan.order.map((wave) => wave.join(' + ')).join(' → ')}`, '');
    lines.push('| component | added | changed | removed | mode | bytes to write | step | verify |', '| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const c of s.plan.components) {
      const step = s.steps[c.component];
      const outcome = step?.outcome?.alreadyAtTarget ? ' (already at target)' : '';
      lines.push(
        `| ${c.component} | ${c.added} | ${c.changed} | ${c.removed} | ${c.modeChanged} | ${formatBytes(c.bytesToWrite)} | ${step?.state ?? '-'}${outcome} | ${step?.verify ?? '-'} |`,
      );
    }
    lines.push('');
    for (const c of s.plan.components) {
      if (c.preview.length === 0 && !c.impact) continue;
      lines.push(`### ${c.component} (${c.path})`, '');
      for (const i of c.impact ?? []) {
        const state = !i.available ? `not possible: ${i.unavailable ?? '?'}` : i.destructive ? 'loses data' : 'loses no data';
        lines.push(`- strategy **${i.strategy}**${i.strategy === c.strategy ? ' (chosen)' : ''}: ${state}${i.keeps ? `; keeps ${i.keeps}` : ''}`);
        for (const loss of i.losses) lines.push(`  - ${loss}`);
      }
      if (c.impact) lines.push('');
      for (const p of c.preview) lines.push(`- ${p.op} \`${p.path}\``);
      if (c.more > 0) lines.push(`- … and ${c.more} more`);
      lines.push(`- Full list: \`${c.changeListFile}\``, '');
    }
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
    for (const r of s.refusals) lines.push(`- ${r.action} by ${r.user} at ${r.at}: ${r.reason}`);
    lines.push('');
  }
  return lines.join('\n');
}
