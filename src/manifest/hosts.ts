// Expands components that run on several hosts into one component per host, `<component>@<host>`
// (src/domain/hosts.ts says why). A host's values are the component's, with the host's own
// overrides merged over them (objects key by key, anything else replaced), and are validated as
// a whole component, so a bad override is reported at its key. `dependsOn`, waves and checks'
// `after` that name the component mean every host of it; waves and `after` may name one host.
import type { z } from 'zod';
import { hostMember, splitHost } from '../domain/hosts';
import { valueAt } from './fields';
import type { Component, Manifest } from './schema';

export interface HostProblem {
  at: PropertyKey[];
  message: string;
}

type ComponentParse = (raw: unknown) => z.ZodSafeParseResult<Component>;

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
        const hostAt = [...at, 'hosts', host];
        const fixed = Object.keys(overrides).filter((k) => FIXED_KEYS.includes(k));
        for (const key of fixed)
          problems.push({ at: [...hostAt, key], message: `cannot differ per host (set it on ${name} itself)` });
        if (fixed.length > 0) continue;
        const parsed = parseComponent(merge(base, overrides));
        if (!parsed.success) {
          for (const issue of parsed.error.issues) {
            const keys = issue.code === 'unrecognized_keys' ? issue.keys : [undefined];
            for (const key of keys) {
              const where = [...issue.path, ...(key !== undefined ? [key] : [])];
              // At the host's key when the host set it; else at the component's.
              const inOverride = where.length > 0 && valueAt(overrides, where.slice(0, 1)) !== undefined;
              problems.push({
                at: [...(inOverride ? hostAt : at), ...where],
                message: `${key !== undefined ? 'unknown key' : issue.message} (on host ${host})`,
              });
            }
          }
          continue;
        }
        const { hosts: _none, ...component } = parsed.data;
        components[hostMember(name, host)] = { ...component, dependsOn };
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
