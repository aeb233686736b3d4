// Control activities of drift scans: plan a scan from the manifest, compare two agents' answers
// with the component's kind and classify what differs by the manifest's rules, and close the
// scan (new, persisting and resolved findings against the pair's previous scan). Full finding
// lists live in the project store; only counts and next questions go back to the workflow.
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { driftOf, firstDriftQuestion } from '../components/comparers';
import {
  SEVERITIES,
  type DriftAnswer,
  type DriftDifference,
  type DriftQuestion,
  type PreviousDifference,
} from '../components/drift';
import type { AppVersion } from '../drift/app-version';
import {
  APP_VERSION_COMPONENT,
  type DriftComponentPair,
  type DriftScanPlan,
  type DriftScanRequest,
  type DriftScanSummary,
  type SeverityCounts,
  type UnreadableComponent,
} from '../domain/drift-scan';
import { ErrorType } from '../domain/errors';
import { manifestMismatch } from '../domain/rollback-rules';
import { resolvePair, scanComponents } from '../drift/pairs';
import { manifestDigest } from '../manifest/digest';
import { classifyDrift, driftPairs } from '../drift/rules';
import { parseDuration } from '../manifest/duration';
import { envTaskQueue, type Manifest } from '../manifest/schema';
import { componentTaskQueue } from '../domain/hosts';
import type { Logger } from '../platform/logger';
import type { ProjectStore, StoreQueries } from '../store/project-store';
import { toApplicationFailure } from './failures';

export interface DriftDeps {
  manifest: Manifest;
  logger: Logger;
  /** The project store, opened on first use and kept. */
  projectStore: () => Promise<ProjectStore>;
  /** Sends a pair's alert; absent: alerts are decided, neither sent nor recorded. */
  notify?: (message: DriftNotice) => Promise<void>;
}

/** What an alert says; the notifier renders it for its channel. */
export interface DriftNotice {
  kind: 'alert' | 'resolved';
  from: string;
  to: string;
  scanId: string;
  counts: SeverityCounts;
  top: { component: string; subject: string; change: string; detail: string; severity: string; state: string }[];
  more: number;
}

export interface CompareDriftRequest {
  scanId: string;
  from: string;
  to: string;
  component: string;
  question: DriftQuestion;
  fromAnswer: DriftAnswer;
  toAnswer: DriftAnswer;
}

export interface CompareDriftResult {
  next: DriftQuestion[];
  differences: number;
}

/** A finding's identity across scans of one pair. */
export function findingKey(f: { component: string; aspect: string; subject: string }): string {
  return createHash('sha256').update(`${f.component}\0${f.aspect}\0${f.subject}`).digest('hex').slice(0, 32);
}

export function createDriftActivities(deps: DriftDeps) {
  const { manifest } = deps;
  const digest = manifestDigest(manifest);

  const insertFindings = async (
    db: StoreQueries,
    scanId: string,
    pair: { from: string; to: string },
    component: string,
    differences: DriftDifference[],
  ) => {
    if (differences.length === 0) return;
    const rows = differences.map((d) => ({ d, c: classifyDrift({ ...d, component }, pair, manifest.drift) }));
    const column = <T>(fn: (r: (typeof rows)[number]) => T) => rows.map(fn);
    // One statement per batch; a retried activity inserts the same findings again: the key makes that a no-op.
    await db.query(
      `INSERT INTO drift_findings (scan_id, key, component, aspect, subject, change, detail, severity, kind_severity, allowed, auto_fixable, rule, unseen_prefix, unseen_aspect)
       SELECT $1, k, $2, a, s, ch, d, sev, ks, al, af, r, up, ua
         FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[], $11::boolean[], $12::text[], $13::text[], $14::text[])
           AS t(k, a, s, ch, d, sev, ks, al, af, r, up, ua)
       ON CONFLICT (scan_id, key) DO NOTHING`,
      [
        scanId,
        component,
        column(({ d }) => findingKey({ component, aspect: d.aspect, subject: d.subject })),
        column(({ d }) => d.aspect),
        column(({ d }) => d.subject),
        column(({ d }) => d.change),
        column(({ d }) => d.detail),
        column(({ c }) => c.severity),
        column(({ d }) => d.severity ?? null),
        column(({ c }) => c.allowed),
        column(({ c }) => c.autoFixable),
        column(({ c }) => c.rule ?? null),
        column(({ d }) => d.unseen?.prefix ?? null),
        column(({ d }) => d.unseen?.aspect ?? null),
      ],
    );
  };

  async function beginDriftScan(req: {
    scanId: string;
    workflowId: string;
    request: DriftScanRequest;
  }): Promise<DriftScanPlan> {
    // Rules edited since the workers started would be tested by `drift rules test` and ignored
    // by the scan: a request made with another manifest is refused, as rollbacks are.
    const mismatch = manifestMismatch(digest, req.request.manifestDigest);
    if (mismatch) throw ApplicationFailure.nonRetryable(mismatch, ErrorType.InvalidRequest);
    let pair: { from: string; to: string };
    let components: string[];
    try {
      pair = resolvePair(manifest, req.request);
      components = scanComponents(manifest, pair, req.request.components);
    } catch (err) {
      throw ApplicationFailure.nonRetryable((err as Error).message, ErrorType.InvalidRequest);
    }
    const store = await deps.projectStore();
    const previous = await previousDifferences(store, pair, components);
    const appVersion =
      !req.request.components?.length &&
      (!!manifest.environments[pair.from]!.version || !!manifest.environments[pair.to]!.version);
    const pairs: DriftComponentPair[] = [];
    const oneSided: { component: string; difference: DriftDifference }[] = [];
    for (const name of components) {
      const a = manifest.environments[pair.from]!.components[name];
      const b = manifest.environments[pair.to]!.components[name];
      if (!a || !b) {
        oneSided.push({
          component: name,
          difference: {
            subject: name,
            change: b ? 'added' : 'removed',
            detail: `component only in ${b ? pair.to : pair.from}`,
            aspect: 'component',
            unseen: { prefix: '' },
          },
        });
      } else if (a.kind !== b.kind) {
        oneSided.push({
          component: name,
          difference: {
            subject: name,
            change: 'changed',
            detail: `kind ${a.kind} → ${b.kind}`,
            aspect: 'component',
            unseen: { prefix: '' },
          },
        });
      } else {
        pairs.push({
          component: name,
          fromQueue: componentTaskQueue(envTaskQueue(manifest, pair.from), name),
          toQueue: componentTaskQueue(envTaskQueue(manifest, pair.to), name),
          question: firstDriftQuestion(a, previous.get(name) ?? []),
        });
      }
    }
    await store.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO drift_scans (id, from_env, to_env, workflow_id, trigger, requested_by, components, manifest_digest)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
        [
          req.scanId,
          pair.from,
          pair.to,
          req.workflowId,
          req.request.trigger,
          req.request.requestedBy ?? null,
          JSON.stringify(appVersion ? [...components, APP_VERSION_COMPONENT] : components),
          req.request.manifestDigest ?? null,
        ],
      );
      for (const o of oneSided) await insertFindings(tx, req.scanId, pair, o.component, [o.difference]);
    });
    deps.logger.info({ scanId: req.scanId, ...pair, components: components.length }, 'drift scan started');
    return {
      scanId: req.scanId,
      ...pair,
      pairs,
      appVersion,
      fromQueue: envTaskQueue(manifest, pair.from),
      toQueue: envTaskQueue(manifest, pair.to),
      heartbeatTimeoutMs: parseDuration(manifest.policy.heartbeatTimeout),
      historyBytes: manifest.drift.historyBytes,
    };
  }

  async function compareDrift(req: CompareDriftRequest): Promise<CompareDriftResult> {
    try {
      const component = manifest.environments[req.from]?.components[req.component];
      if (!component)
        throw ApplicationFailure.nonRetryable(
          `${req.from} has no component "${req.component}"`,
          ErrorType.InvalidRequest,
        );
      const { differences, next } = driftOf(component).compare(req.question, req.fromAnswer, req.toAnswer, component, {
        from: req.from,
        to: req.to,
      });
      const store = await deps.projectStore();
      // One statement: atomic without a transaction around it.
      await insertFindings(store, req.scanId, req, req.component, differences);
      return { next, differences: differences.length };
    } catch (err) {
      throw toApplicationFailure(err);
    }
  }

  async function finishDriftScan(req: {
    scanId: string;
    error?: string;
    unreadable?: UnreadableComponent[];
  }): Promise<DriftScanSummary> {
    const store = await deps.projectStore();
    const unreadable = req.error === undefined ? (req.unreadable ?? []) : [];
    const summary = await store.transaction(async (tx) => {
      if (unreadable.length > 0) {
        const [scan] = await tx.query<{ from_env: string; to_env: string }>(
          'SELECT from_env, to_env FROM drift_scans WHERE id = $1',
          [req.scanId],
        );
        const pair = { from: scan?.from_env ?? '', to: scan?.to_env ?? '' };
        for (const u of unreadable) await insertFindings(tx, req.scanId, pair, u.component, [unreadableDifference(u)]);
      }
      return closeScan(tx, req.scanId, req.error);
    });
    if (summary.status === 'completed' && unreadable.length > 0)
      summary.unreadable = unreadable.map((u) => u.component);
    if (summary.status === 'completed') summary.alert = await alertIfNeeded(store, summary);
    deps.logger.info({ ...summary }, 'drift scan finished');
    return summary;
  }

  async function alertIfNeeded(store: ProjectStore, summary: DriftScanSummary): Promise<DriftScanSummary['alert']> {
    const pairConfig = driftPairs(manifest.drift, Object.keys(manifest.environments)).find(
      (p) => p.from === summary.from && p.to === summary.to,
    );
    const thresholds = pairConfig?.thresholds ?? { critical: 1, warning: 1, info: 0 };
    // Components a partial scan did not look at keep their findings from their own latest scan.
    const pairComponents = [
      ...new Set([
        ...Object.keys(manifest.environments[summary.from]?.components ?? {}),
        ...Object.keys(manifest.environments[summary.to]?.components ?? {}),
        APP_VERSION_COMPONENT,
      ]),
    ];
    // A local activity runs at least once: finishing a scan again (its workflow task retried
    // after the alert went out) reports the alert that scan sent, and sends nothing more.
    const [sent] = await store.query<{ kind: 'alert' | 'resolved'; reason: string | null }>(
      'SELECT kind, reason FROM drift_alerts WHERE from_env = $1 AND to_env = $2 AND scan_id = $3',
      [summary.from, summary.to, summary.scanId],
    );
    if (sent) return { sent: sent.kind, reason: sent.reason ?? 'sent when the scan finished' };
    const decision = await decideAlert(store, summary, thresholds, pairComponents);
    if (decision.sent === 'none') return decision;
    const rows = await store.query<{
      component: string;
      subject: string;
      change: string;
      detail: string;
      severity: string;
      state: string;
    }>(
      `SELECT component, subject, change, detail, severity, state FROM drift_findings
        WHERE scan_id = $1 AND NOT allowed AND state <> 'resolved'
        ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, state = 'persisting', component, subject`,
      [summary.scanId],
    );
    const top = rows.slice(0, manifest.drift.topFindings);
    const notice: DriftNotice = {
      kind: decision.sent,
      from: summary.from,
      to: summary.to,
      scanId: summary.scanId,
      counts: summary.counts,
      top,
      more: rows.length - top.length,
    };
    if (!deps.notify)
      return { sent: 'none', reason: `${decision.reason}, but no alert channel is configured (drift.slack)` };
    const notify = deps.notify;
    // Recorded and sent together: a failed send leaves no record, so the retry sends it.
    await store.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO drift_alerts (from_env, to_env, scan_id, kind, findings, reason) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING`,
        [summary.from, summary.to, summary.scanId, decision.sent, JSON.stringify(decision.findings), decision.reason],
      );
      await notify(notice);
    });
    return { sent: decision.sent, reason: decision.reason };
  }

  /** The two environments' application versions, as a finding when they differ or cannot be read. */
  async function compareAppVersions(req: {
    scanId: string;
    from: string;
    to: string;
    fromVersion: AppVersion;
    toVersion: AppVersion;
  }): Promise<number> {
    const differences: DriftDifference[] = [];
    const { fromVersion: a, toVersion: b } = req;
    for (const [side, v] of [
      [req.from, a],
      [req.to, b],
    ] as const) {
      if (v.error)
        differences.push({
          subject: `version (${side})`,
          change: 'changed',
          detail: `${side}'s version could not be read from ${v.source}: ${v.error}`,
          aspect: 'unreadable',
          severity: 'warning',
          // The versions could not be compared: an earlier difference still stands.
          unseen: { prefix: 'version', aspect: 'version' },
        });
    }
    if (!a.error && !b.error && a.version !== b.version) {
      differences.push({
        subject: 'version',
        change: a.version === undefined ? 'added' : b.version === undefined ? 'removed' : 'changed',
        detail: `${a.version ?? '(not configured)'} → ${b.version ?? '(not configured)'}`,
        aspect: 'version',
      });
    }
    const store = await deps.projectStore();
    await insertFindings(store, req.scanId, req, APP_VERSION_COMPONENT, differences);
    return differences.length;
  }

  return { beginDriftScan, compareDrift, compareAppVersions, finishDriftScan };
}

export type DriftActivities = ReturnType<typeof createDriftActivities>;

const emptyCounts = (): SeverityCounts => ({ critical: 0, warning: 0, info: 0 });

/** How long an error may be in a finding's detail. */
const UNREADABLE_DETAIL_CHARS = 300;

/** The finding that stands for a component a scan could not compare. */
function unreadableDifference(u: UnreadableComponent): DriftDifference {
  const detail = `not compared: ${u.error}`;
  return {
    subject: u.component,
    change: 'changed',
    aspect: 'unreadable',
    detail: detail.length > UNREADABLE_DETAIL_CHARS ? `${detail.slice(0, UNREADABLE_DETAIL_CHARS - 1)}…` : detail,
    severity: 'warning',
    // Nothing of it was seen: its earlier findings are neither found again nor called resolved.
    unseen: { prefix: '' },
  };
}

/** Findings of a component read back for its next scan's first question, at most. */
const PREVIOUS_PER_COMPONENT = 500;

/**
 * `CROSS JOIN LATERAL … latest`: the pair's latest completed scan that compared the component
 * (`latest.id`), other than `except`. A scan of other components in between says nothing about
 * it, nor does one that could not read it (its `unreadable` finding, which hides all of it): the
 * findings from before such a scan stand until the component is read again. Arguments are SQL
 * expressions (placeholders or columns), never values.
 */
function latestScanOf(of: { from: string; to: string; component: string; except?: string }): string {
  return `CROSS JOIN LATERAL (
      SELECT s.id FROM drift_scans s
       WHERE s.from_env = ${of.from} AND s.to_env = ${of.to} AND s.status = 'completed'
         ${of.except ? `AND s.id <> ${of.except}` : ''} AND s.components @> jsonb_build_array(${of.component})
         AND NOT EXISTS (SELECT 1 FROM drift_findings u
                          WHERE u.scan_id = s.id AND u.component = ${of.component} AND u.aspect = 'unreadable'
                            AND u.unseen_prefix = '')
       ORDER BY s.finished_at DESC LIMIT 1) latest`;
}

/**
 * What the pair's latest completed scan of each component found there and still stood (allowed
 * ones too: expected differences recur every scan). A hint for the kinds' first questions only:
 * a wrong or missing one costs a round, never a finding.
 */
export async function previousDifferences(
  store: StoreQueries,
  pair: { from: string; to: string },
  components: string[],
): Promise<Map<string, PreviousDifference[]>> {
  const rows = await store.query<{ component: string; aspect: string; subject: string }>(
    `SELECT f.component, f.aspect, f.subject
       FROM unnest($3::text[]) AS c(name)
       ${latestScanOf({ from: '$1', to: '$2', component: 'c.name' })}
       CROSS JOIN LATERAL (
         SELECT f.component, f.aspect, f.subject FROM drift_findings f
          WHERE f.scan_id = latest.id AND f.component = c.name AND f.state <> 'resolved'
          ORDER BY f.subject LIMIT $4) f`,
    [pair.from, pair.to, components, PREVIOUS_PER_COMPONENT],
  );
  const byComponent = new Map<string, PreviousDifference[]>();
  for (const r of rows) {
    const list = byComponent.get(r.component) ?? [];
    list.push({ aspect: r.aspect, subject: r.subject });
    byComponent.set(r.component, list);
  }
  return byComponent;
}

async function closeScan(tx: StoreQueries, scanId: string, error: string | undefined): Promise<DriftScanSummary> {
  const [scan] = await tx.query<{ from_env: string; to_env: string; components: string[]; status: string }>(
    'SELECT from_env, to_env, components, status FROM drift_scans WHERE id = $1',
    [scanId],
  );
  if (!scan) throw ApplicationFailure.nonRetryable(`no drift scan ${scanId}`, ErrorType.InvalidRequest);
  const base = { scanId, from: scan.from_env, to: scan.to_env };
  if (error !== undefined) {
    await tx.query(`UPDATE drift_scans SET status = 'failed', error = $2, finished_at = now() WHERE id = $1`, [
      scanId,
      error,
    ]);
    return {
      ...base,
      status: 'failed',
      counts: emptyCounts(),
      allowed: 0,
      new: 0,
      resolved: 0,
      alert: { sent: 'none', reason: 'the scan failed' },
      error,
    };
  }
  if (scan.status === 'running') {
    // States per component, against the pair's latest completed scan that looked at that
    // component: a scan of other components in between says nothing about it.
    const previous = `WITH prev AS (
        SELECT c.name AS component, latest.id
          FROM unnest($2::text[]) AS c(name)
          ${latestScanOf({ from: '$3', to: '$4', component: 'c.name', except: '$1' })})`;
    const params = [scanId, scan.components, scan.from_env, scan.to_env];
    await tx.query(
      `${previous}
       UPDATE drift_findings f SET state = 'persisting' WHERE f.scan_id = $1 AND EXISTS (
         SELECT 1 FROM prev JOIN drift_findings p ON p.scan_id = prev.id AND p.component = prev.component
          WHERE prev.component = f.component AND p.key = f.key AND p.state <> 'resolved')`,
      params,
    );
    await tx.query(
      `${previous}
       INSERT INTO drift_findings (scan_id, key, component, aspect, subject, change, detail, severity, kind_severity, allowed, auto_fixable, rule, state)
       SELECT $1, p.key, p.component, p.aspect, p.subject, p.change, p.detail, p.severity, p.kind_severity, p.allowed, p.auto_fixable, p.rule, 'resolved'
         FROM prev JOIN drift_findings p ON p.scan_id = prev.id AND p.component = prev.component
        WHERE p.state <> 'resolved'
          AND NOT EXISTS (SELECT 1 FROM drift_findings f WHERE f.scan_id = $1 AND f.key = p.key)
          -- not seen, since another finding kept the scan from looking (DriftDifference.unseen)
          AND NOT EXISTS (
            SELECT 1 FROM drift_findings u
             WHERE u.scan_id = $1 AND u.component = p.component AND u.unseen_prefix IS NOT NULL
               AND left(p.subject, length(u.unseen_prefix)) = u.unseen_prefix
               AND (u.unseen_aspect IS NULL OR u.unseen_aspect = p.aspect))`,
      params,
    );
  }
  const rows = await tx.query<{ severity: string; allowed: boolean; state: string; n: number }>(
    `SELECT severity, allowed, state, count(*)::int AS n FROM drift_findings WHERE scan_id = $1 GROUP BY 1, 2, 3`,
    [scanId],
  );
  const counts = emptyCounts();
  let allowed = 0;
  let fresh = 0;
  let resolved = 0;
  for (const r of rows) {
    if (r.state === 'resolved') resolved += r.n;
    else if (r.allowed) allowed += r.n;
    else {
      counts[r.severity as keyof SeverityCounts] += r.n;
      if (r.state === 'new') fresh += r.n;
    }
  }
  const summary = { counts, allowed, new: fresh, resolved };
  await tx.query(
    `UPDATE drift_scans SET status = 'completed', finished_at = COALESCE(finished_at, now()), summary = $2 WHERE id = $1`,
    [scanId, JSON.stringify(summary)],
  );
  return { ...base, status: 'completed', ...summary, alert: { sent: 'none', reason: 'not decided' } };
}

/**
 * Alert when the pair is over its thresholds and something is new or more severe than what the
 * last alert named; say "resolved" once when a pair that was alerted is back under them.
 */
async function decideAlert(
  store: ProjectStore,
  summary: DriftScanSummary,
  thresholds: Record<(typeof SEVERITIES)[number], number>,
  pairComponents: readonly string[],
): Promise<{ sent: 'alert' | 'resolved' | 'none'; reason: string; findings: Record<string, string> }> {
  // The pair's state: this scan's findings, and the findings of each component's previous scan
  // that this one did not see: all of a component it did not compare (a scan of chosen
  // components) or could not read, and what an unreadable file or folder hid. A scan of config
  // alone must not call the pair back under its thresholds while a pickle stays critical, nor
  // one whose database was down while its schema still drifts. (A finding seen again or
  // resolved has a row of its key in this scan.)
  const current = await store.query<{ key: string; severity: string }>(
    `SELECT key, severity FROM drift_findings WHERE scan_id = $1 AND NOT allowed AND state <> 'resolved'
     UNION ALL
     SELECT f.key, f.severity
       FROM drift_scans cur
       CROSS JOIN unnest($2::text[]) AS c(name)
       ${latestScanOf({ from: 'cur.from_env', to: 'cur.to_env', component: 'c.name', except: 'cur.id' })}
       JOIN drift_findings f ON f.scan_id = latest.id AND f.component = c.name
      WHERE cur.id = $1 AND NOT f.allowed AND f.state <> 'resolved'
        AND NOT EXISTS (SELECT 1 FROM drift_findings s WHERE s.scan_id = cur.id AND s.key = f.key)`,
    [summary.scanId, pairComponents],
  );
  const findings = Object.fromEntries(current.map((r) => [r.key, r.severity]));
  const counts = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<(typeof SEVERITIES)[number], number>;
  for (const r of current) counts[r.severity as (typeof SEVERITIES)[number]] += 1;
  const [last] = await store.query<{ kind: string; findings: Record<string, string> | string }>(
    `SELECT kind, findings FROM drift_alerts WHERE from_env = $1 AND to_env = $2 ORDER BY sent_at DESC LIMIT 1`,
    [summary.from, summary.to],
  );
  const lastFindings: Record<string, string> =
    typeof last?.findings === 'string' ? (JSON.parse(last.findings) as Record<string, string>) : (last?.findings ?? {});
  const over = SEVERITIES.some((s) => thresholds[s] > 0 && counts[s] >= thresholds[s]);
  const rank = { critical: 3, warning: 2, info: 1 } as Record<string, number>;
  if (over) {
    if (last?.kind !== 'alert') return { sent: 'alert', reason: 'over the pair thresholds', findings };
    const worse = Object.entries(findings).filter(([k, s]) => (rank[s] ?? 0) > (rank[lastFindings[k] ?? ''] ?? 0));
    if (worse.length > 0)
      return { sent: 'alert', reason: `${worse.length} finding(s) new or more severe since the last alert`, findings };
    return {
      sent: 'none',
      reason: 'over the thresholds, but nothing new or more severe since the last alert',
      findings,
    };
  }
  if (last?.kind === 'alert') return { sent: 'resolved', reason: 'back under the pair thresholds', findings };
  return { sent: 'none', reason: 'under the pair thresholds', findings };
}
