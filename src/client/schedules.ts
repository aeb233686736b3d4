// Temporal Schedules of one rewind install: a drift scan per environment pair (every `every`,
// 1h by default), a cross-section per environment the manifest's snapshots.schedules names, and
// the repository's maintenance (snapshots.prune: forget by the retention tiers, then prune;
// snapshots.check: restic check). Overlapping runs are skipped, missed runs caught up within one
// interval. They show in the Web UI's Schedules page; `rewind schedules apply` makes them match
// the manifest, and deletes the ones it no longer asks for.
import {
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleOptionsStartWorkflowAction,
  type Workflow,
} from '@temporalio/client';
import { driftScanWorkflowId, type DriftScanRequest } from '../domain/drift-scan';
import type { SnapshotRequest } from '../domain/snapshot';
import { driftPairs } from '../drift/rules';
import { formatInterval, parseDuration } from '../manifest/duration';
import type { Manifest } from '../manifest/schema';
import { driftScanWorkflow, drillWorkflow, repositoryMaintenanceWorkflow, snapshotWorkflow } from '../workflows';
import { DRILL_SCOPES, type DrillRequest } from '../domain/drill';
import { drillEnvironment } from '../drills/section';
import type { MaintenanceRequest } from '../workflows/repository-maintenance';
import { RequestError } from './client';

export type ScheduleKind = 'drift' | 'snapshot' | 'prune' | 'check' | 'drill';

/** A schedule as the manifest asks for it. */
interface ScheduleSpec {
  scheduleId: string;
  kind: ScheduleKind;
  /** What it does, for people: `drift scan production → regression`, `cross-section of production`. */
  what: string;
  /** A drift schedule's pair. */
  from?: string;
  to?: string;
  every: string;
}

export interface ScheduleChange extends ScheduleSpec {
  /** `every` in milliseconds, as `schedules list` has it too. */
  everyMs?: number;
  change: 'created' | 'updated' | 'unchanged' | 'deleted';
}

export interface ScheduleView {
  scheduleId: string;
  kind?: ScheduleKind;
  what?: string;
  from?: string;
  to?: string;
  every?: string;
  everyMs?: number;
  paused: boolean;
  note?: string;
  /** Absent while paused. */
  nextRun?: string;
  lastRun?: string;
}

interface DesiredSchedule extends ScheduleSpec {
  action: ScheduleOptionsStartWorkflowAction<Workflow>;
}

/** Schedule ids carry the control task queue, so two rewind installs on one namespace keep theirs apart. */
function driftPrefix(manifest: Manifest): string {
  return `${manifest.temporal.taskQueue}-drift-`;
}
function maintenancePrefix(manifest: Manifest): string {
  return `${manifest.temporal.taskQueue}-maint-`;
}
const ours = (manifest: Manifest, id: string) =>
  id.startsWith(driftPrefix(manifest)) || id.startsWith(maintenancePrefix(manifest));

export function driftScheduleId(manifest: Manifest, from: string, to: string): string {
  return `${driftPrefix(manifest)}${from}-${to}`;
}

/** Every schedule the manifest asks for. */
function desiredSchedules(manifest: Manifest): DesiredSchedule[] {
  const taskQueue = manifest.temporal.taskQueue;
  const desired: DesiredSchedule[] = [];
  for (const pair of driftPairs(manifest.drift, Object.keys(manifest.environments))) {
    const request: DriftScanRequest = { from: pair.from, to: pair.to, trigger: 'schedule' };
    desired.push({
      scheduleId: driftScheduleId(manifest, pair.from, pair.to),
      kind: 'drift',
      what: `drift scan ${pair.from} → ${pair.to}`,
      from: pair.from,
      to: pair.to,
      every: pair.every,
      // The schedule appends the time: a manual scan of the pair still runs under the bare id.
      action: {
        type: 'startWorkflow',
        workflowType: driftScanWorkflow,
        args: [request],
        taskQueue,
        workflowId: driftScanWorkflowId(taskQueue, pair.from, pair.to),
      },
    });
  }
  for (const [environment, { every }] of Object.entries(manifest.snapshots.schedules)) {
    const request: SnapshotRequest = {
      environment,
      origin: 'schedule',
      requester: 'schedule',
      reason: `scheduled, every ${every}`,
    };
    desired.push({
      scheduleId: `${maintenancePrefix(manifest)}snapshot-${environment}`,
      kind: 'snapshot',
      what: `cross-section of ${environment}`,
      every,
      action: {
        type: 'startWorkflow',
        workflowType: snapshotWorkflow,
        args: [request],
        taskQueue,
        workflowId: `snapshot-${environment}-scheduled`,
      },
    });
  }
  const drills = drillEnvironment(manifest);
  for (const scope of DRILL_SCOPES) {
    const every = manifest.drills[scope].every;
    if (!drills || parseDuration(every) === 0) continue;
    const request: DrillRequest = { scope, requester: 'drill schedule' };
    desired.push({
      scheduleId: `${maintenancePrefix(manifest)}drill-${scope}`,
      kind: 'drill',
      what: `${scope} rollback drill of ${drills}`,
      every,
      action: {
        type: 'startWorkflow',
        workflowType: drillWorkflow,
        args: [request],
        taskQueue,
        workflowId: `drill-${drills}-${scope}`,
      },
    });
  }
  const maintenance: [Exclude<ScheduleKind, 'drift' | 'snapshot' | 'drill'>, string, string][] = [
    ['prune', manifest.snapshots.prune.every, 'forget by the retention tiers, then prune the repository'],
    ['check', manifest.snapshots.check.every, 'restic check of the repository'],
  ];
  for (const [task, every, what] of maintenance) {
    if (parseDuration(every) === 0) continue;
    const request: MaintenanceRequest = { task };
    desired.push({
      scheduleId: `${maintenancePrefix(manifest)}${task}`,
      kind: task,
      what,
      every,
      action: {
        type: 'startWorkflow',
        workflowType: repositoryMaintenanceWorkflow,
        args: [request],
        taskQueue,
        workflowId: `repository-${task}`,
      },
    });
  }
  return desired;
}

const workflowTypeName = (type: string | Workflow) => (typeof type === 'string' ? type : type.name);

function changeOf(d: ScheduleSpec, change: ScheduleChange['change']): ScheduleChange {
  return {
    scheduleId: d.scheduleId,
    kind: d.kind,
    what: d.what,
    ...(d.from !== undefined ? { from: d.from } : {}),
    ...(d.to !== undefined ? { to: d.to } : {}),
    every: d.every,
    ...(d.every !== '?' ? { everyMs: parseDuration(d.every) } : {}),
    change,
  };
}

export async function applySchedules(client: Client, manifest: Manifest): Promise<ScheduleChange[]> {
  const changes: ScheduleChange[] = [];
  const desired = desiredSchedules(manifest);
  for (const want of desired) {
    const everyMs = parseDuration(want.every);
    const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: everyMs };
    const handle = client.schedule.getHandle(want.scheduleId);
    let current: ScheduleDescription | undefined;
    try {
      current = await handle.describe();
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
    if (!current) {
      await client.schedule.create({
        scheduleId: want.scheduleId,
        spec: { intervals: [{ every: everyMs }] },
        action: want.action,
        policies,
        state: { note: `${want.what}, every ${want.every} (rewind schedules apply)` },
      });
      changes.push(changeOf(want, 'created'));
      continue;
    }
    const currentEvery = current.spec.intervals?.[0]?.every;
    const same =
      current.spec.intervals?.length === 1 &&
      Number(currentEvery) === everyMs &&
      current.action.type === 'startWorkflow' &&
      current.action.workflowType === workflowTypeName(want.action.workflowType) &&
      current.action.taskQueue === want.action.taskQueue &&
      JSON.stringify(current.action.args) === JSON.stringify(want.action.args) &&
      current.policies.overlap === ScheduleOverlapPolicy.SKIP &&
      current.policies.catchupWindow === everyMs;
    if (same) {
      changes.push(changeOf(want, 'unchanged'));
      continue;
    }
    // Paused or not stays as the operator left it.
    await handle.update((previous) => ({
      ...previous,
      spec: { intervals: [{ every: everyMs }] },
      action: want.action,
      policies,
    }));
    changes.push(changeOf(want, 'updated'));
  }
  const wanted = new Set(desired.map((d) => d.scheduleId));
  for (const existing of await listSchedules(client, manifest)) {
    if (wanted.has(existing.scheduleId)) continue;
    await client.schedule.getHandle(existing.scheduleId).delete();
    changes.push(
      changeOf(
        {
          scheduleId: existing.scheduleId,
          kind: existing.kind ?? 'drift',
          what: existing.what ?? existing.scheduleId,
          ...(existing.from !== undefined ? { from: existing.from } : {}),
          ...(existing.to !== undefined ? { to: existing.to } : {}),
          every: existing.everyMs ? formatInterval(existing.everyMs) : '?',
        },
        'deleted',
      ),
    );
  }
  return changes;
}

/** What a schedule does, from its action. */
function describeAction(description: ScheduleDescription): Pick<ScheduleView, 'kind' | 'what' | 'from' | 'to'> {
  if (description.action.type !== 'startWorkflow') return {};
  const [arg] = description.action.args as unknown[];
  const type = description.action.workflowType;
  if (type === driftScanWorkflow.name) {
    const { from, to } = (arg ?? {}) as DriftScanRequest;
    return {
      kind: 'drift',
      what: `drift scan ${from ?? '?'} → ${to ?? '?'}`,
      ...(from ? { from } : {}),
      ...(to ? { to } : {}),
    };
  }
  if (type === snapshotWorkflow.name)
    return { kind: 'snapshot', what: `cross-section of ${(arg as SnapshotRequest | undefined)?.environment ?? '?'}` };
  if (type === drillWorkflow.name)
    return { kind: 'drill', what: `${(arg as DrillRequest | undefined)?.scope ?? 'partial'} rollback drill` };
  if (type === repositoryMaintenanceWorkflow.name) {
    const task = (arg as MaintenanceRequest | undefined)?.task ?? 'prune';
    return {
      kind: task,
      what: task === 'check' ? 'restic check of the repository' : 'forget and prune the repository',
    };
  }
  return { what: type };
}

export async function listSchedules(client: Client, manifest: Manifest): Promise<ScheduleView[]> {
  const views: ScheduleView[] = [];
  for await (const summary of client.schedule.list()) {
    if (!ours(manifest, summary.scheduleId)) continue;
    const description = await client.schedule.getHandle(summary.scheduleId).describe();
    const every = description.spec.intervals?.[0]?.every;
    const last = description.info.recentActions.at(-1);
    const next = description.info.nextActionTimes[0];
    views.push({
      scheduleId: summary.scheduleId,
      ...describeAction(description),
      // Both shapes, as `schedules apply` prints them: `every` for people, `everyMs` for scripts.
      ...(every !== undefined ? { every: formatInterval(Number(every)), everyMs: Number(every) } : {}),
      paused: description.state.paused,
      ...(description.state.note ? { note: description.state.note } : {}),
      // Temporal keeps computing a paused schedule's next times; none of them will run.
      ...(next && !description.state.paused ? { nextRun: next.toISOString() } : {}),
      ...(last ? { lastRun: last.takenAt.toISOString() } : {}),
    });
  }
  return views.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

/**
 * A schedule named by its id, by its drift pair (`production-regression` or
 * `production:regression`), or by its maintenance name (`snapshot-production`, `prune`, `check`,
 * `drill-partial`, `drill-full`).
 */
export async function setSchedulePaused(
  client: Client,
  manifest: Manifest,
  name: string,
  paused: boolean,
  note: string,
): Promise<{ scheduleId: string; changed: boolean; note: string }> {
  const candidates = ours(manifest, name)
    ? [name]
    : [`${driftPrefix(manifest)}${name.replace(':', '-')}`, `${maintenancePrefix(manifest)}${name}`];
  for (const scheduleId of candidates) {
    const handle = client.schedule.getHandle(scheduleId);
    try {
      // Already so: the note of whoever paused (or resumed) it stays, and says who and why.
      const { state } = await handle.describe();
      if (state.paused === paused) return { scheduleId, changed: false, note: state.note ?? '' };
      if (paused) await handle.pause(note);
      else await handle.unpause(note);
      return { scheduleId, changed: true, note };
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
  }
  const known = (await listSchedules(client, manifest)).map((s) =>
    s.scheduleId.slice((s.kind === 'drift' ? driftPrefix(manifest) : maintenancePrefix(manifest)).length),
  );
  throw new RequestError(
    `no schedule "${name}" (${known.length ? `there are: ${known.join(', ')}` : 'none yet: rewind schedules apply'})`,
  );
}
