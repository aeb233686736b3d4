// Drift scans as people and programs read them, from the project store: the list of scans, one
// scan's report (Markdown or JSON), and how the current rules would classify a stored scan.
import type { Severity } from '../components/drift';
import { terminalSafe } from '../domain/display-text';
import { textTable } from '../domain/format';
import type { Manifest } from '../manifest/schema';
import type { StoreQueries } from '../store/project-store';
import { classifyDrift, crossesThreshold, driftPairs, SEVERITY_RANK } from './rules';

export interface StoredScan {
  id: string;
  from: string;
  to: string;
  workflowId: string;
  trigger: string;
  requestedBy: string | null;
  components: string[];
  startedAt: string;
  finishedAt: string | null;
  status: string;
  error: string | null;
  summary: { counts: Record<Severity, number>; allowed: number; new: number; resolved: number } | null;
}

export interface StoredFinding {
  component: string;
  aspect: string;
  subject: string;
  change: 'added' | 'removed' | 'changed';
  detail: string;
  severity: Severity;
  allowed: boolean;
  autoFixable: boolean;
  rule: string | null;
  state: 'new' | 'persisting' | 'resolved';
  /** The severity the kind gave before rules, if any. */
  kindSeverity: Severity | null;
}

interface ScanRow {
  id: string;
  from_env: string;
  to_env: string;
  workflow_id: string;
  trigger: string;
  requested_by: string | null;
  components: string[] | string;
  started_at: Date | string;
  finished_at: Date | string | null;
  status: string;
  error: string | null;
  summary: StoredScan['summary'] | string;
}

const json = <T>(v: T | string): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);
const iso = (v: Date | string | null) => (v === null ? null : new Date(v).toISOString());

function toScan(r: ScanRow): StoredScan {
  return {
    id: r.id,
    from: r.from_env,
    to: r.to_env,
    workflowId: r.workflow_id,
    trigger: r.trigger,
    requestedBy: r.requested_by,
    components: json(r.components),
    startedAt: iso(r.started_at)!,
    finishedAt: iso(r.finished_at),
    status: r.status,
    error: r.error,
    summary: r.summary === null ? null : json(r.summary),
  };
}

export async function listScans(
  db: StoreQueries,
  filter: { from?: string; to?: string; limit: number },
): Promise<StoredScan[]> {
  const rows = await db.query<ScanRow>(
    `SELECT * FROM drift_scans WHERE ($1::text IS NULL OR from_env = $1) AND ($2::text IS NULL OR to_env = $2)
      ORDER BY started_at DESC LIMIT $3`,
    [filter.from ?? null, filter.to ?? null, filter.limit],
  );
  return rows.map(toScan);
}

/** A scan by its id, or by a unique prefix of it; `latest` is the newest. */
/**
 * A scan by its id, a unique beginning of it, its random end (`3fa2c9`), or `latest`;
 * undefined when none or several match (scanIdsLike lists those).
 */
export async function findScan(db: StoreQueries, id: string): Promise<StoredScan | undefined> {
  const rows =
    id.toLowerCase() === 'latest'
      ? await db.query<ScanRow>('SELECT * FROM drift_scans ORDER BY started_at DESC LIMIT 1')
      : await db.query<ScanRow>(
          `SELECT * FROM drift_scans WHERE id = $1 OR id LIKE $2 OR id LIKE $3 ORDER BY id LIMIT 2`,
          [id, `${likeEscape(id)}%`, `%-${likeEscape(id)}`],
        );
  const exact = rows.find((r) => r.id === id);
  if (exact) return toScan(exact);
  return rows.length === 1 ? toScan(rows[0]!) : undefined;
}

/** The ids findScan would weigh for `id` (at most `limit`), to say why it found none or several. */
export async function scanIdsLike(db: StoreQueries, id: string, limit = 5): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT id FROM drift_scans WHERE id LIKE $1 OR id LIKE $2 ORDER BY id DESC LIMIT $3`,
    [`${likeEscape(id)}%`, `%-${likeEscape(id)}`, limit],
  );
  return rows.map((r) => r.id);
}

const likeEscape = (text: string) => text.replace(/[%_\\]/g, '\\$&');

export async function scanFindings(db: StoreQueries, scanId: string): Promise<StoredFinding[]> {
  const rows = await db.query<{
    component: string;
    aspect: string;
    subject: string;
    change: StoredFinding['change'];
    detail: string;
    severity: Severity;
    allowed: boolean;
    auto_fixable: boolean;
    rule: string | null;
    state: StoredFinding['state'];
    kind_severity: Severity | null;
  }>(
    `SELECT component, aspect, subject, change, detail, severity, allowed, auto_fixable, rule, state, kind_severity
       FROM drift_findings WHERE scan_id = $1 ORDER BY component, subject, aspect`,
    [scanId],
  );
  return rows
    .map((r) => ({
      component: r.component,
      aspect: r.aspect,
      subject: r.subject,
      change: r.change,
      detail: r.detail,
      severity: r.severity,
      allowed: r.allowed,
      autoFixable: r.auto_fixable,
      rule: r.rule,
      state: r.state,
      kindSeverity: r.kind_severity,
    }))
    .sort(
      (a, b) =>
        Number(a.allowed) - Number(b.allowed) ||
        Number(a.state === 'resolved') - Number(b.state === 'resolved') ||
        SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] ||
        a.component.localeCompare(b.component) ||
        // Numbers in order: row (47) before row (100), line 9 before line 10.
        a.subject.localeCompare(b.subject, undefined, { numeric: true }),
    );
}

export function renderScanList(scans: StoredScan[]): string {
  if (scans.length === 0) return 'no drift scans yet (rewind drift scan --wait)';
  const rows = scans.map((s) => {
    const c = s.summary?.counts;
    const findings = c ? `${c.critical} critical, ${c.warning} warning, ${c.info} info` : '';
    return [
      s.id,
      `${s.from} → ${s.to}`,
      s.status,
      s.trigger,
      s.startedAt.slice(0, 19).replace('T', ' '),
      componentList(s.components),
      findings,
    ];
  });
  return textTable(['SCAN', 'PAIR', 'STATUS', 'TRIGGER', 'STARTED (UTC)', 'COMPONENTS', 'FINDINGS'], rows);
}

/** What a scan compared, short enough for a table: `config, db, models` or `app, config, db +4`. */
function componentList(components: string[]): string {
  const shown = components.slice(0, 3).map(terminalSafe).join(', ');
  return components.length > 3 ? `${shown} +${components.length - 3}` : shown;
}

export function renderScanMarkdown(scan: StoredScan, findings: StoredFinding[]): string {
  const lines = [`# Drift scan ${scan.id}: ${scan.from} → ${scan.to}`, ''];
  lines.push(
    `- status: ${scan.status}${scan.error ? ` (${terminalSafe(scan.error)})` : ''}`,
    `- trigger: ${scan.trigger}${scan.requestedBy ? ` by ${terminalSafe(scan.requestedBy)}` : ''}`,
    `- started: ${scan.startedAt}${scan.finishedAt ? `, finished: ${scan.finishedAt}` : ''}`,
    `- components: ${scan.components.join(', ')}`,
  );
  if (scan.summary) {
    const { counts, allowed, resolved } = scan.summary;
    lines.push(
      `- findings: ${counts.critical} critical, ${counts.warning} warning, ${counts.info} info; ${allowed} allowed; ${resolved} resolved since the previous scan`,
    );
  }
  const groups: [string, StoredFinding[]][] = [
    ['Findings', findings.filter((f) => !f.allowed && f.state !== 'resolved')],
    ['Allowed differences', findings.filter((f) => f.allowed && f.state !== 'resolved')],
    ['Resolved since the previous scan', findings.filter((f) => f.state === 'resolved')],
  ];
  for (const [title, group] of groups) {
    if (group.length === 0) continue;
    lines.push('', `## ${title} (${group.length})`, '');
    for (const f of group) {
      const tags = [
        f.severity,
        f.state !== 'resolved' ? f.state : '',
        f.autoFixable ? 'auto-fixable' : '',
        f.rule ? `rule ${f.rule}` : '',
      ]
        .filter(Boolean)
        .join(', ');
      lines.push(
        // The change as a word: a leading `+` or `-` would start a nested list in Markdown.
        `- ${f.change} **${terminalSafe(f.component)}** \`${terminalSafe(f.subject)}\`: ${terminalSafe(f.detail)} (${tags})`,
      );
    }
  }
  if (findings.length === 0 && scan.status === 'completed') lines.push('', 'No differences.');
  return lines.join('\n');
}

export interface RuleTestRow {
  finding: StoredFinding;
  now: { severity: Severity; allowed: boolean; autoFixable: boolean; rule?: string };
  changed: boolean;
}

/** How the manifest's current rules classify a stored scan's findings, and whether it would alert. */
export function testRules(manifest: Manifest, scan: StoredScan, findings: StoredFinding[]) {
  const pair = { from: scan.from, to: scan.to };
  const rows: RuleTestRow[] = findings
    .filter((f) => f.state !== 'resolved')
    .map((f) => {
      const kindSeverity = f.kindSeverity;
      const now = classifyDrift(
        {
          component: f.component,
          subject: f.subject,
          change: f.change,
          detail: f.detail,
          aspect: f.aspect,
          ...(kindSeverity ? { severity: kindSeverity } : {}),
        },
        pair,
        manifest.drift,
      );
      const changed = now.severity !== f.severity || now.allowed !== f.allowed || now.autoFixable !== f.autoFixable;
      return { finding: f, now, changed };
    });
  const counts: Record<Severity, number> = { critical: 0, warning: 0, info: 0 };
  for (const r of rows) if (!r.now.allowed) counts[r.now.severity]++;
  const thresholds = driftPairs(manifest.drift, Object.keys(manifest.environments)).find(
    (p) => p.from === scan.from && p.to === scan.to,
  )?.thresholds ?? { critical: 1, warning: 1, info: 0 };
  return {
    rows,
    counts,
    allowed: rows.filter((r) => r.now.allowed).length,
    wouldAlert: crossesThreshold(counts, thresholds),
    thresholds,
  };
}
