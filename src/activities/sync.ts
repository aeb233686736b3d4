// Control activities of a sync: check the request against the manifest, and read from the
// project store what the scan before it found (what to resolve, what the rules let the target
// keep) and what the scan after it still finds.
import { ApplicationFailure } from '@temporalio/common';
import { dependencyWaves, restrictDependencies } from '../domain/dependency-order';
import { ErrorType } from '../domain/errors';
import type { SyncComponentPlan, SyncContext, SyncRequest } from '../domain/sync';
import { driftOf } from '../components/comparers';
import { REDACTED } from '../components/drift';
import { resolvePair, syncRequestProblem } from '../drift/pairs';
import { parseDuration } from '../manifest/duration';
import { allowsSelfApproval, envTaskQueue, type Manifest } from '../manifest/schema';
import type { ProjectStore } from '../store/project-store';

/** Findings a plan names per component; `rewind drift report` has them all. */
const SHOWN_CHANGES = 20;

export interface SyncDeps {
  manifest: Manifest;
  projectStore: () => Promise<ProjectStore>;
}

export function createSyncActivities(deps: SyncDeps) {
  const { manifest } = deps;

  function beginSync(request: SyncRequest): Promise<SyncContext> {
    const problem = syncRequestProblem(manifest, request);
    if (problem) throw ApplicationFailure.nonRetryable(problem, ErrorType.InvalidRequest);
    const pair = resolvePair(manifest, request);
    const environment = manifest.environments[pair.to]!;
    // The target's dependency order, as a rollback restores them.
    const nodes = Object.entries(environment.components).map(([name, c]) => ({ name, dependsOn: c.dependsOn }));
    const order = dependencyWaves(restrictDependencies(nodes, request.components)).flat();
    return Promise.resolve({
      ...pair,
      fromQueue: envTaskQueue(manifest, pair.from),
      toQueue: envTaskQueue(manifest, pair.to),
      components: order,
      heartbeatTimeoutMs: parseDuration(manifest.policy.heartbeatTimeout),
      approvalTimeoutMs: parseDuration(manifest.policy.approvalTimeout),
      approvers: manifest.approvers,
      allowSelfApproval: allowsSelfApproval(pair.to, environment),
    });
  }

  /**
   * Per component: the findings a sync resolves, whether all are auto-fixable, and what the
   * target keeps: a path whose every difference is allowed stays as it is; in a file with other
   * differences, allowed config keys are set back to the target's own values.
   */
  async function planSync(req: {
    scanId: string;
    components: string[];
    from?: string;
    to?: string;
  }): Promise<SyncComponentPlan[]> {
    const store = await deps.projectStore();
    const rows = await store.query<{
      component: string;
      aspect: string;
      subject: string;
      change: string;
      detail: string;
      allowed: boolean;
      auto_fixable: boolean;
    }>(
      `SELECT component, aspect, subject, change, detail, allowed, auto_fixable FROM drift_findings
        WHERE scan_id = $1 AND state <> 'resolved' AND component = ANY($2::text[])`,
      [req.scanId, req.components],
    );
    // In subject order, numbers as numbers (row (5) before row (30)).
    rows.sort((a, b) => a.subject.localeCompare(b.subject, undefined, { numeric: true }));
    const pair = resolvePair(manifest, { from: req.from, to: req.to });
    return req.components.map((component) => {
      const mine = rows.filter((r) => r.component === component);
      const open = mine.filter((r) => !r.allowed);
      const fileOf = (subject: string) => subject.split(':')[0]!.replace(/\/$/, '');
      const filesWithOpen = new Set(open.map((r) => fileOf(r.subject)));
      const keys: Record<string, string[]> = {};
      const paths = new Set<string>();
      for (const r of mine.filter((m) => m.allowed)) {
        const file = fileOf(r.subject);
        if (r.aspect === 'key' && filesWithOpen.has(file)) (keys[file] ??= []).push(r.subject.slice(file.length + 1));
        else if (!['schema', 'rows', 'sample', 'migration', 'component'].includes(r.aspect)) paths.add(file);
      }
      const changes = open
        .slice(0, SHOWN_CHANGES)
        .map(
          (r) =>
            `${r.change} ${r.subject}${r.detail.startsWith(REDACTED) ? ` (a secret: ${pair.to}'s value is overwritten)` : ''}`,
        );
      return {
        component,
        findings: open.length,
        autoFixable: open.every((r) => r.auto_fixable),
        keep: { paths: [...paths].sort(), keys },
        overwrites: driftOf(manifest.environments[pair.to]!.components[component]!).syncOverwrites(
          manifest.environments[pair.to]!.components[component]!,
          pair,
        ),
        changes,
        moreChanges: open.length - changes.length,
      };
    });
  }

  /** What the scan after the sync still finds (not allowed): it should be nothing. */
  async function unresolvedAfterSync(req: { after: string }): Promise<string[]> {
    const store = await deps.projectStore();
    const rows = await store.query<{ component: string; subject: string }>(
      `SELECT component, subject FROM drift_findings WHERE scan_id = $1 AND NOT allowed AND state <> 'resolved'
        ORDER BY component, subject`,
      [req.after],
    );
    return rows.map((r) => `${r.component} ${r.subject}`);
  }

  return { beginSync, planSync, unresolvedAfterSync };
}

export type SyncActivities = ReturnType<typeof createSyncActivities>;
