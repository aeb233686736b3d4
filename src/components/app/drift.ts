// The app kind's drift comparison: which release each environment runs. One round; the colour
// a release runs on is where, not what, so it is no finding. Pure.
import type { DriftAnswer, DriftDifference, KindDrift } from '../drift';
import type { AppComponent, AppStrategy } from './kind';

export interface AppDriftAnswer extends DriftAnswer {
  kind: 'app';
  strategy: AppStrategy;
  version?: string;
  colour?: string;
  /** Why the version could not be read. */
  problem?: string;
}

export const appDrift: KindDrift<AppComponent> = {
  firstQuestion: () => ({ kind: 'app' }),
  compare(_question, fromAnswer, toAnswer) {
    const from = fromAnswer as AppDriftAnswer;
    const to = toAnswer as AppDriftAnswer;
    const differences: DriftDifference[] = [];
    if (from.version !== to.version) {
      const side = (a: AppDriftAnswer) => a.version ?? `unknown (${a.problem ?? 'no answer'})`;
      differences.push({
        subject: 'version',
        change: from.version === undefined ? 'added' : to.version === undefined ? 'removed' : 'changed',
        detail: `${side(from)} → ${side(to)}`,
        aspect: 'version',
        // Not knowing which release runs is worse than a known difference.
        ...(from.version === undefined || to.version === undefined ? { severity: 'critical' as const } : {}),
      });
    }
    return { differences, next: [] };
  },
};
