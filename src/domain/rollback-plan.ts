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

/**
 * Everything in the plan that cannot be done, one line each with what to do instead: a chosen
 * strategy that is not possible, and target data that could not be read back.
 */
export function blockedSteps(plan: RollbackPlan): string[] {
  return plan.components.flatMap((c) => [
    ...(c.targetCheck && !c.targetCheck.readable
      ? [`${c.component}: not possible: ${c.targetCheck.note}; choose another target`]
      : []),
    ...impossibleSteps({ ...plan, components: [c] }).map((line) => `${line}; choose another with --strategy`),
  ]);
}
