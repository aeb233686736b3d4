// A rollback drill (seed 6.7): roll an environment back to its previous release, verify (the
// rollback's own verify phase), roll it forward again to the release it ran, and measure the
// rollback against the time-to-roll-back goal. Partial drills take one component, full ones all.
import { z } from 'zod';
import type { CrossSection } from './cross-section';

export const DRILL_SCOPES = ['partial', 'full'] as const;
export type DrillScope = (typeof DRILL_SCOPES)[number];

export const drillRequestSchema = z.strictObject({
  scope: z.enum(DRILL_SCOPES).default('partial'),
  /** Default: the manifest's drill environment. */
  environment: z.string().min(1).optional(),
  /** Default: for a partial drill, the next component in turn; for a full one, all. */
  components: z.array(z.string().min(1)).min(1).optional(),
  requester: z.string().min(1).max(100).default('drill schedule'),
});
export type DrillRequest = z.output<typeof drillRequestSchema>;

/** What the control worker decided a drill does. */
export interface DrillPlan {
  drillId: string;
  environment: string;
  scope: DrillScope;
  components: string[];
  /** The release the environment runs, which the drill rolls forward to at the end. */
  current: string;
  /** The release before it, which the drill rolls back to. */
  previous: string;
  mttrGoalMs: number;
}

export type DrillOutcome = 'passed' | 'failed';

export interface DrillResult extends DrillPlan {
  outcome: DrillOutcome;
  /** Why a drill failed, or that it missed the goal. */
  reason?: string;
  startedAt: string;
  finishedAt: string;
  rollbackRunId: string;
  rollbackState: string;
  rollbackMs: number;
  forwardRunId?: string;
  forwardState?: string;
  forwardMs?: number;
  /** The rollback took no longer than mttrGoal. */
  metGoal: boolean;
}

/** The release an environment runs (its newest release cross-section) and the one before it. */
export function releasesOf(sections: readonly CrossSection[]): { current?: string; previous?: string } {
  const released = sections
    .filter((s) => s.version !== undefined && s.complete && s.origin !== 'safety' && s.origin !== 'dry-run')
    .sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  const current = released[0]?.version;
  const previous = released.find((s) => s.version !== current)?.version;
  return { ...(current !== undefined ? { current } : {}), ...(previous !== undefined ? { previous } : {}) };
}

export function drillWorkflowId(environment: string, scope: DrillScope, at: Date): string {
  return `drill-${environment}-${scope}-${at.toISOString().replace(/[-:]/g, '').slice(0, 15)}`;
}
