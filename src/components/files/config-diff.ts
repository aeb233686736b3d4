// Config files compared key by key across two hosts. The agent that holds a file turns its text
// into a summary: every leaf as a dotted key with an HMAC of its value, and the value itself
// unless it is secret. The summary travels through a workflow payload to the comparing worker,
// so it is bounded (keys, lines, value lengths) and never carries a secret in clear: equal
// values compare equal by their HMAC without being shown. A file that does not parse (or has no
// parser) is summarized line by line instead, with secret-looking lines hashed but not shown,
// and two such summaries are compared with a line diff.
import { createHmac } from 'node:crypto';
import { parse as parseDotenv } from 'dotenv';
import { parse as parseProperties } from 'dot-properties';
import { parse as parseIni } from 'ini';
import { parse as parseToml, TomlError } from 'smol-toml';
import { parseAllDocuments } from 'yaml';
import { REDACTED, type DriftChange, type DriftDifference, type DriftSides } from '../drift';

export type ConfigFormat = 'yaml' | 'json' | 'toml' | 'ini' | 'dotenv' | 'properties';

export interface ConfigValue {
  /** The value for display: JSON of the leaf, at most maxValueChars characters, cut with '…'. Absent for secrets. */
  v?: string;
  /** HMAC-SHA256(hashKey, JSON of the leaf) in hex, first 32 characters: equal values compare equal unseen. */
  h: string;
  secret?: true;
}

export interface ConfigLine {
  /** HMAC-SHA256(hashKey, the line) in hex, first 32 characters. */
  h: string;
  /** The line for display, at most maxValueChars characters; absent when it looks like it holds a secret. */
  v?: string;
}

export type ConfigSummary =
  | {
      parsed: true;
      format: ConfigFormat;
      /** Sorted by key; the smallest keys when there are more than maxKeys, so both sides keep the same ones. */
      keys: Record<string, ConfigValue>;
      /** Keys left out past maxKeys. */
      truncated?: number;
    }
  | {
      parsed: false;
      format: ConfigFormat | 'text';
      /** Why parsing failed, with line and column when the parser says; never quoting the text. */
      error: string;
      /**
       * The text parses, but was asked for line by line (SummarizeOptions.lines) because the
       * other side's copy does not: `error` is then empty.
       */
      parses?: true;
      lines: ConfigLine[];
      /** Lines left out past maxLines. */
      truncated?: number;
    };

export interface SummarizeOptions {
  hashKey: string;
  /** Manifest globs on dotted keys whose values are secret, besides the usual names. */
  secretKeys: readonly string[];
  /** Default 5,000. */
  maxKeys?: number;
  /** Default 200. */
  maxValueChars?: number;
  /** Default 5,000. */
  maxLines?: number;
  /**
   * Longer texts are summarized by lines instead of parsed, as parsers hold many times the text in
   * memory. Default 16 million characters, and 2 million for YAML, whose parser holds about 100
   * bytes per character.
   */
  maxParseChars?: number;
  /**
   * Summarize line by line even when the text parses (marked `parses`): the other side's copy
   * does not parse, and the two can only be compared line by line.
   */
  lines?: boolean;
}

const DEFAULT_MAX_KEYS = 5_000;
const DEFAULT_MAX_VALUE_CHARS = 200;
const DEFAULT_MAX_LINES = 5_000;
const DEFAULT_MAX_PARSE_CHARS = 16_000_000;
const DEFAULT_MAX_YAML_PARSE_CHARS = 2_000_000;
/** Deeper subtrees are recorded as one value, so a hostile nesting cannot make keys without end. */
const MAX_DEPTH = 64;
/** Containers and leaves walked per character of text: more means aliases expanded the document. */
const NODES_PER_CHAR = 4;
const HASH_CHARS = 32;
/** Edits a line diff looks for before it compares lines by position instead (bounds time and memory). */
const MAX_LINE_EDITS = 2_000;
/** Characters of a line read for secrets past those shown. */
const INSPECTED_LINE_MARGIN = 4_096;
/** Lines a comparison reads per side, whatever a summary holds. */
const MAX_COMPARED_LINES = 20_000;

const ABSENT = '(absent)';
/** The key of a document whose root is a scalar. */
const ROOT_KEY = '(root)';

const FORMAT_BY_EXTENSION = new Map<string, ConfigFormat>([
  ['yaml', 'yaml'],
  ['yml', 'yaml'],
  ['json', 'json'],
  ['toml', 'toml'],
  ['ini', 'ini'],
  ['cfg', 'ini'],
  ['env', 'dotenv'],
  ['properties', 'properties'],
]);

/** By file name: .yaml/.yml, .json, .toml, .ini/.cfg, .env, *.env, .env.* (e.g. .env.production), .properties. */
export function configFormatOf(filePath: string): ConfigFormat | undefined {
  const name = filePath.slice(Math.max(filePath.lastIndexOf('/'), filePath.lastIndexOf('\\')) + 1).toLowerCase();
  const dot = name.lastIndexOf('.');
  const byExtension = dot >= 0 ? FORMAT_BY_EXTENSION.get(name.slice(dot + 1)) : undefined;
  if (byExtension) return byExtension;
  return name.startsWith('.env.') ? 'dotenv' : undefined;
}

// ---------------------------------------------------------------------------------------------
// Secrets

/** Words of a key segment that name a secret (after splitting on punctuation and camelCase). */
const SECRET_WORDS = new Set([
  'password',
  'passwords',
  'passwd',
  'pwd',
  'pass',
  'passphrase',
  'secret',
  'secrets',
  'token',
  'tokens',
  'key',
  'keys',
  'credential',
  'credentials',
  'creds',
  'apikey',
  'apikeys',
  'privatekey',
  'auth',
  'oauth',
  'authorization',
  'bearer',
  'cookie',
  'jwt',
  'salt',
]);
/** Run-together words (`DBPASSWORD`, `accesskey`, `requirepass`) still name a secret by their ending. */
const SECRET_WORD_ENDINGS = [
  'password',
  'passwd',
  'pass',
  'passphrase',
  'secret',
  'token',
  'apikey',
  'accesskey',
  'secretkey',
  'privatekey',
  'credential',
  'credentials',
];

/** Shapes of well-known credentials, whatever key holds them. */
const PRIVATE_KEY_BEGIN = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
const SECRET_SHAPES = [
  PRIVATE_KEY_BEGIN,
  /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/, // a JWT's header and payload
  /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/,
  /\bgh[pousr]_[A-Za-z0-9]{30,}/,
  /\bgithub_pat_[A-Za-z0-9_]{20,}/,
  /\bxox[abposr]-[A-Za-z0-9-]{10,}/,
  /\b[sr]k_live_[A-Za-z0-9]{10,}/,
  /\bAIza[0-9A-Za-z_-]{35}/,
  /[a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*:[^\s/?#@]+@/i, // a URL with a password
  // A connection string's password or key (`Server=db;User Id=sa;Password=…`, Azure's AccountKey=…)
  /(?:^|[;,&?\s"'])(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|account[_-]?key|shared[_-]?access[_-]?key|client[_-]?secret)\s*=\s*[^\s;,&"']/i,
];

function looksLikeSecretValue(text: string): boolean {
  return SECRET_SHAPES.some((shape) => shape.test(text));
}

function segmentLooksSecret(segment: string): boolean {
  const words = segment
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z]+/);
  return words.some((word) => SECRET_WORDS.has(word) || SECRET_WORD_ENDINGS.some((ending) => word.endsWith(ending)));
}

/** The segments of a dotted key: `a.b[0]["c.d"]` is a, b, 0, c.d. */
function keySegments(dottedKey: string): string[] {
  const segments: string[] = [];
  let at = 0;
  while (at < dottedKey.length) {
    const char = dottedKey[at];
    if (char === '.') {
      at += 1;
    } else if (char === '[' && dottedKey[at + 1] === '"') {
      const end = closingQuote(dottedKey, at + 2);
      segments.push(unquote(dottedKey.slice(at + 1, end + 1)));
      at = dottedKey[end + 1] === ']' ? end + 2 : end + 1;
    } else if (char === '[') {
      const end = dottedKey.indexOf(']', at);
      const stop = end < 0 ? dottedKey.length : end;
      segments.push(dottedKey.slice(at + 1, stop));
      at = stop + 1;
    } else {
      const end = dottedKey.slice(at).search(/[.[]/);
      const stop = end < 0 ? dottedKey.length : at + end;
      segments.push(dottedKey.slice(at, stop));
      at = stop;
    }
  }
  return segments;
}

function closingQuote(text: string, from: number): number {
  for (let at = from; at < text.length; at += 1) {
    if (text[at] === '\\') at += 1;
    else if (text[at] === '"') return at;
  }
  return text.length;
}

function unquote(quoted: string): string {
  try {
    const value: unknown = JSON.parse(quoted);
    return typeof value === 'string' ? value : quoted;
  } catch {
    return quoted.slice(1, -1);
  }
}

const GLOBSTAR = Symbol('**');
type GlobSegment = RegExp | typeof GLOBSTAR;

function compileGlob(glob: string): GlobSegment[] {
  return keySegments(glob).map((segment) =>
    segment === '**' ? GLOBSTAR : new RegExp(`^${segment.split('*').map(escapeRegExp).join('[\\s\\S]*')}$`, 'i'),
  );
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Whether the glob matches the key or one of its ancestors: a glob naming a subtree covers what is in it. */
function globMatchesKeyOrAncestor(glob: readonly GlobSegment[], segments: readonly string[], g = 0, s = 0): boolean {
  if (g === glob.length) return true;
  const pattern = glob[g]!;
  if (pattern === GLOBSTAR) {
    for (let next = s; next <= segments.length; next += 1) {
      if (globMatchesKeyOrAncestor(glob, segments, g + 1, next)) return true;
    }
    return false;
  }
  return s < segments.length && pattern.test(segments[s]!) && globMatchesKeyOrAncestor(glob, segments, g + 1, s + 1);
}

type SecretPathTest = (segments: readonly string[]) => boolean;

function secretPathTest(secretKeys: readonly string[]): SecretPathTest {
  const globs = secretKeys.map(compileGlob);
  return (segments) => {
    if (segments.some(segmentLooksSecret)) return true;
    // A manifest glob names keys within a document, so it also applies past a `#2` document prefix.
    const withinDocument = /^#\d+$/.test(segments[0] ?? '') ? segments.slice(1) : undefined;
    return globs.some(
      (glob) =>
        globMatchesKeyOrAncestor(glob, segments) ||
        (withinDocument !== undefined && globMatchesKeyOrAncestor(glob, withinDocument)),
    );
  };
}

/**
 * Whether a dotted key holds a secret: a word of any of its segments names one (password, token,
 * key, credentials, …; split on punctuation and camelCase, so `credentials.user` is secret too),
 * or a manifest glob matches it or an ancestor (`*` = any characters within a segment, `**` = any
 * segments).
 */
export function isSecretKey(dottedKey: string, secretKeys: readonly string[]): boolean {
  return secretPathTest(secretKeys)(keySegments(dottedKey));
}

// ---------------------------------------------------------------------------------------------
// Summaries

interface Limits {
  maxKeys: number;
  maxValueChars: number;
  maxLines: number;
  maxParseChars: number;
}

interface Summarizer {
  limits: Limits;
  hashKey: string;
  hash: (text: string) => string;
  isSecretPath: SecretPathTest;
}

export function summarizeConfig(
  text: string,
  format: ConfigFormat | undefined,
  options: SummarizeOptions,
): ConfigSummary {
  const source = typeof text === 'string' ? text : '';
  try {
    const summarizer = makeSummarizer(format, options);
    if (format === undefined) return summarizeLines(source, 'text', 'no config parser for this file type', summarizer);
    try {
      const parsed = parseDocuments(source, format, summarizer.limits.maxParseChars);
      if ('error' in parsed) return summarizeLines(source, format, parsed.error, summarizer);
      if (options.lines) return { ...summarizeLines(source, format, '', summarizer), parses: true };
      return summarizeKeys(parsed.roots, format, source.length, summarizer);
    } catch (error) {
      return summarizeLines(source, format, describeFailure(error), summarizer);
    }
  } catch (error) {
    return { parsed: false, format: format ?? 'text', error: describeFailure(error), lines: [] };
  }
}

function makeSummarizer(format: ConfigFormat | undefined, options: SummarizeOptions): Summarizer {
  const count = (value: number | undefined, fallback: number) =>
    value !== undefined && Number.isFinite(value) && value >= 0 ? Math.floor(value) : fallback;
  const hashKey = options.hashKey;
  return {
    hashKey,
    limits: {
      maxKeys: count(options.maxKeys, DEFAULT_MAX_KEYS),
      maxValueChars: count(options.maxValueChars, DEFAULT_MAX_VALUE_CHARS),
      maxLines: count(options.maxLines, DEFAULT_MAX_LINES),
      maxParseChars: count(
        options.maxParseChars,
        format === 'yaml' ? DEFAULT_MAX_YAML_PARSE_CHARS : DEFAULT_MAX_PARSE_CHARS,
      ),
    },
    hash: (value) => createHmac('sha256', hashKey).update(value).digest('hex').slice(0, HASH_CHARS),
    isSecretPath: secretPathTest(options.secretKeys),
  };
}

/** A value to flatten under a key prefix ('' for a document's root). */
interface Root {
  path: string;
  value: unknown;
}

type Parsed = { roots: Root[] } | { error: string };

function parseDocuments(text: string, format: ConfigFormat, maxParseChars: number): Parsed {
  if (text.length > maxParseChars) {
    return { error: `too large to parse: ${text.length} characters, over the limit of ${maxParseChars}` };
  }
  switch (format) {
    case 'json':
      return parseJson(text);
    case 'yaml':
      return parseYaml(text);
    case 'toml':
      try {
        return { roots: [{ path: '', value: parseToml(text) }] };
      } catch (error) {
        if (!(error instanceof TomlError)) throw error;
        const reason = safeReason(error.message.replace(/^Invalid TOML document:\s*/, ''));
        return { error: `line ${error.line}, column ${error.column}: ${reason}` };
      }
    case 'ini':
      return { roots: [{ path: '', value: parseIni(text) }] };
    case 'dotenv':
      return { roots: [{ path: '', value: parseDotenv(text) }] };
    case 'properties':
      // Dots in a property name are its hierarchy (`db.pool.max`), and a name may be both a
      // value and a parent, so each property is its own root rather than a nested tree.
      return {
        roots: Object.entries(parseProperties(text)).map(([name, value]) => ({
          path: name.split('.').reduce(appendKey, ''),
          value,
        })),
      };
  }
}

function parseJson(text: string): Parsed {
  try {
    return { roots: [{ path: '', value: JSON.parse(text) as unknown }] };
  } catch (error) {
    // V8's messages quote the text around the error, which may be a secret: keep only the kind.
    const message = error instanceof Error ? error.message : String(error);
    const position = /at position (\d+)/.exec(message);
    const reason = message.startsWith('Unexpected token')
      ? 'unexpected token'
      : safeReason(message.replace(/\s*(?:in JSON )?at position \d+[\s\S]*$/, ''));
    return { error: position ? `${lineAndColumn(text, Number(position[1]))}: ${reason}` : reason };
  }
}

function parseYaml(text: string): Parsed {
  // Unique-key checking is quadratic in a mapping's size; a repeated key keeps its last value, as in JSON.
  const documents = parseAllDocuments(text, { uniqueKeys: false });
  const streamErrors = 'empty' in documents ? documents.errors : [];
  const error = streamErrors[0] ?? documents.find((document) => document.errors.length > 0)?.errors[0];
  if (error) {
    const reason = safeReason(error.message.replace(/ at line \d+, column \d+[\s\S]*$/, ''));
    const at = error.linePos?.[0];
    return { error: at ? `line ${at.line}, column ${at.col}: ${reason}` : reason };
  }
  const values = documents.map((document) => {
    const value: unknown = document.toJS({ maxAliasCount: 100 });
    return value;
  });
  if (values.length === 1) return { roots: [{ path: '', value: values[0] }] };
  return { roots: values.map((value, index) => ({ path: `#${index + 1}`, value })) };
}

function lineAndColumn(text: string, offset: number): string {
  let line = 1;
  let lineStart = 0;
  for (let at = text.indexOf('\n'); at >= 0 && at < offset; at = text.indexOf('\n', at + 1)) {
    line += 1;
    lineStart = at + 1;
  }
  return `line ${line}, column ${offset - lineStart + 1}`;
}

/** A parser's reason without the text it quotes (which may be a secret), on one line. */
function safeReason(message: string): string {
  const firstLine = message.split('\n', 1)[0] ?? '';
  const reason = firstLine
    .replace(/"[^"]*"|`[^`]*`/g, '…')
    .replace(/'([^']*)'/g, (quoted, inner: string) => (/^[[\]{},:]$/.test(inner) ? quoted : '…'))
    .replace(/:\s[\s\S]*$/, '') // what follows a colon names the offending text: `Unresolved tag: !x`
    .trim();
  return clip(reason, 160) || 'syntax error';
}

class DocumentTooExpansive extends Error {
  constructor() {
    super('the document expands far beyond its text (aliases?)');
  }
}

function describeFailure(error: unknown): string {
  if (error instanceof DocumentTooExpansive) return error.message;
  if (error instanceof RangeError) return 'too deeply nested or too large to parse';
  return safeReason(error instanceof Error ? error.message : String(error));
}

/** A leaf kept for the summary; `subtree` when it stands for a container too deep to descend. */
interface Leaf {
  key: string;
  value: unknown;
  subtree: boolean;
}

function summarizeKeys(roots: Root[], format: ConfigFormat, textLength: number, summarizer: Summarizer): ConfigSummary {
  const budget = { nodes: NODES_PER_CHAR * textLength + 10_000 };
  const { leaves, total } = smallestLeaves(roots, summarizer.limits.maxKeys, budget);
  const keys = Object.fromEntries(leaves.map((leaf) => [leaf.key, describeLeaf(leaf, summarizer, budget)]));
  return total > leaves.length
    ? { parsed: true, format, keys, truncated: total - leaves.length }
    : { parsed: true, format, keys };
}

function describeLeaf(leaf: Leaf, summarizer: Summarizer, budget: { nodes: number }): ConfigValue {
  if (leaf.subtree) {
    // Too deep to know which of its keys are secret, so it is compared but never shown.
    const hmac = createHmac('sha256', summarizer.hashKey);
    writeCanonical(leaf.value, (chunk) => hmac.update(chunk), budget);
    return { h: hmac.digest('hex').slice(0, HASH_CHARS), secret: true };
  }
  const canonical = canonicalLeaf(leaf.value);
  const h = summarizer.hash(canonical);
  const secret =
    summarizer.isSecretPath(keySegments(leaf.key)) ||
    (typeof leaf.value === 'string' && looksLikeSecretValue(leaf.value));
  return secret ? { h, secret: true } : { v: clip(canonical, summarizer.limits.maxValueChars), h };
}

/** JSON of a leaf: what its hash covers, so YAML `10` and `'10'` differ and dates compare by their ISO form. */
function canonicalLeaf(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  if (ArrayBuffer.isView(value)) {
    return JSON.stringify(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'));
  }
  if (Array.isArray(value) || value instanceof Set) return '[]';
  if (value instanceof Map) return '{}';
  return JSON.stringify(value) ?? 'null';
}

/** A container's entries, in order; undefined for a leaf. */
function childrenOf(value: unknown): [string | number, unknown][] | undefined {
  if (typeof value !== 'object' || value === null || value instanceof Date || ArrayBuffer.isView(value)) {
    return undefined;
  }
  if (Array.isArray(value)) return value.map((child, index): [number, unknown] => [index, child]);
  if (value instanceof Set) return [...value].map((child, index): [number, unknown] => [index, child]);
  if (value instanceof Map) return [...value].map(([key, child]): [string, unknown] => [String(key), child]);
  return Object.entries(value);
}

function spend(budget: { nodes: number }) {
  budget.nodes -= 1;
  if (budget.nodes < 0) throw new DocumentTooExpansive();
}

/** The maxKeys smallest leaves, sorted, and how many there are in all; walks without recursion. */
function smallestLeaves(roots: Root[], maxKeys: number, budget: { nodes: number }) {
  const kept = new SmallestKeys(maxKeys);
  const pending = roots
    .filter((root) => !(root.path === '' && root.value == null))
    .map((root) => ({ ...root, depth: 0 }));
  let total = 0;
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    spend(budget);
    const { path, value, depth } = next;
    const children = childrenOf(value);
    if (children === undefined || children.length === 0 || depth >= MAX_DEPTH) {
      total += 1;
      kept.offer({ key: path || ROOT_KEY, value, subtree: children !== undefined && children.length > 0 });
      continue;
    }
    for (const [key, child] of children) {
      pending.push({
        path: typeof key === 'number' ? `${path}[${key}]` : appendKey(path, key),
        value: child,
        depth: depth + 1,
      });
    }
  }
  return { leaves: kept.sorted(), total };
}

/** `a.b`, or `a["x.y"]` when the key has characters that would read as structure. */
function appendKey(path: string, key: string): string {
  if (key !== '' && !/[.[\]\s"'`]/.test(key) && !key.startsWith('#')) return path === '' ? key : `${path}.${key}`;
  return `${path}[${JSON.stringify(key)}]`;
}

/** A max-heap of the smallest keys seen, so a summary keeps the same keys whatever the file's order. */
class SmallestKeys {
  private readonly heap: Leaf[] = [];

  constructor(private readonly capacity: number) {}

  offer(leaf: Leaf) {
    if (this.heap.length < this.capacity) {
      this.heap.push(leaf);
      this.siftUp(this.heap.length - 1);
    } else if (this.capacity > 0 && leaf.key < this.heap[0]!.key) {
      this.heap[0] = leaf;
      this.siftDown(0);
    }
  }

  sorted(): Leaf[] {
    return [...this.heap].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  private siftUp(index: number) {
    const heap = this.heap;
    for (let at = index; at > 0;) {
      const parent = (at - 1) >> 1;
      if (heap[parent]!.key >= heap[at]!.key) return;
      [heap[parent], heap[at]] = [heap[at]!, heap[parent]!];
      at = parent;
    }
  }

  private siftDown(index: number) {
    const heap = this.heap;
    for (let at = index; ;) {
      let largest = at;
      for (const child of [2 * at + 1, 2 * at + 2]) {
        if (child < heap.length && heap[child]!.key > heap[largest]!.key) largest = child;
      }
      if (largest === at) return;
      [heap[largest], heap[at]] = [heap[at]!, heap[largest]!];
      at = largest;
    }
  }
}

/** Punctuation to write, on the same stack as the values still to serialize. */
class Literal {
  constructor(readonly text: string) {}
}

/** JSON of a subtree with sorted keys, written in chunks without recursion. */
function writeCanonical(root: unknown, write: (chunk: string) => void, budget: { nodes: number }) {
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const item = pending.pop();
    if (item instanceof Literal) {
      write(item.text);
      continue;
    }
    spend(budget);
    const children = childrenOf(item);
    if (children === undefined) {
      write(canonicalLeaf(item));
      continue;
    }
    const isList = Array.isArray(item) || item instanceof Set;
    const entries = isList ? children : children.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    pending.push(new Literal(isList ? ']' : '}'));
    for (let index = entries.length - 1; index >= 0; index -= 1) {
      const [key, child] = entries[index]!;
      pending.push(child);
      if (!isList) pending.push(new Literal(`${JSON.stringify(String(key))}:`));
      if (index > 0) pending.push(new Literal(','));
    }
    pending.push(new Literal(isList ? '[' : '{'));
  }
}

function clip(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  if (maxChars < 1) return '';
  let end = maxChars - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1; // do not split a surrogate pair
  return `${text.slice(0, end)}…`;
}

function summarizeLines(
  text: string,
  format: ConfigFormat | 'text',
  error: string,
  summarizer: Summarizer,
): LineSummary {
  const { maxLines, maxValueChars } = summarizer.limits;
  const secrecy = new LineSecrecy(summarizer.isSecretPath);
  const lines: ConfigLine[] = [];
  let total = 0;
  // Walks the text by index: a huge file is counted, never split into an array of lines.
  for (let start = 0; start < text.length; total += 1) {
    const newline = text.indexOf('\n', start);
    const end = newline < 0 ? text.length : newline;
    if (lines.length < maxLines) {
      const line = text.slice(start, end);
      const shown = line.endsWith('\r') ? line.slice(0, -1) : line;
      const h = summarizer.hash(line);
      // Only a line's start can be shown, so only its start is read for secrets (with room for a
      // token that begins in the shown part and ends past it): a one-line 50 MB file stays cheap.
      const inspected = shown.slice(0, maxValueChars + INSPECTED_LINE_MARGIN);
      lines.push(secrecy.holdsSecret(inspected) ? { h } : { h, v: clip(shown, maxValueChars) });
    }
    start = end + 1;
  }
  const summary: LineSummary = { parsed: false, format, error, lines };
  if (total > lines.length) summary.truncated = total - lines.length;
  return summary;
}

const COMMENT = /^(?:#+|;+|\/\/+|!)\s*/;
const SECTION = /^\[{1,2}\s*([^[\]]+?)\s*\]{1,2}\s*(?:[#;].*)?$/;
const MAPPING_KEY = /^(?:-\s+)?(["']?)([^\s"':#][^"':]*?)\1\s*:(?:\s|$)/;
const OPENS_BLOCK = /^(?:[|>][-+]?\d*|[{[]|)$/;
const ASSIGNED_KEY = /([A-Za-z_$][\w.\-$]*)["']?\s*[:=]/g;
const LEADING_WORD = /^(?:-\s+)?(?:export\s+)?([A-Za-z_$][\w.\-$]*)\s+\S/;

/**
 * Decides, line by line, whether a line of a file that did not parse may hold a secret: it
 * assigns a secret-looking key (anywhere in the line, `k=v`, `k: v`, `"k": v`, `k v`), sits under
 * one (deeper indentation, or an INI section), is inside a private key block, or has a
 * credential's shape. Keys are read with the indentation and sections above them, so manifest
 * globs apply too.
 */
class LineSecrecy {
  private section: string[] = [];
  private sectionIsSecret = false;
  private parents: { indent: number; key: string }[] = [];
  private secretBlockIndent: number | undefined;
  private inPrivateKey = false;

  constructor(private readonly isSecretPath: SecretPathTest) {}

  holdsSecret(line: string): boolean {
    if (this.inPrivateKey) {
      if (line.includes('-----END')) this.inPrivateKey = false;
      return true;
    }
    if (PRIVATE_KEY_BEGIN.test(line)) {
      this.inPrivateKey = !line.includes('-----END');
      return true;
    }
    if (looksLikeSecretValue(line)) return true;
    const content = line.trim();
    if (content === '') return false;
    const indent = line.length - line.trimStart().length;
    const inSecretBlock = this.secretBlockIndent !== undefined && indent > this.secretBlockIndent;
    const comment = COMMENT.exec(content);
    if (comment) {
      // A comment does not change the structure, but may be a commented-out secret.
      return inSecretBlock || this.sectionIsSecret || this.assignsSecret(content.slice(comment[0].length), []);
    }
    if (!inSecretBlock) this.secretBlockIndent = undefined;
    const section = SECTION.exec(content);
    if (section) {
      this.section = section[1]!.split('.');
      this.sectionIsSecret = this.isSecretPath(this.section);
      this.parents = [];
      this.secretBlockIndent = undefined;
      return false;
    }
    while (this.parents.length > 0 && this.parents[this.parents.length - 1]!.indent >= indent) this.parents.pop();
    const path = [...this.section, ...this.parents.map((parent) => parent.key)];
    const secret = inSecretBlock || this.sectionIsSecret || this.assignsSecret(content, path);
    const mapping = MAPPING_KEY.exec(content);
    if (mapping) this.parents.push({ indent, key: mapping[2]! });
    if (secret && !inSecretBlock) {
      this.secretBlockIndent = indent;
      // `password: |` or `credentials:` only opens what follows; the line itself holds no value.
      if (mapping && OPENS_BLOCK.test(content.slice(mapping[0].length).trim())) return false;
    }
    return secret;
  }

  private assignsSecret(content: string, path: readonly string[]): boolean {
    const keys = [...content.matchAll(ASSIGNED_KEY)].map((match) => match[1]!);
    const leadingWord = LEADING_WORD.exec(content)?.[1];
    if (leadingWord !== undefined) keys.push(leadingWord);
    return keys.some((key) => this.isSecretPath([...path, ...key.split('.')]));
  }
}

// ---------------------------------------------------------------------------------------------
// Comparison

/** Differences of one file, from → to: subject `${filePath}:${dottedKey}`, aspect 'key'. */
/** `sides` names the two copies in details (the environments in a scan). */
export function compareConfigs(
  filePath: string,
  from: ConfigSummary,
  to: ConfigSummary,
  sides: DriftSides = { from: 'from', to: 'to' },
): DriftDifference[] {
  if (from.parsed && to.parsed) return compareKeys(filePath, from, to, sides);
  return compareUnparsed(filePath, from, to, sides);
}

type ParsedSummary = Extract<ConfigSummary, { parsed: true }>;
type LineSummary = Extract<ConfigSummary, { parsed: false }>;

function compareKeys(filePath: string, from: ParsedSummary, to: ParsedSummary, sides: DriftSides): DriftDifference[] {
  const differences: DriftDifference[] = [];
  const lastComparable = lastComparableKey(from, to);
  const keys = [...new Set([...Object.keys(from.keys), ...Object.keys(to.keys)])].sort();
  for (const key of keys) {
    if (lastComparable !== undefined && key > lastComparable) continue;
    const before = Object.hasOwn(from.keys, key) ? from.keys[key] : undefined;
    const after = Object.hasOwn(to.keys, key) ? to.keys[key] : undefined;
    if (before && after && before.h === after.h) continue;
    const change: DriftChange = !before ? 'added' : !after ? 'removed' : 'changed';
    differences.push({
      subject: `${filePath}:${key}`,
      change,
      detail: describeChange(change, before, after),
      aspect: 'key',
    });
  }
  if (lastComparable !== undefined) {
    differences.push({
      subject: filePath,
      change: 'changed',
      detail:
        `compared up to key ${lastComparable} only: the summaries left out ${from.truncated ?? 0} keys of ${sides.from} ` +
        `and ${to.truncated ?? 0} of ${sides.to} (key limit)`,
      severity: 'info',
      aspect: 'truncated',
    });
  }
  return differences;
}

/**
 * A side that left keys out knows nothing past its last key, so keys past the smaller of those
 * cannot be told apart from keys one side left out.
 */
function lastComparableKey(from: ParsedSummary, to: ParsedSummary): string | undefined {
  let last: string | undefined;
  for (const side of [from, to]) {
    if (!side.truncated) continue;
    const sideLast = Object.keys(side.keys).reduce((max, key) => (key > max ? key : max), '');
    if (last === undefined || sideLast < last) last = sideLast;
  }
  return last;
}

function describeChange(change: DriftChange, before: { v?: string } | undefined, after: { v?: string } | undefined) {
  const hidden = (value: { v?: string } | undefined) => value !== undefined && value.v === undefined;
  if (hidden(before) || hidden(after)) return `${REDACTED} ${change}`;
  return `${before?.v ?? ABSENT} → ${after?.v ?? ABSENT}`;
}

function compareUnparsed(
  filePath: string,
  from: ConfigSummary,
  to: ConfigSummary,
  sides: DriftSides,
): DriftDifference[] {
  if (!from.parsed && !to.parsed && sameLines(from, to)) return [];
  const describeSide = (side: string, summary: ConfigSummary) =>
    summary.parsed || summary.parses
      ? `${side} parsed as ${summary.format}`
      : `${side} could not be parsed${summary.format === 'text' ? '' : ` as ${summary.format}`} (${summary.error})`;
  let detail = `${describeSide(sides.from, from)}; ${describeSide(sides.to, to)}`;
  let lineDifferences: DriftDifference[] = [];
  if (!from.parsed && !to.parsed) {
    const fromLines = from.lines.slice(0, MAX_COMPARED_LINES);
    const toLines = to.lines.slice(0, MAX_COMPARED_LINES);
    if (from.truncated || to.truncated || fromLines.length < from.lines.length || toLines.length < to.lines.length) {
      detail += `; only the first ${fromLines.length} lines of ${sides.from} and ${toLines.length} of ${sides.to} were compared`;
    }
    const lines = compareLines(filePath, fromLines, toLines);
    if (!lines.shortest) detail += `; over ${MAX_LINE_EDITS} lines differ, so lines are compared by position`;
    lineDifferences = lines.differences;
  }
  return [
    // Its keys could not be compared: the findings of earlier scans about them still stand.
    {
      subject: filePath,
      change: 'changed',
      detail,
      severity: 'warning',
      aspect: 'unparseable',
      unseen: { prefix: `${filePath}:`, aspect: 'key' },
    },
    ...lineDifferences,
  ];
}

function sameLines(from: LineSummary, to: LineSummary): boolean {
  return (
    !from.truncated &&
    !to.truncated &&
    from.lines.length === to.lines.length &&
    from.lines.every((line, index) => line.h === to.lines[index]!.h)
  );
}

function compareLines(filePath: string, from: readonly ConfigLine[], to: readonly ConfigLine[]) {
  const ids = new Map<string, number>();
  const idOf = (line: ConfigLine) => {
    let id = ids.get(line.h);
    if (id === undefined) ids.set(line.h, (id = ids.size));
    return id;
  };
  const subject = (line: number) => `${filePath}:line ${line + 1}`;
  const differences: DriftDifference[] = [];
  const { hunks, shortest } = diffHunks(from.map(idOf), to.map(idOf));
  for (const { removed, added } of hunks) {
    const paired = Math.min(removed.length, added.length);
    // A changed line is named by its number on the from side, like a removed one.
    for (let index = 0; index < paired; index += 1) {
      const before = from[removed[index]!]!;
      const after = to[added[index]!]!;
      differences.push({
        subject: subject(removed[index]!),
        change: 'changed',
        detail: describeLineChange('changed', before, after),
        aspect: 'line',
      });
    }
    for (const index of removed.slice(paired)) {
      differences.push({
        subject: subject(index),
        change: 'removed',
        detail: describeLineChange('removed', from[index], undefined),
        aspect: 'line',
      });
    }
    for (const index of added.slice(paired)) {
      differences.push({
        subject: subject(index),
        change: 'added',
        detail: describeLineChange('added', undefined, to[index]),
        aspect: 'line',
      });
    }
  }
  return { differences, shortest };
}

function describeLineChange(change: DriftChange, before: ConfigLine | undefined, after: ConfigLine | undefined) {
  const shown = (line: ConfigLine | undefined) =>
    line === undefined ? undefined : { v: line.v === '' ? '(empty line)' : line.v };
  return describeChange(change, shown(before), shown(after));
}

/** A block of lines removed from `from` and added in `to`, between lines both have. */
interface Hunk {
  removed: number[];
  added: number[];
}

/**
 * The hunks of a shortest edit script from `a` to `b` (Myers' O(ND) algorithm, after the common
 * head and tail are set aside). Past MAX_LINE_EDITS edits, which bounds time and the trace's
 * memory, the middle is compared line by line at the same positions instead (not `shortest`).
 */
function diffHunks(a: readonly number[], b: readonly number[]): { hunks: Hunk[]; shortest: boolean } {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head += 1;
  let tailA = a.length;
  let tailB = b.length;
  while (tailA > head && tailB > head && a[tailA - 1] === b[tailB - 1]) {
    tailA -= 1;
    tailB -= 1;
  }
  const middleA = a.slice(head, tailA);
  const middleB = b.slice(head, tailB);
  if (middleA.length === 0 && middleB.length === 0) return { hunks: [], shortest: true };
  const edits = shortestEditScript(middleA, middleB, MAX_LINE_EDITS);
  if (edits === undefined) return { hunks: samePositionHunks(a, b, head, tailA, tailB), shortest: false };
  const hunks: Hunk[] = [];
  let current: Hunk | undefined;
  let expected = { x: -1, y: -1 };
  for (const edit of edits) {
    if (current === undefined || edit.x !== expected.x || edit.y !== expected.y) {
      current = { removed: [], added: [] };
      hunks.push(current);
    }
    if (edit.kind === 'remove') {
      current.removed.push(head + edit.x);
      expected = { x: edit.x + 1, y: edit.y };
    } else {
      current.added.push(head + edit.y);
      expected = { x: edit.x, y: edit.y + 1 };
    }
  }
  return { hunks, shortest: true };
}

function samePositionHunks(a: readonly number[], b: readonly number[], head: number, tailA: number, tailB: number) {
  const hunks: Hunk[] = [];
  const common = Math.min(tailA, tailB);
  for (let index = head; index < common; index += 1) {
    if (a[index] !== b[index]) hunks.push({ removed: [index], added: [index] });
  }
  const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
  if (tailA > common || tailB > common) hunks.push({ removed: range(common, tailA), added: range(common, tailB) });
  return hunks;
}

/** One edit, at the point (x in a, y in b) where it starts. */
interface Edit {
  kind: 'remove' | 'add';
  x: number;
  y: number;
}

function shortestEditScript(a: readonly number[], b: readonly number[], maxEdits: number): Edit[] | undefined {
  const n = a.length;
  const m = b.length;
  const limit = Math.min(n + m, maxEdits);
  const offset = limit + 1;
  // furthest[offset + k]: the furthest x reached on diagonal k (x - y = k).
  const furthest = new Int32Array(2 * limit + 3);
  // The trace keeps, for each d, the diagonals -d..d as they were before step d.
  const trace: Int32Array[] = [];
  for (let d = 0; d <= limit; d += 1) {
    trace.push(furthest.slice(offset - d, offset + d + 1));
    for (let k = -d; k <= d; k += 2) {
      const down = k === -d || (k !== d && furthest[offset + k - 1]! < furthest[offset + k + 1]!);
      let x = down ? furthest[offset + k + 1]! : furthest[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x += 1;
        y += 1;
      }
      furthest[offset + k] = x;
      if (x >= n && y >= m) return backtrack(trace, n, m);
    }
  }
  return undefined;
}

function backtrack(trace: readonly Int32Array[], n: number, m: number): Edit[] {
  const edits: Edit[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 1; d > 0; d -= 1) {
    const before = trace[d]!;
    const at = (k: number) => before[k + d]!;
    const k = x - y;
    const previousK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const previousX = at(previousK);
    const previousY = previousX - previousK;
    while (x > previousX && y > previousY) {
      x -= 1;
      y -= 1;
    }
    edits.push(
      x === previousX ? { kind: 'add', x: previousX, y: previousY } : { kind: 'remove', x: previousX, y: previousY },
    );
    x = previousX;
    y = previousY;
  }
  return edits.reverse();
}
