// Schema fields that the manifest and the component kinds' fragments share. Pure.
import { z } from 'zod';
import { DURATION_PATTERN, parseDuration } from './duration';
import { HOST_PATTERN, splitHost } from '../domain/hosts';

// Environment and component names become task queue names and restic tags, so keep them plain.
export const NAME_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;

// Names every JavaScript object already answers to (`constructor`, `__proto__`, `toString`…): as
// keys they shadow, or (`__proto__`) silently vanish from, the objects the manifest is read into.
const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));
export const PROTOTYPE_KEY_REFUSAL = 'is a name every JavaScript object already has; choose another';

export function isPrototypeKey(name: string): boolean {
  return PROTOTYPE_KEYS.has(name);
}

export const nameField = z
  .string()
  .regex(NAME_PATTERN, 'must start with a lowercase letter and hold only a-z, 0-9 and "-" (40 characters at most)')
  .refine((name) => !isPrototypeKey(name), PROTOTYPE_KEY_REFUSAL);

export const envVarField = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be the name of an environment variable');

/** Entries listed more than once, as `[index, value]` of every repeat after the first. */
export function repeatedEntries<T>(list: readonly T[]): [number, T][] {
  const seen = new Set<T>();
  const repeats: [number, T][] = [];
  list.forEach((item, i) => {
    if (seen.has(item)) repeats.push([i, item]);
    seen.add(item);
  });
  return repeats;
}

export const dependsOnField = z
  .array(nameField)
  .superRefine((deps, ctx) => {
    for (const [i, dep] of repeatedEntries(deps))
      ctx.addIssue({ code: 'custom', path: [i], message: `"${dep}" is listed twice`, input: dep });
  })
  .default([])
  .describe('Components of the same environment that must be rolled back before this one.');

const hostName = z
  .string()
  .regex(
    HOST_PATTERN,
    'must be a host name: a-z, 0-9, "." and "-", starting with a letter or digit (63 characters at most)',
  );

/**
 * The hosts a component runs on, each served by its own agent (`rewind agent --host NAME`): a
 * list of names, or a map of names to the values that differ on that host (merged over the
 * component's own). Loading expands the component into `<component>@<host>`, one per host.
 */
export const hostsField = z
  .union([
    z.array(hostName).min(1, 'must name at least one host'),
    z.record(hostName, z.record(z.string(), z.unknown()).nullable()),
  ])
  .superRefine((hosts, ctx) => {
    if (Array.isArray(hosts))
      for (const [i, host] of repeatedEntries(hosts))
        ctx.addIssue({ code: 'custom', path: [i], message: `"${host}" is listed twice`, input: host });
    else if (Object.keys(hosts).length === 0) ctx.addIssue({ code: 'custom', message: 'must name at least one host' });
  })
  .optional()
  .describe(
    'The hosts this component runs on, each with its own agent (rewind agent --env E --host H): a list, or a map of host names to the values that differ there. Waves may name one host: component@host.',
  );

/** A component, or one host of it (`app@web1`), as waves and checks name them. */
export const memberField = z.string().refine((member) => {
  const { component, host } = splitHost(member);
  return nameField.safeParse(component).success && (host === undefined || HOST_PATTERN.test(host));
}, 'must name a component, or one host of it as component@host');

/**
 * Why a local path the manifest names is refused, if it is: the file system root, or a path with
 * `..`. rewind tells folders apart by their names (to keep components, the repository and its
 * state apart), and `..` after a symbolic link leads somewhere other than its name says.
 */
export function localPathProblem(p: string): string | undefined {
  const segments = p.split('/');
  if (segments.includes('..'))
    return 'must not contain ".."; name the folder itself (rewind compares folders by name, and ".." after a symbolic link leads somewhere else)';
  if (p.startsWith('/') && segments.every((s) => s === '' || s === '.')) return 'must not be the file system root';
  return undefined;
}

/** A folder or file on the machine, absolute or relative to the manifest. */
export const localPathField = z
  .string()
  .min(1)
  .superRefine((p, ctx) => {
    const problem = localPathProblem(p);
    if (problem) ctx.addIssue({ code: 'custom', message: `${p}: ${problem}`, input: p });
  });

/** A duration such as "30s" between `min` and `max`, both included. */
export function durationField(min: string, max: string) {
  const [low, high] = [parseDuration(min), parseDuration(max)];
  return z
    .string()
    .regex(DURATION_PATTERN, 'must be a duration such as 90s, 30m or 2h')
    .superRefine((text, ctx) => {
      if (!DURATION_PATTERN.test(text)) return;
      const ms = parseDuration(text);
      if (!(ms >= low && ms <= high))
        ctx.addIssue({ code: 'custom', message: `must be from ${min} to ${max}, not ${text}`, input: text });
    });
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The candidate closest to `word` (at most two edits away, case aside), for "did you mean". */
export function closestMatch(word: string, candidates: Iterable<string>): string | undefined {
  let best: { candidate: string; d: number } | undefined;
  for (const candidate of candidates) {
    if (candidate === word) continue;
    const d = distance(word.toLowerCase(), candidate.toLowerCase());
    if (d <= 2 && d < word.length && (!best || d < best.d)) best = { candidate, d };
  }
  if (best) return best.candidate;
  // An abbreviation (`prod` for production): the one candidate it begins, if only one.
  const lower = word.toLowerCase();
  const begun = word.length >= 3 ? [...candidates].filter((c) => c.toLowerCase().startsWith(lower)) : [];
  return begun.length === 1 && begun[0] !== word ? begun[0] : undefined;
}

export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  const match = closestMatch(word, candidates);
  return match === undefined ? undefined : `did you mean "${match}"?`;
}

/** An address a listener takes from the manifest: `host:port`, an IPv6 host in brackets. */
export const listenField = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port, such as 127.0.0.1:8787');

/** `host:port` → the parts a server listens on; `where` names the setting in the error. */
export function listenAddress(listen: string, where: string): { host: string; port: number } {
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(listen.slice(at + 1));
  if (!host || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`${where}: "${listen}" is not host:port`);
  return { host, port };
}

/** The value at a key path of what a file held, as read (no defaults); undefined where a key is missing. */
export function valueAt(input: unknown, at: readonly PropertyKey[]): unknown {
  let value = input;
  for (const segment of at) {
    if (typeof value !== 'object' || value === null || !Object.prototype.hasOwnProperty.call(value, segment))
      return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment];
  }
  return value;
}
