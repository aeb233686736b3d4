// Which environments and components a drift scan compares, checked against the manifest before
// anything starts: the CLI and the scan's first activity give the same answer to the same request.
import type { DriftScanRequest } from '../domain/drift-scan';
import { didYouMean } from '../manifest/fields';
import type { Manifest } from '../manifest/schema';
import { driftPairs } from './rules';

/** The scan's pair: the request's, else the manifest's first drift pair. */
export function resolvePair(
  manifest: Manifest,
  request: Pick<DriftScanRequest, 'from' | 'to'>,
): { from: string; to: string } {
  const envNames = Object.keys(manifest.environments);
  for (const env of [request.from, request.to]) {
    const problem = env === undefined ? undefined : unknownEnvironment(manifest, env);
    if (problem) throw new DriftRequestError(problem);
  }
  const pairs = driftPairs(manifest.drift, envNames);
  // One side named: the other is its partner in a drift pair, whichever side it is on there.
  const partner = (env: string) => pairs.find((p) => p.from === env)?.to ?? pairs.find((p) => p.to === env)?.from;
  let { from, to } = request;
  if (from === undefined && to === undefined) ({ from, to } = pairs[0] ?? {});
  else if (to === undefined) to = partner(from!);
  else if (from === undefined) from = partner(to);
  if (from === undefined || to === undefined) {
    const given = request.from ?? request.to;
    throw new DriftRequestError(
      given
        ? `no drift pair has ${given}: name the other environment too (--${request.from ? 'to' : 'from'})`
        : 'name both environments to compare (--from and --to): the manifest has no drift pair, and no production and regression environments',
    );
  }
  if (from === to) throw new DriftRequestError(`cannot compare ${from} with itself`);
  return { from, to };
}

/** Why `env` is not one of the manifest's environments, or undefined when it is. */
export function unknownEnvironment(manifest: Manifest, env: string): string | undefined {
  const names = Object.keys(manifest.environments);
  if (names.includes(env)) return undefined;
  const hint = didYouMean(env, names);
  return `unknown environment "${env}" (the manifest has: ${names.join(', ')})${hint ? `; ${hint}` : ''}`;
}

export class DriftRequestError extends Error {
  override name = 'DriftRequestError';
}

/** The components a scan compares: the request's (each on at least one side), else all. */
export function scanComponents(manifest: Manifest, pair: { from: string; to: string }, requested?: string[]): string[] {
  const fromComponents = Object.keys(manifest.environments[pair.from]!.components);
  const toComponents = Object.keys(manifest.environments[pair.to]!.components);
  const all = [...new Set([...fromComponents, ...toComponents])].sort();
  if (!requested?.length) return all;
  for (const name of requested) {
    if (!all.includes(name)) {
      const hint = didYouMean(name, all);
      throw new DriftRequestError(
        `unknown component "${name}": neither ${pair.from} nor ${pair.to} has it (they have: ${all.join(', ')})${hint ? `; ${hint}` : ''}`,
      );
    }
  }
  return [...new Set(requested)].sort();
}

/** Why a sync request cannot run, checked before anything starts (the CLI asks too). */
export function syncRequestProblem(
  manifest: Manifest,
  request: { from?: string | undefined; to?: string | undefined; components: string[] },
): string | undefined {
  try {
    const pair = resolvePair(manifest, request);
    const pairs = driftPairs(manifest.drift, Object.keys(manifest.environments));
    // The environment drift pairs compare others against (production) is changed by releases and
    // rollbacks, never overwritten from one that tracks it.
    const reference = pairs.find((p) => p.from === pair.to);
    if (reference && !pairs.some((p) => p.to === pair.to))
      return `a sync writes only to an environment that tracks another, and drift pairs compare others against ${pair.to} (${reference.from} → ${reference.to}): sync --from ${reference.from} --to ${reference.to} brings ${reference.to} in line; to change ${pair.to}, roll it back (rewind rollback start --env ${pair.to} …)`;
    scanComponents(manifest, pair, request.components);
    for (const name of request.components) {
      const a = manifest.environments[pair.from]!.components[name];
      const b = manifest.environments[pair.to]!.components[name];
      if (!a || !b)
        return `component "${name}" is not in both ${pair.from} and ${pair.to}: there is nothing to sync it from or to`;
      if (a.kind !== b.kind) return `component "${name}" is a ${a.kind} in ${pair.from} but a ${b.kind} in ${pair.to}`;
    }
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
