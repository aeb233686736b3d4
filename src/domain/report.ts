// The Markdown rollback report: what was planned, done and verified, and how long each phase
// took. Pure, so the workflow renders it from its own state. Every text that comes from a person
// or from outside (names, reasons, labels, paths, errors) goes through `md` (markdownSafe) or
// `code` (markdownCode): it shows as typed and never becomes HTML, structure or a terminal command.
import { formatDuration } from '../manifest/duration';
import { presenterOf } from '../components/registry';
import { markdownCode as code, markdownSafe as md, terminalSafe } from './display-text';
import { formatBytes } from './format';
import { refusalTimes } from './rollback-rules';
import { describeTarget, type Phase, type PhaseTiming, type RollbackPlan, type RollbackStatus } from './rollback';

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
  lines.push(`# Rollback report: ${md(s.workflowId)}`, '');
  lines.push(`- **Environment:** ${md(s.environment)}`);
  lines.push(
    `- **Target:** ${md(describeTarget(s.target))}${target ? ` (cross-section ${md(target.crossSectionId)}, taken ${md(target.time)})` : ''}`,
  );
  const cancelledThenCompensated = s.state === 'compensated' && s.cancellation !== undefined;
  const outcome = cancelledThenCompensated
    ? 'cancelled, then compensated: the environment is back at its state before the rollback'
    : OUTCOME[s.state];
  lines.push(`- **Outcome:** ${s.dryRun ? 'dry run (plan only)' : outcome}`);
  if (s.cause) lines.push(`- **Cause:** ${md(s.cause)}`);
  lines.push(
    `- **Requested by:** ${md(s.requester)} (trigger: ${md(s.trigger)})${s.reason ? `, reason: ${md(s.reason)}` : ''}`,
  );
  if (s.approvals.length) {
    lines.push(
      `- **Approved by:** ${s.approvals.map((a) => `${md(a.user)} at ${md(a.at)}${a.acceptDataLoss ? ' (accepting data loss)' : ''}`).join(', ')}`,
    );
  }
  if (s.acceptDataLoss) lines.push('- **Data loss accepted by the requester** when starting the rollback');
  if (s.cancellation) {
    const c = s.cancellation;
    lines.push(
      `- **Cancelled by:** ${md(c.user)} at ${md(c.at)}, during ${c.phase}${c.reason ? ` ("${md(c.reason)}")` : ''}`,
    );
  }
  if (s.rejection) {
    const r = s.rejection;
    lines.push(`- **Rejected by:** ${md(r.user)} at ${md(r.at)}${r.comment ? ` ("${md(r.comment)}")` : ''}`);
  }
  if (s.plan) lines.push(`- **Safety cross-section:** ${md(s.plan.safetyCrossSectionId)}`);
  lines.push('');

  lines.push('## Phases', '', '| phase | started | duration |', '| --- | --- | --- |');
  // In the order they ran (the order phases were entered), so compensation comes before complete.
  const ran = Object.entries(s.phases) as [Phase, PhaseTiming][];
  for (const [phase, t] of ran) {
    lines.push(
      `| ${phase} | ${md(t.startedAt)} | ${t.durationMs === undefined ? 'running' : formatDuration(t.durationMs)} |`,
    );
  }
  lines.push('');

  if (s.plan) {
    lines.push('## Plan', '');
    lines.push(`Order: ${planOrder(s.plan, md).replace(/^order: /, '')}`, '');
    for (const line of planStages(s.plan, md)) lines.push(`- ${line}`);
    if (s.plan.waves || s.plan.verification?.checks.length) lines.push('');
    lines.push(
      '| component | added | changed | removed | bytes to write | step | verify |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const c of s.plan.components) {
      const step = s.steps[c.component];
      const outcome = step?.outcome?.alreadyAtTarget ? ' (already at target)' : '';
      lines.push(
        `| ${md(c.component)} | ${c.added} | ${c.changed}${md(presenterOf(c.kind).planCounts(c))} | ${c.removed} | ${formatBytes(c.bytesToWrite)} | ${step?.state ?? '-'}${outcome} | ${step?.verify ?? '-'} |`,
      );
    }
    lines.push('');
    for (const c of s.plan.components) {
      const differences = c.differences ?? [];
      if (differences.length === 0 && !c.impact && !c.toolCheck) continue;
      lines.push(`### ${md(c.component)} (${md(c.path)})`, '');
      for (const i of c.impact ?? []) {
        const state = !i.available
          ? `not possible: ${md(i.unavailable ?? '?')}`
          : i.destructive
            ? 'loses data'
            : 'loses no data';
        lines.push(
          `- strategy **${md(i.strategy)}**${i.strategy === c.strategy ? ' (chosen)' : ''}: ${state}${i.keeps ? `; keeps ${md(i.keeps)}` : ''}`,
        );
        for (const loss of i.losses) lines.push(`  - ${md(loss)}`);
      }
      if (c.impact) lines.push('');
      if (c.targetCheck) lines.push(`- Target data: ${targetCheckText(c.targetCheck, md)}`);
      if (c.toolCheck) lines.push(`- ${md(c.toolCheck.title)}:`, '', ...codeBlock(c.toolCheck.text), '');
      for (const d of differences)
        lines.push(`- ${md(d.op)} ${code(d.subject)}${d.detail ? ` (${md(d.detail)})` : ''}`);
      if (c.more > 0) lines.push(`- … and ${c.more} more`);
      lines.push(`- Full list: ${code(c.changeListFile)}`, '');
    }
  }

  const done = Object.values(s.steps).filter((st) => st.outcome && !st.outcome.alreadyAtTarget);
  if (done.length) {
    lines.push('## Steps', '');
    for (const st of done) lines.push(`- **${md(st.component)}**: ${md(describeOutcome(s, st.component))}`);
    lines.push('');
  }
  const later = Object.values(s.steps).filter((st) => st.followUp);
  if (later.length) {
    lines.push('## Later', '');
    for (const st of later)
      lines.push(
        `- **${md(st.component)}**: ${md(st.followUp!.what)} at ${md(st.followUp!.at)} (workflow ${code(st.followUp!.workflowId)})`,
      );
    lines.push('');
  }
  const compensated = Object.values(s.steps).filter((st) => st.compensation);
  if (compensated.length) {
    lines.push('## Compensation', '');
    for (const st of compensated) lines.push(`- **${md(st.component)}**: ${md(st.compensation!)}`);
    lines.push('');
  }
  const notes = Object.values(s.steps).filter((st) => st.outcome?.note);
  if (notes.length) {
    lines.push('## Notes', '');
    for (const st of notes) lines.push(`- **${md(st.component)}**: ${md(st.outcome!.note!)}`);
    lines.push('');
  }
  const verification = verificationLines(s);
  if (verification.length) {
    lines.push('## Verification', '');
    for (const line of verification) lines.push(`- ${md(line.trim())}`);
    lines.push('');
  }
  const errors = Object.values(s.steps).filter((st) => st.error);
  if (errors.length) {
    lines.push('## Errors', '');
    for (const st of errors) lines.push(`- **${md(st.component)}** (${st.state}): ${md(st.error!)}`);
    lines.push('');
  }
  if (s.refusals.length) {
    lines.push('## Refused requests', '');
    for (const r of s.refusals) {
      const times = refusalTimes(r.count) ? ` (${refusalTimes(r.count)}, last recorded at ${md(r.lastAt ?? '?')})` : '';
      lines.push(`- ${r.action} by ${md(r.user)} at ${md(r.at)}${times}: ${md(r.reason)}`);
    }
    if (s.refusalsOmitted) lines.push(`- … and ${s.refusalsOmitted} more, not recorded`);
    lines.push('');
  }
  return lines.join('\n');
}

/** What a step did, in its component kind's words (raw text: the caller makes it safe to show). */
export function describeOutcome(s: RollbackStatus, component: string): string {
  const outcome = s.steps[component]?.outcome;
  if (!outcome) return '';
  if (outcome.alreadyAtTarget) return 'already at target';
  const kind = s.plan?.components.find((c) => c.component === component)?.kind ?? outcome.details?.kind ?? '';
  return presenterOf(kind).outcome(outcome);
}

/** A few lines for the Temporal Web UI's "current details" of a run: Markdown too. */
export function renderCurrentDetails(s: RollbackStatus): string {
  const lines = [
    `**${s.state}** in phase **${s.phase}**: ${md(s.environment)} → ${md(describeTarget(s.target))}${s.dryRun ? ' (dry run)' : ''}`,
  ];
  lines.push(`requested by ${md(s.requester)} (${md(s.trigger)})${s.reason ? `: ${md(s.reason)}` : ''}`);
  if (s.cause) lines.push(`cause: ${md(s.cause)}`);
  if (s.plan) {
    const t = s.plan.totals;
    lines.push(
      `plan: +${t.added} ~${t.changed} -${t.removed}, ${formatBytes(t.bytesToWrite)} to write${s.plan.destructive ? ', LOSES DATA' : ''}`,
    );
  }
  if (s.state === 'awaiting-approval')
    lines.push(
      `approvals ${s.approvals.length}/${s.requiredApprovals ?? 1}; approvers: ${(s.approvers ?? []).map(md).join(', ')}`,
    );
  for (const st of Object.values(s.steps))
    if (st.state !== 'pending')
      lines.push(`- ${md(st.component)}: ${st.state}${st.verify ? `, verify ${st.verify}` : ''}`);
  for (const line of verificationLines(s)) lines.push(`- ${md(line.trim())}`);
  return lines.join('\n');
}

/**
 * The verification checks' results with what they measured, a failed verification that waits
 * (or how it was settled), and the warnings the run completed with: raw text, one per line.
 */
export function verificationLines(s: RollbackStatus): string[] {
  const lines: string[] = [];
  if (s.checks?.length) {
    lines.push('Checks:');
    for (const c of s.checks)
      lines.push(
        `  ${c.name.padEnd(12)} ${c.passed ? 'passed' : 'FAILED'}  ${c.kind}: ${c.value}${c.expected ? ` (wants ${c.expected})` : ''}${c.wave !== undefined ? ` (after wave ${c.wave})` : ''}${c.problem ? `: ${c.problem}` : ''}`,
      );
  }
  const v = s.verification;
  if (v?.awaiting)
    lines.push(
      `Verification failed: ${v.failure}. Waiting for accept or compensate from an approver until ${v.deadline}; then: ${v.default}.`,
    );
  else if (v?.decision)
    lines.push(
      `Verification failed and ${v.decision.user === 'deadline' ? `the deadline chose ${v.decision.decision}` : `${v.decision.user} chose ${v.decision.decision}`} at ${v.decision.at}${v.decision.comment ? ` ("${v.decision.comment}")` : ''}.`,
    );
  for (const w of s.warnings ?? []) lines.push(`Warning: ${w}`);
  return lines;
}

/** Whether the data the restore writes was read back before approval, as the plan shows it. */
export function targetCheckText(check: { readable: boolean; note: string }, escape: (t: string) => string): string {
  return check.readable ? escape(check.note) : `NOT POSSIBLE: ${escape(check.note)}`;
}

/** Tool output as a fenced block: terminal-safe lines, a fence longer than any backtick run in it. */
function codeBlock(text: string): string[] {
  const safe = text.split('\n').map((line) => terminalSafe(line));
  const longest = Math.max(2, ...safe.map((l) => Math.max(0, ...(l.match(/`+/g) ?? []).map((r) => r.length))));
  const fence = '`'.repeat(longest + 1);
  return [`  ${fence}text`, ...safe.map((l) => `  ${l}`), `  ${fence}`];
}

/**
 * The order a plan runs in, as one clause: `order: config → app`, or with waves
 * `waves: canary (config + app@web1) → rest (app@web2)`.
 */
export function planOrder(plan: RollbackPlan, show: (text: string) => string): string {
  const steps = (order: string[][]) => order.map((group) => group.map(show).join(' + ')).join(' → ');
  if (!plan.waves?.length) return `order: ${steps(plan.order)}`;
  return `waves: ${plan.waves.map((w) => `${show(w.name)} (${steps(w.order)})`).join(' → ')}`;
}

/** The checks a plan runs after each wave and in verify, and what a failure leads to. */
export function planStages(plan: RollbackPlan, show: (text: string) => string): string[] {
  const lines: string[] = [];
  for (const w of plan.waves?.slice(0, -1) ?? [])
    lines.push(
      `after wave ${show(w.name)}: its components are verified${w.checks.length ? `, then checks ${w.checks.map(show).join(', ')}` : ''}`,
    );
  const v = plan.verification;
  if (v && (v.checks.length > 0 || (plan.waves?.length ?? 0) > 0))
    lines.push(
      `in verify: every component${v.checks.length ? `, then checks ${v.checks.map(show).join(', ')}` : ''}; if verification fails: ${v.onFailure}`,
    );
  return lines;
}
