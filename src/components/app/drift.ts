// The app kind's drift comparison: which release each environment runs. One round; the colour
// a release runs on is where, not what, so it is no finding. Pure.
import type { DriftAnswer, DriftDifference, KindDrift } from '../drift';
import type { AppComponent, AppStrategy } from './kind';

export interface AppDriftAnswer extends DriftAnswer {
  kind: 'app';
  strategy: AppStrategy;
  version?: string;
  colour?: string;
  /** command: the SHA-256 of what the fingerprint command printed. */
  identity?: string;
  /** Why the version could not be read. */
  problem?: string;
}

export const appDrift: KindDrift<AppComponent> = {
  firstQuestion: () => ({ kind: 'app' }),
  syncOverwrites: (_component, { from, to }) => `${to} is switched to the release ${from} runs`,
  compare(_question, fromAnswer, toAnswer) {
    const from = fromAnswer as AppDriftAnswer;
    const to = toAnswer as AppDriftAnswer;
    const differences: DriftDifference[] = [];
    if (from.version !== to.version) {
      const side = (a: AppDriftAnswer) => a.version ?? `unknown (${a.problem ?? 'no answer'})`;
      differences.push({
        subject: 'version',
        // The application is there on both sides; one only cannot tell which release runs.
        change: 'changed',
        detail: `${side(from)} → ${side(to)}`,
        aspect: 'version',
        // Not knowing which release runs is worse than a known difference.
        ...(from.version === undefined || to.version === undefined ? { severity: 'critical' as const } : {}),
      });
    } else if (from.identity !== undefined && to.identity !== undefined && from.identity !== to.identity)
      differences.push({
        subject: 'fingerprint',
        change: 'changed',
        detail: `both run ${from.version ?? '?'}, but their fingerprint commands print different things (sha256 ${from.identity.slice(0, 12)}… → ${to.identity.slice(0, 12)}…)`,
        aspect: 'version',
      });
    return { differences, next: [] };
  },
};
