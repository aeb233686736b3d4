// Human-readable output of the CLI. Machines get --json instead. Every text that comes from a
// person or from outside (names, reasons, labels, paths, errors) goes through `shown`
// (terminalSafe): its control characters are printed as escapes, never sent to the terminal.
import type { FingerprintSummary } from '../components/core';
import { describeContents as contentsOf, presenterOf } from '../components/registry';
import type { CrossSection } from '../domain/cross-section';
import { terminalSafe as shown } from '../domain/display-text';
import { formatBytes } from '../domain/format';
import { describeOutcome, planOrder, planStages, targetCheckText, verificationLines } from '../domain/report';
import { refusalTimes } from '../domain/rollback-rules';
import { describeTarget, type RollbackPlan, type RollbackStatus } from '../domain/rollback';
import { formatDuration } from '../manifest/duration';
import type { LiveStep, RollbackView } from './client';

export function renderPlan(plan: RollbackPlan): string {
  const lines = [`Plan (safety cross-section ${shown(plan.safetyCrossSectionId)}; ${planOrder(plan, shown)}):`];
  for (const line of planStages(plan, shown)) lines.push(`  ${line}`);
  const width = Math.max(9, ...plan.components.map((c) => shown(c.component).length));
  for (const c of plan.components) {
    const counts = `+${c.added} ~${c.changed} -${c.removed}${shown(presenterOf(c.kind).planCounts(c))}`;
    lines.push(
      `  ${shown(c.component).padEnd(width)}  ${counts.padEnd(18)} ${formatBytes(c.bytesToWrite).padStart(10)} to write   ${shown(c.path)}`,
    );
    for (const d of c.differences ?? [])
      lines.push(
        `  ${''.padEnd(width)}    ${shown(d.op).padEnd(6)} ${shown(d.subject)}${d.detail ? ` (${shown(d.detail)})` : ''}`,
      );
    if (c.more > 0) lines.push(`  ${''.padEnd(width)}    … ${c.more} more in ${shown(c.changeListFile)}`);
    if (c.targetCheck) lines.push(`  ${''.padEnd(width)}    target data: ${targetCheckText(c.targetCheck, shown)}`);
    if (c.toolCheck) {
      lines.push(`  ${''.padEnd(width)}    ${shown(c.toolCheck.title)}:`);
      for (const line of c.toolCheck.text.split('\n')) lines.push(`  ${''.padEnd(width)}      ${shown(line)}`);
    }
    for (const i of c.impact ?? []) {
      const mark = i.strategy === c.strategy ? '*' : ' ';
      const head = !i.available
        ? `not possible: ${shown(i.unavailable ?? '?')}`
        : i.destructive
          ? 'LOSES DATA'
          : 'loses no data';
      lines.push(
        `  ${''.padEnd(width)}  ${mark} strategy ${shown(i.strategy).padEnd(8)} ${head}${i.keeps ? `; keeps ${shown(i.keeps)}` : ''}`,
      );
      for (const loss of i.losses.slice(0, 5)) lines.push(`  ${''.padEnd(width)}        - ${shown(loss)}`);
    }
  }
  const t = plan.totals;
  lines.push(
    `  ${'total'.padEnd(width)}  +${t.added} ~${t.changed} -${t.removed}, ${formatBytes(t.bytesToWrite)} to write`,
  );
  if (plan.destructive)
    lines.push(
      '  This plan LOSES DATA (* marks the chosen strategy): approve with --accept-data-loss, or choose another --strategy.',
    );
  return lines.join('\n');
}

export function renderStatus(view: RollbackView): string {
  const s: RollbackStatus = view.status;
  const lines: string[] = [];
  const target = s.targetCrossSection ? ` (cross-section ${shown(s.targetCrossSection.crossSectionId)})` : '';
  lines.push(`${shown(s.workflowId)}`);
  lines.push(`  ${shown(s.environment)} → ${shown(describeTarget(s.target))}${target}${s.dryRun ? '  [dry run]' : ''}`);
  lines.push(
    `  state: ${s.state}   phase: ${s.phase}   requested by ${shown(s.requester)} (${shown(s.trigger)})${s.reason ? `: ${shown(s.reason)}` : ''}`,
  );
  if (s.cause) lines.push(`  cause: ${shown(s.cause)}`);
  if (s.approvers && !s.dryRun) {
    const got = s.approvals.map((a) => shown(a.user)).join(', ') || 'none';
    const may = s.requesterMayApprove === false ? s.approvers.filter((a) => a !== s.requester) : s.approvers;
    const excluded = may.length < s.approvers.length ? ` (not ${shown(s.requester)}, who requested it)` : '';
    lines.push(
      `  approvals: ${s.approvals.length}/${s.requiredApprovals ?? 1} (${got}); may approve: ${may.map(shown).join(', ')}${excluded}`,
    );
  }
  if (s.autoApproval && !s.autoApproval.applied)
    lines.push(
      `  auto-approval by trigger rule ${shown(s.autoApproval.rule)} not applied: ${shown(s.autoApproval.reason ?? '')}`,
    );
  if (s.state === 'awaiting-approval' && s.approvalDeadline)
    lines.push(`  approval deadline: ${shown(s.approvalDeadline)}`);
  if (s.cancellation)
    lines.push(
      `  cancelled by ${shown(s.cancellation.user)} during ${s.cancellation.phase}${s.cancellation.reason ? `: ${shown(s.cancellation.reason)}` : ''}`,
    );
  if (s.rejection)
    lines.push(
      `  rejected by ${shown(s.rejection.user)}${s.rejection.comment ? `: ${shown(s.rejection.comment)}` : ''}`,
    );
  for (const r of s.refusals.slice(-3))
    lines.push(
      `  refused ${r.action} by ${shown(r.user)}${refusalTimes(r.count) ? ` (${refusalTimes(r.count)})` : ''}: ${shown(r.reason)}`,
    );
  const phases = Object.entries(s.phases)
    .map(([p, t]) => `${p} ${t.durationMs === undefined ? '…' : formatDuration(t.durationMs)}`)
    .join(', ');
  lines.push(`  phases: ${phases}`);
  if (s.plan) lines.push(renderPlan(s.plan));
  const steps = Object.values(s.steps);
  if (steps.length && !s.dryRun && steps.some((st) => st.state !== 'pending' && st.state !== 'not-run')) {
    lines.push('Steps:');
    for (const st of steps) {
      const live = view.live.find((l) => l.component === st.component);
      const extra = st.outcome ? shown(describeOutcome(s, st.component)) : live ? renderLive(live) : '';
      lines.push(
        `  ${shown(st.component).padEnd(12)} ${st.state.padEnd(12)} ${st.verify ? `verify ${st.verify}  ` : ''}${extra}${st.error ? `  error: ${shown(st.error)}` : ''}`,
      );
    }
  }
  lines.push(...verificationLines(s).map(shown));
  if (s.reportFile) lines.push(`Report: ${shown(s.reportFile)}`);
  const next = nextStep(s);
  if (next) lines.push(next);
  return lines.join('\n');
}

export function renderLive(live: LiveStep): string {
  const p = live.progress;
  const attempt =
    live.attempt > 1 ? ` (attempt ${live.attempt}${live.lastFailure ? `, last: ${shown(live.lastFailure)}` : ''})` : '';
  // Scheduled again after a failure is the retry's back-off, not a missing agent.
  const waiting = live.attempt > 1 ? 'waiting to retry' : 'waiting for an agent';
  if (!p) return `${live.state === 'scheduled' ? waiting : shown(live.state)}${attempt}`;
  const pct = p.percent !== undefined ? ` ${(p.percent * 100).toFixed(0)}%` : '';
  const bytes = p.bytesTotal ? ` ${formatBytes(p.bytesDone ?? 0)}/${formatBytes(p.bytesTotal)}` : '';
  return `${shown(p.stage)}${pct}${bytes}${attempt}`;
}

export function progressBar(fraction: number, width = 24): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

function nextStep(s: RollbackStatus): string | undefined {
  if (s.state === 'awaiting-approval') {
    const id = shown(s.workflowId);
    return `Next: rewind rollback approve ${id} --as <approver>   (or: rewind rollback reject ${id} --as <user>)`;
  }
  if (s.verification?.awaiting) {
    const id = shown(s.workflowId);
    return `Next: rewind rollback accept ${id} --as <approver>   (or: rewind rollback compensate ${id} --as <approver>)`;
  }
  return undefined;
}

export function renderCrossSections(sections: CrossSection[]): string {
  if (sections.length === 0) return 'no cross-sections yet (rewind snapshot create --env ENV)';
  const lines = ['ID                        TIME                  ORIGIN    VERSION         COMPONENTS'];
  for (const s of sections) {
    const comps = s.members.map((m) => (s.components[m] ? shown(m) : `${shown(m)}(missing)`)).join(',');
    lines.push(
      `${shown(s.id).padEnd(25)} ${shown(s.time.slice(0, 19).replace('T', ' ')).padEnd(21)} ${shown(s.origin).padEnd(9)} ${shown(s.version ?? '-').padEnd(15)} ${comps}${s.reason ? `  "${shown(s.reason)}"` : ''}`,
    );
  }
  return lines.join('\n');
}

export function renderCrossSection(s: CrossSection): string {
  const lines = [
    `${shown(s.id)}  ${shown(s.environment)}  ${shown(s.time)}`,
    `  origin: ${shown(s.origin)}${s.version ? `   version: ${shown(s.version)}` : ''}${s.reason ? `   reason: ${shown(s.reason)}` : ''}`,
    `  complete: ${
      s.complete
        ? 'yes'
        : `no (missing: ${s.members
            .filter((m) => !s.components[m])
            .map(shown)
            .join(', ')})`
    }`,
  ];
  for (const c of Object.values(s.components)) {
    lines.push(
      `  ${shown(c.component).padEnd(12)} snapshot ${shown(c.snapshotId.slice(0, 8))}  ${describeContents(c.fingerprint)}  fingerprint ${shown(c.fingerprint.digest.slice(0, 16))}`,
    );
  }
  return lines.join('\n');
}

/** What a snapshot holds, in its kind's words (a migration's name comes from the database). */
export function describeContents(fingerprint: FingerprintSummary): string {
  return shown(contentsOf(fingerprint));
}
