// Temporal Schedules for drift scans: one per environment pair of the manifest, every `every`
// (1h by default), overlapping runs skipped, missed runs caught up within one interval. They show
// in the Web UI's Schedules page; `rewind schedules apply` makes them match the manifest.
import { ScheduleNotFoundError, type Client, type ScheduleDescription } from '@temporalio/client';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { driftScanWorkflowId, type DriftScanRequest } from '../domain/drift-scan';
import { driftPairs } from '../drift/rules';
import { parseDuration } from '../manifest/duration';
import type { Manifest } from '../manifest/schema';
import { driftScanWorkflow } from '../workflows';
import { RequestError } from './client';

export interface ScheduleChange {
  scheduleId: string;
  from: string;
  to: string;
  every: string;
  change: 'created' | 'updated' | 'unchanged' | 'deleted';
}

export interface ScheduleView {
  scheduleId: string;
  from?: string;
  to?: string;
  everyMs?: number;
  paused: boolean;
  note?: string;
  nextRun?: string;
  lastRun?: string;
}

/** Schedule ids carry the control task queue, so two rewind installs on one namespace keep theirs apart. */
function prefix(manifest: Manifest): string {
  return `${manifest.temporal.taskQueue}-drift-`;
}

export function driftScheduleId(manifest: Manifest, from: string, to: string): string {
  return `${prefix(manifest)}${from}-${to}`;
}

export async function applySchedules(client: Client, manifest: Manifest): Promise<ScheduleChange[]> {
  const pairs = driftPairs(manifest.drift, Object.keys(manifest.environments));
  const changes: ScheduleChange[] = [];
  const wanted = new Set<string>();
  for (const pair of pairs) {
    const scheduleId = driftScheduleId(manifest, pair.from, pair.to);
    wanted.add(scheduleId);
    const everyMs = parseDuration(pair.every);
    const request: DriftScanRequest = { from: pair.from, to: pair.to, trigger: 'schedule' };
    const action = {
      type: 'startWorkflow' as const,
      workflowType: driftScanWorkflow,
      args: [request] as [DriftScanRequest],
      taskQueue: manifest.temporal.taskQueue,
      // The schedule appends the time: a manual scan of the pair still runs under the bare id.
      workflowId: driftScanWorkflowId(pair.from, pair.to),
    };
    const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: everyMs };
    const handle = client.schedule.getHandle(scheduleId);
    let current: ScheduleDescription | undefined;
    try {
      current = await handle.describe();
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
    const base = { scheduleId, from: pair.from, to: pair.to, every: pair.every };
    if (!current) {
      await client.schedule.create({
        scheduleId,
        spec: { intervals: [{ every: everyMs }] },
        action,
        policies,
        state: { note: `drift scan ${pair.from} → ${pair.to}, every ${pair.every} (rewind schedules apply)` },
      });
      changes.push({ ...base, change: 'created' });
      continue;
    }
    const currentEvery = current.spec.intervals?.[0]?.every;
    const same =
      current.spec.intervals?.length === 1 &&
      Number(currentEvery) === everyMs &&
      current.action.type === 'startWorkflow' &&
      current.action.taskQueue === manifest.temporal.taskQueue &&
      JSON.stringify(current.action.args) === JSON.stringify(action.args) &&
      current.policies.overlap === ScheduleOverlapPolicy.SKIP &&
      current.policies.catchupWindow === everyMs;
    if (same) {
      changes.push({ ...base, change: 'unchanged' });
      continue;
    }
    // Paused or not stays as the operator left it.
    await handle.update((previous) => ({
      ...previous,
      spec: { intervals: [{ every: everyMs }] },
      action,
      policies,
    }));
    changes.push({ ...base, change: 'updated' });
  }
  for (const existing of await listSchedules(client, manifest)) {
    if (wanted.has(existing.scheduleId)) continue;
    await client.schedule.getHandle(existing.scheduleId).delete();
    changes.push({
      scheduleId: existing.scheduleId,
      from: existing.from ?? '?',
      to: existing.to ?? '?',
      every: existing.everyMs ? `${existing.everyMs / 1000}s` : '?',
      change: 'deleted',
    });
  }
  return changes;
}

export async function listSchedules(client: Client, manifest: Manifest): Promise<ScheduleView[]> {
  const views: ScheduleView[] = [];
  for await (const summary of client.schedule.list()) {
    if (!summary.scheduleId.startsWith(prefix(manifest))) continue;
    const description = await client.schedule.getHandle(summary.scheduleId).describe();
    const args = description.action.type === 'startWorkflow' ? (description.action.args as DriftScanRequest[]) : [];
    const every = description.spec.intervals?.[0]?.every;
    const last = description.info.recentActions.at(-1);
    const next = description.info.nextActionTimes[0];
    views.push({
      scheduleId: summary.scheduleId,
      ...(args[0]?.from ? { from: args[0].from } : {}),
      ...(args[0]?.to ? { to: args[0].to } : {}),
      ...(every !== undefined ? { everyMs: Number(every) } : {}),
      paused: description.state.paused,
      ...(description.state.note ? { note: description.state.note } : {}),
      ...(next ? { nextRun: next.toISOString() } : {}),
      ...(last ? { lastRun: last.takenAt.toISOString() } : {}),
    });
  }
  return views.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

/** A schedule named by its id or by its pair (`production-regression` or `production:regression`). */
export async function setSchedulePaused(
  client: Client,
  manifest: Manifest,
  name: string,
  paused: boolean,
  note: string,
): Promise<string> {
  const scheduleId = name.startsWith(prefix(manifest)) ? name : `${prefix(manifest)}${name.replace(':', '-')}`;
  const handle = client.schedule.getHandle(scheduleId);
  try {
    if (paused) await handle.pause(note);
    else await handle.unpause(note);
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) {
      const known = (await listSchedules(client, manifest)).map((s) => s.scheduleId.slice(prefix(manifest).length));
      throw new RequestError(
        `no drift schedule "${name}" (${known.length ? `there are: ${known.join(', ')}` : 'none yet: rewind schedules apply'})`,
      );
    }
    throw err;
  }
  return scheduleId;
}
