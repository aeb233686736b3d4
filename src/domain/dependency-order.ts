// Order of components by `dependsOn`: a component runs after everything it depends on.
// Pure, so both the manifest validation and the rollback workflow use it.

export interface DependencyNode {
  name: string;
  dependsOn: readonly string[];
}

/** A cycle as a closed path (`a -> b -> a`), or undefined when the graph has none. */
export function dependencyCycle(nodes: readonly DependencyNode[]): string[] | undefined {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];

  const visit = (name: string): string[] | undefined => {
    const seen = state.get(name);
    if (seen === 'done') return undefined;
    if (seen === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, 'visiting');
    stack.push(name);
    for (const dep of byName.get(name)?.dependsOn ?? []) {
      if (!byName.has(dep)) continue;
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(name, 'done');
    return undefined;
  };

  for (const node of [...nodes].sort((a, b) => a.name.localeCompare(b.name))) {
    const cycle = visit(node.name);
    if (cycle) return cycle;
  }
  return undefined;
}

/**
 * Keeps only the dependencies among the chosen components, so a partial rollback of
 * `models` alone does not wait for `config`.
 */
export function restrictDependencies<T extends DependencyNode>(nodes: readonly T[], chosen: readonly string[]): T[] {
  const keep = new Set(chosen);
  return nodes
    .filter((n) => keep.has(n.name))
    .map((n) => ({ ...n, dependsOn: n.dependsOn.filter((d) => keep.has(d)) }));
}

/**
 * Components grouped in waves: each wave depends only on earlier waves, so the members of a
 * wave may run in parallel. Names are sorted inside a wave for a stable, readable order.
 */
export function dependencyWaves(nodes: readonly DependencyNode[]): string[][] {
  const cycle = dependencyCycle(nodes);
  if (cycle) throw new RangeError(`dependency cycle: ${cycle.join(' -> ')}`);
  const names = new Set(nodes.map((n) => n.name));
  const remaining = new Map(nodes.map((n) => [n.name, n.dependsOn.filter((d) => names.has(d))]));
  const done = new Set<string>();
  const waves: string[][] = [];
  while (remaining.size > 0) {
    const wave = [...remaining].filter(([, deps]) => deps.every((d) => done.has(d))).map(([n]) => n);
    wave.sort();
    wave.forEach((n) => {
      remaining.delete(n);
      done.add(n);
    });
    waves.push(wave);
  }
  return waves;
}

/** Stops a node whose turn came after another's failure; never surfaces (the first failure does). */
class NotRun extends Error {}

/**
 * Runs `step` for every node once everything it depends on has succeeded, independent nodes
 * concurrently. After the first failure no further step starts. `unfinished` is called for
 * each node whose step failed or never started. Resolves with the first failure, or
 * undefined. Deterministic promise plumbing only, so workflow code uses it.
 */
export async function runInDependencyOrder<T extends DependencyNode>(
  nodes: readonly T[],
  step: (node: T) => Promise<void>,
  unfinished: (node: T) => void,
): Promise<unknown> {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const runs = new Map<string, Promise<void>>();
  let firstFailure: unknown;
  const start = (node: T): Promise<void> => {
    let started = runs.get(node.name);
    if (!started) {
      started = (async () => {
        await Promise.all(node.dependsOn.filter((d) => byName.has(d)).map((d) => start(byName.get(d)!)));
        // An earlier failure stops what has not started; it is not this node's failure.
        if (firstFailure !== undefined) throw new NotRun();
        await step(node);
      })().catch((err: unknown) => {
        unfinished(node);
        firstFailure ??= err;
        throw err;
      });
      runs.set(node.name, started);
    }
    return started;
  };
  await Promise.allSettled(nodes.map(start));
  return firstFailure;
}
