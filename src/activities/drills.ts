// Control activities of a drill: what it does (the environment, its current and previous
// releases, the components in turn), and its record in the project store (rewind drill list,
// the metrics).
import { ApplicationFailure } from '@temporalio/common';
import { drillEnvironment } from '../drills/section';
import { releasesOf, type DrillPlan, type DrillRequest, type DrillResult } from '../domain/drill';
import { ErrorType } from '../domain/errors';
import { parseDuration } from '../manifest/duration';
import type { Manifest } from '../manifest/schema';
import type { SnapshotStore } from '../snapshots/store';
import type { ProjectStore } from '../store/project-store';

export interface DrillDeps {
  manifest: Manifest;
  store: SnapshotStore;
  projectStore: () => Promise<ProjectStore>;
}

export function createDrillActivities(deps: DrillDeps) {
  const { manifest } = deps;
  const refuse = (message: string) => ApplicationFailure.nonRetryable(message, ErrorType.InvalidRequest);

  async function planDrill(request: DrillRequest & { drillId: string }): Promise<DrillPlan> {
    const environment = request.environment ?? drillEnvironment(manifest);
    if (!environment) throw refuse('no drill environment: set drills.environment, or have a "regression" environment');
    const env = manifest.environments[environment];
    if (!env)
      throw refuse(
        `unknown environment "${environment}" (the manifest has: ${Object.keys(manifest.environments).join(', ')})`,
      );
    const all = Object.keys(env.components);
    const unknown = (request.components ?? []).filter((c) => !all.includes(c));
    if (unknown.length)
      throw refuse(`${environment} has no component ${unknown.join(', ')} (it has: ${all.join(', ')})`);
    const { current, previous } = releasesOf(await deps.store.crossSections(environment));
    if (!current || !previous)
      throw refuse(
        `${environment} has ${current ? `only one release (${current})` : 'no release'} in the repository: a drill rolls back to the release before the current one (rewind snapshot create --env ${environment} --version V)`,
      );
    let components = request.components ?? all;
    if (request.scope === 'partial' && !request.components) {
      // In turn: the next of drills.partial.components (or every component) after the last partial drill's.
      const turn = manifest.drills.partial.components ?? all;
      const [row] = await (
        await deps.projectStore()
      ).query<{ n: string | number }>(`SELECT count(*) AS n FROM drills WHERE environment = $1 AND scope = 'partial'`, [
        environment,
      ]);
      components = [turn[Number(row?.n ?? 0) % turn.length]!];
    }
    return {
      drillId: request.drillId,
      environment,
      scope: request.scope,
      components,
      current,
      previous,
      mttrGoalMs: parseDuration(manifest.drills.mttrGoal),
    };
  }

  async function recordDrill(result: DrillResult): Promise<void> {
    await (
      await deps.projectStore()
    ).query(
      `INSERT INTO drills (id, environment, scope, components, from_version, to_version, started_at, finished_at,
                           outcome, reason, rollback_run_id, rollback_seconds, forward_seconds, mttr_goal_seconds, met_goal)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
       ON CONFLICT (id) DO NOTHING`,
      [
        result.drillId,
        result.environment,
        result.scope,
        JSON.stringify(result.components),
        result.current,
        result.previous,
        result.startedAt,
        result.finishedAt,
        result.outcome,
        result.reason ?? null,
        result.rollbackRunId,
        result.rollbackMs / 1000,
        result.forwardMs === undefined ? null : result.forwardMs / 1000,
        result.mttrGoalMs / 1000,
        result.metGoal,
      ],
    );
  }

  return { planDrill, recordDrill };
}

export type DrillActivities = ReturnType<typeof createDrillActivities>;
