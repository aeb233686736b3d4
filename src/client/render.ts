// Human-readable output of the CLI. Machines get --json instead.
import { describeContents, presenterOf } from '../components/registry';
import type { CrossSection } from '../domain/cross-section';
import { formatBytes } from '../domain/format';
import { describeOutcome } from '../domain/report';
import { refusalTimes } from '../domain/rollback-rules';
import { describeTarget, type RollbackPlan, type RollbackStatus } from '../domain/rollback';
import { formatDuration } from '../manifest/duration';
import type { LiveStep, RollbackView } from './client';

export function renderPlan(plan: RollbackPlan): string {
  const lines = [
    `Plan (safety cross-section ${plan.safetyCrossSectionId}; order: ${plan.order.map((w) => w.join(' + ')).join(' → ')}):`,
  ];
  const width = Math.max(9, ...plan.components.map((c) => c.component.length));
  for (const c of plan.components) {
    const counts = `+${c.added} ~${c.changed} -${c.removed}${presenterOf(c.kind).planCounts(c)}`;
    lines.push(
      `  ${c.component.padEnd(width)}  ${counts.padEnd(18)} ${formatBytes(c.bytesToWrite).padStart(10)} to write   ${c.path}`,
    );
    for (const d of c.differences ?? [])
      lines.push(`  ${''.padEnd(width)}    ${d.op.padEnd(6)} ${d.subject}${d.detail ? ` (${d.detail})` : ''}`);
    if (c.more > 0) lines.push(`  ${''.padEnd(width)}    … ${c.more} more in ${c.changeListFile}`);
    for (const i of c.impact ?? []) {
      const mark = i.strategy === c.strategy ? '*' : ' ';
      const head = !i.available
        ? `not possible: ${i.unavailable ?? '?'}`
        : i.destructive
          ? 'LOSES DATA'
          : 'loses no data';
      lines.push(
        `  ${''.padEnd(width)}  ${mark} strategy ${i.strategy.padEnd(8)} ${head}${i.keeps ? `; keeps ${i.keeps}` : ''}`,
      );
      for (const loss of i.losses.slice(0, 5)) lines.push(`  ${''.padEnd(width)}        - ${loss}`);
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
  const target = s.targetCrossSection ? ` (cross-section ${s.targetCrossSection.crossSectionId})` : '';
  lines.push(`${s.workflowId}`);
  lines.push(`  ${s.environment} → ${describeTarget(s.target)}${target}${s.dryRun ? '  [dry run]' : ''}`);
  lines.push(
    `  state: ${s.state}   phase: ${s.phase}   requested by ${s.requester} (${s.trigger})${s.reason ? `: ${s.reason}` : ''}`,
  );
  if (s.cause) lines.push(`  cause: ${s.cause}`);
  if (s.approvers && !s.dryRun) {
    const got = s.approvals.map((a) => a.user).join(', ') || 'none';
    const may = s.requesterMayApprove === false ? s.approvers.filter((a) => a !== s.requester) : s.approvers;
    const excluded = may.length < s.approvers.length ? ` (not ${s.requester}, who requested it)` : '';
    lines.push(
      `  approvals: ${s.approvals.length}/${s.requiredApprovals ?? 1} (${got}); may approve: ${may.join(', ')}${excluded}`,
    );
  }
  if (s.state === 'awaiting-approval' && s.approvalDeadline) lines.push(`  approval deadline: ${s.approvalDeadline}`);
  if (s.cancellation)
    lines.push(
      `  cancelled by ${s.cancellation.user} during ${s.cancellation.phase}${s.cancellation.reason ? `: ${s.cancellation.reason}` : ''}`,
    );
  if (s.rejection)
    lines.push(`  rejected by ${s.rejection.user}${s.rejection.comment ? `: ${s.rejection.comment}` : ''}`);
  for (const r of s.refusals.slice(-3))
    lines.push(
      `  refused ${r.action} by ${r.user}${refusalTimes(r.count) ? ` (${refusalTimes(r.count)})` : ''}: ${r.reason}`,
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
      const extra = st.outcome ? describeOutcome(s, st.component) : live ? renderLive(live) : '';
      lines.push(
        `  ${st.component.padEnd(12)} ${st.state.padEnd(12)} ${st.verify ? `verify ${st.verify}  ` : ''}${extra}${st.error ? `  error: ${st.error}` : ''}`,
      );
    }
  }
  if (s.reportFile) lines.push(`Report: ${s.reportFile}`);
  const next = nextStep(s);
  if (next) lines.push(next);
  return lines.join('\n');
}

export function renderLive(live: LiveStep): string {
  const p = live.progress;
  const attempt =
    live.attempt > 1 ? ` (attempt ${live.attempt}${live.lastFailure ? `, last: ${live.lastFailure}` : ''})` : '';
  if (!p) return `${live.state === 'scheduled' ? 'waiting for an agent' : live.state}${attempt}`;
  const pct = p.percent !== undefined ? ` ${(p.percent * 100).toFixed(0)}%` : '';
  const bytes = p.bytesTotal ? ` ${formatBytes(p.bytesDone ?? 0)}/${formatBytes(p.bytesTotal)}` : '';
  return `${p.stage}${pct}${bytes}${attempt}`;
}

export function progressBar(fraction: number, width = 24): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

function nextStep(s: RollbackStatus): string | undefined {
  if (s.state === 'awaiting-approval') {
    return `Next: rewind rollback approve ${s.workflowId} --as <approver>   (or: rewind rollback reject ${s.workflowId} --as <user>)`;
  }
  return undefined;
}

export function renderCrossSections(sections: CrossSection[]): string {
  if (sections.length === 0) return 'no cross-sections yet (rewind snapshot create --env ENV)';
  const lines = ['ID                        TIME                  ORIGIN    VERSION         COMPONENTS'];
  for (const s of sections) {
    const comps = s.members.map((m) => (s.components[m] ? m : `${m}(missing)`)).join(',');
    lines.push(
      `${s.id.padEnd(25)} ${s.time.slice(0, 19).replace('T', ' ').padEnd(21)} ${s.origin.padEnd(9)} ${(s.version ?? '-').padEnd(15)} ${comps}${s.reason ? `  "${s.reason}"` : ''}`,
    );
  }
  return lines.join('\n');
}

export function renderCrossSection(s: CrossSection): string {
  const lines = [
    `${s.id}  ${s.environment}  ${s.time}`,
    `  origin: ${s.origin}${s.version ? `   version: ${s.version}` : ''}${s.reason ? `   reason: ${s.reason}` : ''}`,
    `  complete: ${s.complete ? 'yes' : `no (missing: ${s.members.filter((m) => !s.components[m]).join(', ')})`}`,
  ];
  for (const c of Object.values(s.components)) {
    lines.push(
      `  ${c.component.padEnd(12)} snapshot ${c.snapshotId.slice(0, 8)}  ${describeContents(c.fingerprint)}  fingerprint ${c.fingerprint.digest.slice(0, 16)}`,
    );
  }
  return lines.join('\n');
}

export { describeContents };
