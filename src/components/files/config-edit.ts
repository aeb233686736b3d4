// Setting config keys back to an environment's own values after a sync restored another
// environment's file over it: `database.host` keeps regression's host. Each format is edited
// with its own parser where that keeps the file as people wrote it (YAML comments and order,
// JSON indentation); .env and .properties are edited line by line. Keys are the dotted paths
// config-diff reports (`servers[0].host`, `labels["app.kubernetes.io/name"]`, `#2.` for the
// second YAML document).
import { parse as parseIni, stringify as stringifyIni } from 'ini';
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import { parseAllDocuments, type Document } from 'yaml';
import type { ConfigFormat } from './config-diff';

export type KeyPath = (string | number)[];

/** `a.b[0]["c.d"]` → ['a', 'b', 0, 'c.d']; a leading `#N.` (YAML document) becomes the number N. */
export function parseKeyPath(key: string): { document?: number; path: KeyPath } {
  let rest = key;
  let document: number | undefined;
  const doc = /^#(\d+)\./.exec(rest);
  if (doc) {
    document = Number(doc[1]);
    rest = rest.slice(doc[0].length);
  }
  const path: KeyPath = [];
  let i = 0;
  while (i < rest.length) {
    if (rest[i] === '.') i++;
    if (rest[i] === '[') {
      const close = rest[i + 1] === '"' ? closingQuote(rest, i + 2) + 1 : rest.indexOf(']', i);
      const inner = rest.slice(i + 1, close);
      path.push(inner.startsWith('"') ? (JSON.parse(inner) as string) : Number(inner));
      i = close + 1;
      continue;
    }
    let end = i;
    while (end < rest.length && rest[end] !== '.' && rest[end] !== '[') end++;
    path.push(rest.slice(i, end));
    i = end;
  }
  return document === undefined ? { path } : { document, path };
}

function closingQuote(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return text.length;
}

const MISSING = Symbol('missing');

function getIn(value: unknown, path: KeyPath): unknown {
  let current = value;
  for (const segment of path) {
    if (current === null || typeof current !== 'object' || !(segment in current)) return MISSING;
    current = (current as Record<string | number, unknown>)[segment];
  }
  return current;
}

function setIn(value: Record<string, unknown>, path: KeyPath, leaf: unknown): void {
  let current: Record<string | number, unknown> = value;
  path.slice(0, -1).forEach((segment, i) => {
    const next = current[segment];
    if (next === null || typeof next !== 'object') current[segment] = typeof path[i + 1] === 'number' ? [] : {};
    current = current[segment] as Record<string | number, unknown>;
  });
  const last = path.at(-1)!;
  if (leaf === MISSING) {
    if (Array.isArray(current) && typeof last === 'number') current.splice(last, 1);
    else delete current[last];
  } else current[last] = leaf;
}

/**
 * `target` with each of `keys` set to its value in `own` (removed where `own` lacks it).
 * Returns undefined when a side cannot be parsed: the caller then keeps the whole file.
 */
export function keepConfigKeys(
  target: string,
  own: string,
  format: ConfigFormat | undefined,
  keys: readonly string[],
): string | undefined {
  try {
    switch (format) {
      case 'yaml':
        return keepYaml(target, own, keys);
      case 'json': {
        const t = JSON.parse(target) as Record<string, unknown>;
        const o = JSON.parse(own) as unknown;
        for (const key of keys) {
          const { path } = parseKeyPath(key);
          setIn(t, path, getIn(o, path));
        }
        const indent = /^[ \t]+/m.exec(target)?.[0] ?? '  ';
        return `${JSON.stringify(t, null, indent)}${target.endsWith('\n') ? '\n' : ''}`;
      }
      case 'toml': {
        const t = parseToml(target) as Record<string, unknown>;
        const o = parseToml(own);
        for (const key of keys) {
          const { path } = parseKeyPath(key);
          setIn(t, path, getIn(o, path));
        }
        return stringifyToml(t);
      }
      case 'ini': {
        const t = parseIni(target);
        const o = parseIni(own);
        for (const key of keys) {
          const { path } = parseKeyPath(key);
          setIn(t, path, getIn(o, path));
        }
        return stringifyIni(t);
      }
      case 'dotenv':
      case 'properties':
        return keepLines(target, own, keys, format);
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

function keepYaml(target: string, own: string, keys: readonly string[]): string | undefined {
  const targetDocs = parseAllDocuments(target);
  const ownDocs = parseAllDocuments(own);
  if (!Array.isArray(targetDocs) || !Array.isArray(ownDocs)) return undefined;
  if ([...targetDocs, ...ownDocs].some((d) => d.errors.length > 0)) return undefined;
  // Where both files have the key, its value's text is spliced in: the rest of the file stays
  // byte for byte as it was (spacing, comments, quoting).
  const splices: { start: number; end: number; text: string }[] = [];
  for (const key of keys) {
    const { document = 1, path } = parseKeyPath(key);
    const t = targetDocs[document - 1]?.getIn(path, true) as { range?: [number, number, number] } | undefined;
    const o = ownDocs[document - 1]?.getIn(path, true) as { range?: [number, number, number] } | undefined;
    if (!t?.range || !o?.range) return keepYamlByDocument(targetDocs, ownDocs, keys);
    splices.push({ start: t.range[0], end: t.range[1], text: own.slice(o.range[0], o.range[1]) });
  }
  let out = target;
  for (const s of splices.sort((a, b) => b.start - a.start)) out = out.slice(0, s.start) + s.text + out.slice(s.end);
  return out;
}

/** When a key is on one side only: edit the documents and print them again. */
function keepYamlByDocument(targetDocs: Document[], ownDocs: Document[], keys: readonly string[]): string | undefined {
  for (const key of keys) {
    const { document = 1, path } = parseKeyPath(key);
    const t: Document | undefined = targetDocs[document - 1];
    const o: Document | undefined = ownDocs[document - 1];
    if (!t) return undefined;
    if (o?.hasIn(path)) t.setIn(path, o.getIn(path, true));
    else if (t.hasIn(path)) t.deleteIn(path);
  }
  return targetDocs.map((d) => d.toString()).join('');
}

/** .env and .properties: the line that sets a key is replaced by the own file's line for it. */
function keepLines(target: string, own: string, keys: readonly string[], format: 'dotenv' | 'properties'): string {
  const keyOf = (line: string): string | undefined => {
    const trimmed = line.trimStart();
    if (trimmed === '' || trimmed.startsWith('#') || (format === 'properties' && trimmed.startsWith('!')))
      return undefined;
    const m =
      format === 'dotenv'
        ? /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=/.exec(trimmed)
        : /^((?:\\.|[^=:\s\\])+)\s*[=:\s]/.exec(trimmed);
    return m?.[1]?.replace(/\\(.)/g, '$1');
  };
  const ownLines = new Map<string, string>();
  for (const line of own.split('\n')) {
    const k = keyOf(line);
    if (k !== undefined) ownLines.set(k, line);
  }
  const wanted = new Set(keys);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const line of target.split('\n')) {
    const k = keyOf(line);
    if (k === undefined || !wanted.has(k)) {
      out.push(line);
      continue;
    }
    seen.add(k);
    const mine = ownLines.get(k);
    if (mine !== undefined) out.push(mine);
  }
  const missing = [...wanted].filter((k) => !seen.has(k) && ownLines.has(k)).map((k) => ownLines.get(k)!);
  if (missing.length) {
    if (out.at(-1) === '') out.splice(out.length - 1, 0, ...missing);
    else out.push(...missing);
  }
  return out.join('\n');
}
