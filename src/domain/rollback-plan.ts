// A rollback's plan, assembled from the plans each component's agent made. Pure: the workflow
// calls it in prepare.
import { checksFor } from '../verify/section';
import { dependencyWaves } from './dependency-order';
import type { ComponentPlan, PlanWave, RollbackComponent, RollbackPlan, Verification } from './rollback';

export function assemblePlan(
  safetyCrossSectionId: string,
  components: RollbackComponent[],
  plans: ComponentPlan[],
  verification?: Verification,
): RollbackPlan {
  const total = (pick: (c: ComponentPlan) => number) => plans.reduce((sum, c) => sum + pick(c), 0);
  // As execute runs them: wave by wave, each in dependency order; the checks after each wave but
  // the last, whose are verify's (every check).
  const staged = verification?.waves ?? [];
  const waves: PlanWave[] = staged.map((w, i) => ({
    name: w.name,
    order: dependencyWaves(components.filter((c) => w.components.includes(c.name))),
    checks: i < staged.length - 1 ? checksFor(verification!.checks, w.components).map((c) => c.name) : [],
  }));
  return {
    safetyCrossSectionId,
    order: waves.length > 0 ? waves.flatMap((w) => w.order) : dependencyWaves(components),
    ...(waves.length > 0 ? { waves } : {}),
    ...(verification
      ? { verification: { checks: verification.checks.map((c) => c.name), onFailure: verification.onFailure } }
      : {}),
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
