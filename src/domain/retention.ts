// Which cross-sections to keep and which to forget (seed 6.2.2, 7.6.2). restic's own keep
// policies (`restic forget --keep-within-hourly …`) judge one restic snapshot at a time; a
// cross-section is several (a data and a listing snapshot per component), taken seconds apart,
// and restic could keep half of one. So the same rules are applied here to whole
// cross-sections, and restic is then told exactly which snapshots to forget.
//
// The tiers, as restic's keep-within rules: for scheduled cross-sections, the newest of each
// hour within `hourly` of the newest scheduled one (hot), of each day within `daily` (cold), of
// each ISO week within `weekly` (archive). Counting from the newest, not from now, as restic
// does: when snapshots stop being taken, the history does not drain away.
import type { CrossSection } from './cross-section';

export const TIERS = ['hourly', 'daily', 'weekly'] as const;
export type Tier = (typeof TIERS)[number];
/** The retention tier names of seed 7.6.2, by the rule that keeps a scheduled cross-section. */
export const TIER_NAMES: Record<Tier, string> = { hourly: 'hot', daily: 'cold', weekly: 'archive' };

export interface KeepPolicy {
  /** Milliseconds, for each rule; 0 turns a rule off. */
  hourlyMs: number;
  dailyMs: number;
  weeklyMs: number;
  /** Cross-sections taken on request (snapshot create, pre-deploy), from now. */
  eventMs: number;
  /** Safety cross-sections of rollbacks that have ended, from now. */
  safetyMs: number;
  /** The newest cross-section of each of the newest N versions is kept whatever its age. */
  releases: number;
  /** Versions kept whatever their age (their newest cross-section). */
  pinned: readonly string[];
}

/** Why a cross-section stays, or why it goes. */
export interface RetentionVerdict {
  id: string;
  environment: string;
  time: string;
  origin: CrossSection['origin'];
  version?: string;
  keep: boolean;
  /** For a kept scheduled cross-section, the finest rule that keeps it. */
  tier?: Tier;
  reason: string;
}

export interface RetentionFacts {
  now: Date;
  /** Workflows still running (rollbacks, snapshots): their cross-sections are never forgotten. */
  runningWorkflows: ReadonlySet<string>;
  /** Cross-sections running rollbacks target, by id, with the run. */
  targets: ReadonlyMap<string, string>;
}

/** An incomplete cross-section whose workflow has ended is a leftover once it is this old. */
const INCOMPLETE_GRACE_MS = 24 * 3600_000;

const hourKey = (t: Date) => t.toISOString().slice(0, 13);
const dayKey = (t: Date) => t.toISOString().slice(0, 10);
/** ISO 8601 week, as restic groups weeks: `2026-W48`. */
function weekKey(t: Date): string {
  const d = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
  const day = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((d.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}
const BUCKET: Record<Tier, (t: Date) => string> = { hourly: hourKey, daily: dayKey, weekly: weekKey };
const BUCKET_NAME: Record<Tier, string> = { hourly: 'hour', daily: 'day', weekly: 'ISO week' };

/** Applies the policy to one environment's cross-sections (any order); one verdict each, newest first. */
export function retentionVerdicts(
  sections: readonly CrossSection[],
  policy: KeepPolicy,
  facts: RetentionFacts,
): RetentionVerdict[] {
  const newestFirst = [...sections].sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || b.id.localeCompare(a.id));
  const now = facts.now.getTime();
  const verdicts = new Map<string, RetentionVerdict>();
  const decide = (s: CrossSection, keep: boolean, reason: string, tier?: Tier) => {
    if (verdicts.has(s.id)) return;
    verdicts.set(s.id, {
      id: s.id,
      environment: s.environment,
      time: s.time,
      origin: s.origin,
      ...(s.version !== undefined ? { version: s.version } : {}),
      keep,
      ...(tier ? { tier } : {}),
      reason,
    });
  };

  // What nothing forgets: the cross-sections of runs still going, and the targets of rollbacks.
  for (const s of newestFirst) {
    if (s.workflowId && facts.runningWorkflows.has(s.workflowId))
      decide(s, true, `its workflow ${s.workflowId} is still running`);
    const by = facts.targets.get(s.id);
    if (by) decide(s, true, `the running rollback ${by} targets it`);
  }

  // Releases: the newest cross-section of each of the newest N versions, and of pinned ones.
  const releases: string[] = [];
  for (const s of newestFirst) {
    if (s.version === undefined || s.origin === 'safety' || s.origin === 'dry-run' || !s.complete) continue;
    if (releases.includes(s.version)) continue;
    releases.push(s.version);
    if (policy.pinned.includes(s.version)) decide(s, true, `version ${s.version} is pinned (snapshots.keep.versions)`);
    else if (releases.length <= policy.releases)
      decide(s, true, `release ${s.version} is among the newest ${policy.releases} (snapshots.keep.releases)`);
  }

  // Scheduled: the keep-within rules, counted from the newest scheduled cross-section.
  const scheduled = newestFirst.filter((s) => s.origin === 'schedule' && s.complete);
  const newestScheduled = scheduled[0] ? Date.parse(scheduled[0].time) : now;
  const windows: Record<Tier, number> = {
    hourly: policy.hourlyMs,
    daily: policy.dailyMs,
    weekly: policy.weeklyMs,
  };
  const seen: Record<Tier, Set<string>> = { hourly: new Set(), daily: new Set(), weekly: new Set() };
  for (const s of scheduled) {
    const t = new Date(s.time);
    const age = newestScheduled - t.getTime();
    let tier: Tier | undefined;
    for (const rule of TIERS) {
      if (windows[rule] <= 0 || age > windows[rule]) continue;
      const bucket = BUCKET[rule](t);
      if (seen[rule].has(bucket)) continue;
      seen[rule].add(bucket);
      tier ??= rule;
    }
    if (tier) decide(s, true, `${TIER_NAMES[tier]} tier: the newest of its ${BUCKET_NAME[tier]}`, tier);
    else decide(s, false, 'older than every tier keeps, or not the newest of its hour, day or week');
  }

  for (const s of newestFirst) {
    const age = now - Date.parse(s.time);
    if (!s.complete) {
      if (age > INCOMPLETE_GRACE_MS) decide(s, false, 'incomplete (its snapshot never finished) and over a day old');
      else decide(s, true, 'incomplete, but under a day old: its snapshot may still be finishing');
      continue;
    }
    if (s.origin === 'dry-run') decide(s, false, 'taken by a dry run that has ended');
    else if (s.origin === 'safety')
      decide(
        s,
        age <= policy.safetyMs,
        age <= policy.safetyMs
          ? 'safety, its rollback ended recently'
          : 'safety of an ended rollback, past snapshots.keep.safety',
      );
    else if (s.origin === 'manual')
      decide(
        s,
        age <= policy.eventMs,
        age <= policy.eventMs
          ? 'taken on request, within snapshots.keep.event'
          : 'taken on request, past snapshots.keep.event',
      );
  }
  return newestFirst.map((s) => verdicts.get(s.id)!);
}
