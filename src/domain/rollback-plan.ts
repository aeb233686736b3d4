// A rollback's plan, assembled from the plans each component's agent made. Pure: the workflow
// calls it in prepare.
import { dependencyWaves } from './dependency-order';
import type { ComponentPlan, RollbackComponent, RollbackPlan } from './rollback';

export function assemblePlan(
  safetyCrossSectionId: string,
  components: RollbackComponent[],
  plans: ComponentPlan[],
): RollbackPlan {
  const total = (pick: (c: ComponentPlan) => number) => plans.reduce((sum, c) => sum + pick(c), 0);
  return {
    safetyCrossSectionId,
    order: dependencyWaves(components),
    components: plans,
    totals: {
      added: total((c) => c.added),
      changed: total((c) => c.changed),
      removed: total((c) => c.removed),
      bytesToWrite: total((c) => c.bytesToWrite),
    },
    destructive: plans.some((c) => c.destructive === true),
  };
}

/** Components whose chosen strategy the plan found not possible, one line each. */
export function impossibleSteps(plan: RollbackPlan): string[] {
  return plan.components.flatMap((c) => {
    const chosen = c.impact?.find((i) => i.strategy === c.strategy);
    return chosen && !chosen.available
      ? [`${c.component}: the ${chosen.strategy} strategy is not possible (${chosen.unavailable ?? '?'})`]
      : [];
  });
}
