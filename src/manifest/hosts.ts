// Expands components that run on several hosts into one component per host, `<component>@<host>`
// (src/domain/hosts.ts says why). A host's values are the component's, with the host's own
// overrides merged over them (objects key by key, anything else replaced), and are validated as
// a whole component, so a bad override is reported at its key. `dependsOn`, waves and checks'
// `after` that name the component mean every host of it; waves and `after` may name one host.
import { hostMember, splitHost } from '../domain/hosts';
import { valueAt } from './fields';
import type { Component, Manifest } from './schema';

export interface HostProblem {
  at: readonly PropertyKey[];
  message: string;
  /** Said after the place: "did you mean …?". */
  hint?: string | undefined;
}

/** A component as the manifest's schema reads it, or its problems at keys relative to it. */
type ComponentParse = (raw: unknown) => { data: Component } | { problems: HostProblem[] };

/** Keys a host cannot change: what the component is, where it runs, and what it waits for. */
const FIXED_KEYS = ['kind', 'hosts', 'dependsOn'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const mine = out[key];
    out[key] = isObject(mine) && isObject(value) ? merge(mine, value) : value;
  }
  return out;
}

/** The hosts a component's `hosts` names, with each one's overrides. */
export function hostsOf(hosts: Component['hosts']): [string, Record<string, unknown>][] {
  if (hosts === undefined) return [];
  return Array.isArray(hosts) ? hosts.map((h) => [h, {}]) : Object.entries(hosts).map(([h, o]) => [h, o ?? {}]);
}

/**
 * The manifest with every multi-host component replaced by its hosts' components, or the problems
 * that stop it. `input` is the manifest as read (before defaults), so overrides merge over what
 * the file says.
 */
export function expandHosts(
  manifest: Manifest,
  input: unknown,
  parseComponent: ComponentParse,
): { manifest: Manifest; problems: HostProblem[] } {
  const problems: HostProblem[] = [];
  const environments: Manifest['environments'] = {};
  for (const [envName, env] of Object.entries(manifest.environments)) {
    const members = new Map<string, string[]>();
    for (const [name, c] of Object.entries(env.components))
      members.set(name, c.hosts === undefined ? [name] : hostsOf(c.hosts).map(([h]) => hostMember(name, h)));
    if ([...members.values()].every((m) => m.length === 1 && !m[0]!.includes('@'))) {
      environments[envName] = env;
      continue;
    }
    const expand = (names: readonly string[]) =>
      names.flatMap((n) => (splitHost(n).host !== undefined ? [n] : (members.get(n) ?? [n])));

    const components: Record<string, Component> = {};
    for (const [name, c] of Object.entries(env.components)) {
      const dependsOn = expand(c.dependsOn);
      if (c.hosts === undefined) {
        components[name] = { ...c, dependsOn };
        continue;
      }
      const at = ['environments', envName, 'components', name];
      const raw = valueAt(input, at);
      const { hosts: _hosts, ...base } = isObject(raw) ? raw : {};
      for (const [host, overrides] of hostsOf(c.hosts)) {
        const checked = hostComponent(base, overrides, { at, name, host }, parseComponent);
        problems.push(...checked.problems.map(({ inOverride: _, ...problem }) => problem));
        if (checked.component) components[hostMember(name, host)] = { ...checked.component, dependsOn };
      }
    }
    const verify = env.verify && {
      ...env.verify,
      waves: env.verify.waves.map((w) => ({ ...w, components: expand(w.components) })),
      checks: env.verify.checks.map((c) => (c.after ? { ...c, after: expand(c.after) } : c)),
    };
    environments[envName] = { ...env, components, ...(verify ? { verify } : {}) };
  }
  return { manifest: { ...manifest, environments }, problems };
}

/**
 * Problems in the hosts' overrides of the manifest as read, for a manifest that does not parse
 * yet: reported with the rest of its problems, not only once those are fixed. Problems of a
 * component's own keys are left to the manifest's parse, which reports them once.
 */
export function hostOverrideProblems(input: unknown, parseComponent: ComponentParse): HostProblem[] {
  const problems: HostProblem[] = [];
  const environments = valueAt(input, ['environments']);
  for (const [envName, env] of isObject(environments) ? Object.entries(environments) : []) {
    const components = isObject(env) ? env.components : undefined;
    for (const [name, raw] of isObject(components) ? Object.entries(components) : []) {
      if (!isObject(raw) || !isObject(raw.hosts)) continue;
      const { hosts, ...base } = raw;
      const at = ['environments', envName, 'components', name];
      for (const [host, overrides] of Object.entries(hosts)) {
        if (!isObject(overrides)) continue;
        const checked = hostComponent(base, overrides, { at, name, host }, parseComponent);
        for (const { inOverride, ...problem } of checked.problems) if (inOverride) problems.push(problem);
      }
    }
  }
  return problems;
}

/**
 * One host's component: the component's values with the host's overrides merged over them, or
 * what is wrong with that, each problem at the host's key when the host set it.
 */
function hostComponent(
  base: Record<string, unknown>,
  overrides: Record<string, unknown>,
  where: { at: PropertyKey[]; name: string; host: string },
  parseComponent: ComponentParse,
): { component?: Component; problems: (HostProblem & { inOverride: boolean })[] } {
  const hostAt = [...where.at, 'hosts', where.host];
  const fixed = Object.keys(overrides).filter((k) => FIXED_KEYS.includes(k));
  if (fixed.length > 0)
    return {
      problems: fixed.map((key) => ({
        at: [...hostAt, key],
        message: `cannot differ per host (set it on ${where.name} itself)`,
        inOverride: true,
      })),
    };
  const parsed = parseComponent(merge(base, overrides));
  if ('data' in parsed) {
    const { hosts: _none, ...component } = parsed.data;
    return { component, problems: [] };
  }
  return {
    problems: parsed.problems.map((p) => {
      const inOverride = p.at.length > 0 && valueAt(overrides, p.at.slice(0, 1)) !== undefined;
      return {
        at: [...(inOverride ? hostAt : where.at), ...p.at],
        message: `${p.message} (on host ${where.host})`,
        hint: p.hint,
        inOverride,
      };
    }),
  };
}
