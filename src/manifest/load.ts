// Reads `rewind.yaml`: YAML → zod → folder rules on absolute paths → (optionally) paths that
// must exist. Every problem is reported at once, with the key's path, line and column, e.g.
// `environments.production.components.models.path: required (line 9, column 7)`, and nothing starts.
import { existsSync, lstatSync, readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { componentFolders, componentSchema, KIND_NAMES, resolveComponentPaths } from '../components/registry';
import { closestMatch, didYouMean, nameField, PROTOTYPE_KEY_REFUSAL, valueAt } from './fields';
import { isRepositoryUrl, manifestSchema, type Component, type Manifest } from './schema';
import type { RepositorySpec } from './repository';
import { expandHosts, hostOverrideProblems } from './hosts';
import { splitHost } from '../domain/hosts';

export const DEFAULT_MANIFEST = 'rewind.yaml';
export const DEFAULT_PASSWORD_ENV = 'REWIND_REPOSITORY_PASSWORD';

export interface ManifestIssue {
  /** Dotted key path, e.g. `environments.production.components.models.path`; empty for the whole file. */
  path: string;
  /** What is wrong, ending with where (`(line 9, column 7)`) when the key is in the file. */
  message: string;
  /** Where the key is in the file (1-based); for a missing key, the mapping that lacks it. */
  line?: number;
  column?: number;
}

/** An issue before it is placed in the file: its key path as segments, and a hint for after the place. */
interface Problem {
  at: readonly PropertyKey[];
  message: string;
  hint?: string | undefined;
  /** For an unknown key, the allowed key it is closest to. */
  suggests?: string | undefined;
}

export class ManifestError extends Error {
  constructor(
    readonly file: string,
    readonly issues: ManifestIssue[],
  ) {
    super(`invalid manifest ${file}:\n` + issues.map((i) => `  ${i.path ? `${i.path}: ` : ''}${i.message}`).join('\n'));
    this.name = 'ManifestError';
  }
}

/** A manifest whose relative paths have been made absolute against the manifest's folder. */
export interface LoadedManifest {
  file: string;
  manifest: Manifest;
}

export interface LoadOptions {
  /** Check that component paths exist: for every environment, for the named ones, or not at all. */
  checkPaths?: 'all' | readonly string[] | false;
  /**
   * Check only the components one agent serves: those on this host (`--host`), or with `null`
   * those on no host. Another host's paths are on that host, not here.
   */
  agentHost?: string | null;
}

export function manifestPathFrom(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(option || env.REWIND_MANIFEST || DEFAULT_MANIFEST);
}

export function loadManifest(file: string, options: LoadOptions = {}): LoadedManifest {
  const absolute = path.resolve(file);
  if (!existsSync(absolute)) {
    throw new ManifestError(absolute, [
      {
        path: '',
        message: 'file not found (pass --manifest FILE or set REWIND_MANIFEST; `rewind start` writes a demo one)',
      },
    ]);
  }
  return parseManifest(readFileSync(absolute, 'utf8'), absolute, options);
}

export function parseManifest(text: string, file: string, options: LoadOptions = {}): LoadedManifest {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, lineCounter });
  if (doc.errors.length > 0) {
    throw new ManifestError(
      file,
      doc.errors.map((e) => ({
        path: '',
        message: `YAML: ${(e.message.split('\n')[0] ?? e.message).replace(/:$/, '')}`,
        ...(e.linePos ? { line: e.linePos[0].line, column: e.linePos[0].col } : {}),
      })),
    );
  }
  if (!isMap(doc.contents)) {
    throw new ManifestError(file, [
      { path: '', message: 'expected a YAML mapping with repository, approvers and environments' },
    ]);
  }
  const input: unknown = doc.toJS();
  const base = path.dirname(file);
  const parsed = manifestSchema.safeParse(input, { error: describeIssue });
  // The folder rules read what they can of the input, so that they are reported together with
  // every problem zod finds, not only once those are fixed.
  const names = prototypeNames(input);
  const fromSchema = parsed.success ? [] : parsed.error.issues.flatMap((issue) => fromZod(issue, input));
  // "paht: unknown key; did you mean "path"?" says all that "path: required" would.
  const suggested = fromSchema.flatMap((p) => (p.suggests ? [[...p.at.slice(0, -1), p.suggests]] : []));
  const problems = [
    ...fromSchema.filter(
      (p) =>
        !(p.message.startsWith('must declare at least one') && names.hidden.some((at) => samePath(at, p.at))) &&
        !(p.message === 'required' && suggested.some((at) => samePath(at, p.at))),
    ),
    ...names.problems,
    ...folderProblems(input, base),
    ...(parsed.success ? [] : hostOverrideProblems(input, parseComponent)),
  ];
  if (problems.length > 0 || !parsed.success) throw new ManifestError(file, placeAll(doc, lineCounter, problems));

  const hosts = expandHosts(parsed.data, input, parseComponent);
  if (hosts.problems.length > 0) throw new ManifestError(file, placeAll(doc, lineCounter, hosts.problems));
  const manifest = resolvePaths(hosts.manifest, base);
  const checkPaths = options.checkPaths ?? false;
  if (checkPaths !== false) {
    const missing = missingComponentPaths(
      manifest,
      checkPaths === 'all' ? Object.keys(manifest.environments) : checkPaths,
      options.agentHost,
    );
    if (missing.length > 0) {
      throw new ManifestError(
        file,
        placeAll(
          doc,
          lineCounter,
          missing.map((m) => ({ at: m.path.split('.'), message: m.message })),
        ),
      );
    }
  }
  return { file, manifest };
}

function resolveRepository(repository: RepositorySpec, base: string): RepositorySpec {
  return {
    ...repository,
    path: isRepositoryUrl(repository.path) ? repository.path : path.resolve(base, repository.path),
    ...(repository.passwordFile ? { passwordFile: path.resolve(base, repository.passwordFile) } : {}),
  };
}

function resolvePaths(manifest: Manifest, base: string): Manifest {
  return {
    ...manifest,
    repository: resolveRepository(manifest.repository, base),
    dataDir: path.resolve(base, manifest.dataDir),
    snapshots: {
      ...manifest.snapshots,
      ...(manifest.snapshots.cold ? { cold: resolveRepository(manifest.snapshots.cold, base) } : {}),
    },
    api: {
      ...manifest.api,
      tokensFile: path.resolve(base, manifest.api.tokensFile ?? path.join(manifest.dataDir, 'api-tokens.json')),
    },
    environments: Object.fromEntries(
      Object.entries(manifest.environments).map(([envName, env]) => [
        envName,
        {
          ...env,
          ...(env.version?.file ? { version: { ...env.version, file: path.resolve(base, env.version.file) } } : {}),
          components: Object.fromEntries(
            Object.entries(env.components).map(([n, c]) => [n, resolveComponentPaths(c, (p) => path.resolve(base, p))]),
          ),
        },
      ]),
    ),
  };
}

// ---- folder rules ----

/** A folder (or file) the manifest names, resolved, and what it is for. */
interface Place {
  at: string[];
  /** As resolved against the manifest's folder. */
  dir: string;
  /** With symbolic links followed, as far as the path exists. */
  real: string;
  role: 'component' | 'repository' | 'dataDir' | 'passwordFile';
  environment?: string;
  /** How the place reads in a message. */
  shown: string;
}

const asObject = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;

/** The path with symbolic links followed: of its longest existing ancestor, plus the rest. */
function followLinks(p: string): string {
  try {
    return realpathSync.native(p);
  } catch {
    const parent = path.dirname(p);
    return parent === p ? p : path.join(followLinks(parent), path.basename(p));
  }
}

/** Is `inner` strictly inside `outer`? */
function isInside(inner: string, outer: string): boolean {
  const relative = path.relative(outer, inner);
  return relative !== '' && relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

function place(at: string[], dir: string, role: Place['role'], extra: { environment?: string; shown?: string } = {}) {
  const real = followLinks(dir);
  const shown = extra.shown ?? dir;
  return {
    at,
    dir,
    real,
    role,
    ...(extra.environment !== undefined ? { environment: extra.environment } : {}),
    shown: real === dir ? shown : `${shown} (${real} once links are followed)`,
  } satisfies Place;
}

/** Every folder the manifest names that rewind writes or keeps its own data in, as far as it parses. */
function placesOf(input: unknown, base: string): Place[] {
  const root = asObject(input);
  if (!root) return [];
  const resolve = (p: string) => path.resolve(base, p);
  const places: Place[] = [];
  const repositoryShape = manifestSchema.shape.repository.shape;
  const repository = asObject(root.repository);
  const repoPath = repositoryShape.path.safeParse(repository?.path);
  if (repoPath.success && !isRepositoryUrl(repoPath.data))
    places.push(place(['repository', 'path'], resolve(repoPath.data), 'repository'));
  const passwordFile = repositoryShape.passwordFile.safeParse(repository?.passwordFile);
  if (passwordFile.success && passwordFile.data !== undefined)
    places.push(place(['repository', 'passwordFile'], resolve(passwordFile.data), 'passwordFile'));
  const dataDir = manifestSchema.shape.dataDir.safeParse(root.dataDir);
  if (dataDir.success) {
    const dir = resolve(dataDir.data);
    places.push(
      place(
        ['dataDir'],
        dir,
        'dataDir',
        root.dataDir === undefined ? { shown: `${dir} (the default, ${dataDir.data})` } : {},
      ),
    );
  }
  for (const [envName, env] of Object.entries(asObject(root.environments) ?? {})) {
    if (!nameField.safeParse(envName).success) continue;
    for (const [name, raw] of Object.entries(asObject(asObject(env)?.components) ?? {})) {
      const component = salvagedComponent(raw);
      if (!nameField.safeParse(name).success || !component) continue;
      for (const folder of componentFolders(resolveComponentPaths(component, resolve))) {
        if (!folder.written) continue;
        const at = ['environments', envName, 'components', name, ...folder.key.split('.')];
        places.push(place(at, folder.dir, 'component', { environment: envName }));
      }
    }
  }
  return places;
}

/**
 * A component as far as it is valid: when some of its keys are wrong (a misspelt key, a bad
 * format), without them, so that its folders are still checked; none when its kind is unknown or
 * its folders themselves are wrong.
 */
function salvagedComponent(raw: unknown): Component | undefined {
  const first = componentSchema.safeParse(raw);
  if (first.success) return first.data;
  const object = asObject(raw);
  if (!object) return undefined;
  const wrong = new Set(
    first.error.issues.flatMap((issue) =>
      issue.code === 'unrecognized_keys' ? issue.keys : issue.path.length > 0 ? [String(issue.path[0])] : [],
    ),
  );
  if (wrong.size === 0 || wrong.has('kind')) return undefined;
  const second = componentSchema.safeParse(Object.fromEntries(Object.entries(object).filter(([k]) => !wrong.has(k))));
  return second.success ? second.data : undefined;
}

const keyOf = (p: Place) => p.at.join('.');

/** How `a` stands to `b`, in words, if they overlap: "is inside …", "is the same folder as …". */
function overlap(a: Place, b: Place): string | undefined {
  if (a.real === b.real) return `${a.shown} is the same folder as ${keyOf(b)}${b.dir === a.dir ? '' : ` (${b.dir})`}`;
  if (isInside(a.real, b.real)) return `${a.shown} is inside ${keyOf(b)} (${b.dir})`;
  if (isInside(b.real, a.real)) return `${a.shown} holds ${keyOf(b)} (${b.dir})`;
  return undefined;
}

const KEPT_HINT: Record<Exclude<Place['role'], 'component'>, string> = {
  repository: 'a rollback of that component would overwrite the repository',
  dataDir: "a rollback of that component would overwrite rewind's plans, reports and agent state",
  passwordFile: 'a rollback of that component could delete or replace the password',
};

/**
 * Folders that would defeat the per-environment lock or destroy what rewind keeps: components
 * (the folders rewind writes) that share or nest, in one environment or across them; the
 * repository, dataDir or password file inside a component; a component inside the repository.
 * Components inside dataDir are allowed (the demo keeps its data there).
 */
function folderProblems(input: unknown, base: string): Problem[] {
  const places = placesOf(input, base);
  const components = places.filter((p) => p.role === 'component');
  const problems: Problem[] = [];
  for (const kept of places) {
    if (kept.role === 'component') continue;
    for (const component of components) {
      const inComponent = kept.real === component.real || isInside(kept.real, component.real);
      if (inComponent) {
        problems.push({ at: kept.at, message: overlap(kept, component)!, hint: KEPT_HINT[kept.role] });
        break;
      }
      if (kept.role === 'repository' && isInside(component.real, kept.real)) {
        problems.push({
          at: component.at,
          message: overlap(component, kept)!,
          hint: 'restoring it would write into the restic repository',
        });
      }
    }
  }
  components.forEach((component, i) => {
    if (component.real === path.parse(component.real).root) {
      problems.push({ at: component.at, message: `${component.shown} is the file system root` });
      return;
    }
    for (const earlier of components.slice(0, i)) {
      const how = overlap(component, earlier);
      if (!how) continue;
      problems.push({
        at: component.at,
        message: how,
        hint:
          earlier.environment === component.environment
            ? "restoring one would overwrite the other's files"
            : "each environment's lock guards only its own rollbacks, so two rollbacks could write this folder at once",
      });
      break;
    }
  });
  return problems;
}

// ---- names ----

/**
 * Environment and component names that every object already has. zod checks `constructor`
 * against the name rules, but drops a `__proto__` key without a word, so look at the input.
 */
function prototypeNames(input: unknown): {
  problems: Problem[];
  /** Records whose "must declare at least one" only follows from the name zod dropped. */
  hidden: PropertyKey[][];
} {
  const problems: Problem[] = [];
  const hidden: PropertyKey[][] = [];
  const refuse = (at: string[], name: string) => {
    problems.push({ at: [...at, name], message: `invalid name "${name}": ${PROTOTYPE_KEY_REFUSAL}` });
    hidden.push(at);
  };
  const check = (record: unknown, at: string[]) => {
    const object = asObject(record);
    if (object && Object.prototype.hasOwnProperty.call(object, '__proto__')) refuse(at, '__proto__');
    return object;
  };
  const environments = check(asObject(input)?.environments, ['environments']);
  for (const [envName, env] of Object.entries(environments ?? {}))
    check(asObject(env)?.components, ['environments', envName, 'components']);
  return { problems, hidden };
}

const samePath = (a: readonly PropertyKey[], b: readonly PropertyKey[]) =>
  a.length === b.length && a.every((segment, i) => String(segment) === String(b[i]));

// ---- places in the file ----

function placeAll(doc: Document, counter: LineCounter, problems: Problem[]): ManifestIssue[] {
  return problems
    .map((problem) => {
      const where = locate(doc, counter, problem.at);
      return {
        path: problem.at.map(String).join('.'),
        message: `${problem.message}${where ? ` (line ${where.line}, column ${where.column})` : ''}${problem.hint ? `; ${problem.hint}` : ''}`,
        ...where,
      };
    })
    .map((issue, order) => ({ issue, order }))
    .sort(
      (a, b) =>
        (a.issue.line ?? 0) - (b.issue.line ?? 0) || (a.issue.column ?? 0) - (b.issue.column ?? 0) || a.order - b.order,
    )
    .map(({ issue }) => issue);
}

/**
 * Where the key at `at` is written: the key itself in a mapping, the item in a list; for a key
 * that is missing, the key of the mapping that lacks it. None for a top-level key that is missing.
 */
function locate(
  doc: Document,
  counter: LineCounter,
  at: readonly PropertyKey[],
): { line: number; column: number } | undefined {
  let node: unknown = doc.contents;
  let found: unknown;
  for (const segment of at) {
    let next: { anchor: unknown; value: unknown } | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (pair) next = { anchor: pair.key, value: pair.value };
    } else if (isSeq(node)) {
      const item = node.items[Number(segment)];
      if (item !== undefined) next = { anchor: item, value: item };
    }
    if (!next) break;
    found = next.anchor;
    node = next.value;
  }
  const offset = isNode(found) ? found.range?.[0] : undefined;
  if (offset === undefined) return undefined;
  const { line, col } = counter.linePos(offset);
  return { line, column: col };
}

/** Component folders (files paths, migrations folders) that do not exist, for the given environments. */
export function missingComponentPaths(
  manifest: Manifest,
  environments: readonly string[],
  agentHost?: string | null,
): ManifestIssue[] {
  const issues: ManifestIssue[] = [];
  for (const envName of environments) {
    const env = manifest.environments[envName];
    if (!env) {
      issues.push({
        path: 'environments',
        message: `no environment "${envName}" (declared: ${Object.keys(manifest.environments).join(', ')})`,
      });
      continue;
    }
    for (const [name, component] of Object.entries(env.components)) {
      if (agentHost !== undefined && (splitHost(name).host ?? null) !== agentHost) continue;
      for (const { key, dir, written } of componentFolders(component)) {
        const at = `environments.${envName}.components.${name}.${key}`;
        if (!existsSync(dir)) issues.push({ path: at, message: `${dir} does not exist` });
        else if (!statSync(dir).isDirectory()) issues.push({ path: at, message: `${dir} is not a directory` });
        else if (written && lstatSync(dir).isSymbolicLink())
          issues.push({ path: at, message: symbolicLinkRefusal(dir) });
      }
    }
  }
  return issues;
}

/**
 * Why a directory rewind restores into must not be a symbolic link: restic would replace the
 * link with a new directory and leave the linked data as it was.
 */
export function symbolicLinkRefusal(dir: string, target = readlinkSync(dir)): string {
  return `${dir} is a symbolic link (to ${target}); rewind writes the directory at this path and would replace the link with a directory: name the directory itself`;
}

/** The repository password, from the variable or file the manifest names. Never logged. */
export function repositoryPassword(manifest: Manifest, env: NodeJS.ProcessEnv = process.env): string {
  return passwordOf(manifest.repository, 'repository', env);
}

/** The password of a repository of the manifest; `where` names its key in errors. */
export function passwordOf(repository: RepositorySpec, where: string, env: NodeJS.ProcessEnv = process.env): string {
  const { passwordFile, passwordEnv } = repository;
  if (passwordFile) {
    if (!existsSync(passwordFile))
      throw new ManifestError('manifest', [
        { path: `${where}.passwordFile`, message: `${passwordFile} does not exist` },
      ]);
    return readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '');
  }
  const variable = passwordEnv ?? DEFAULT_PASSWORD_ENV;
  const value = env[variable];
  if (!value) {
    throw new ManifestError('manifest', [
      {
        path: `${where}.passwordEnv`,
        message: `environment variable ${variable} is not set (it holds the repository password)`,
      },
    ]);
  }
  return value;
}

function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator === 'kind') {
    const kind = (issue.input as { kind?: unknown } | undefined)?.kind;
    const known = KIND_NAMES.join(', ');
    return kind === undefined
      ? `required: one of ${known}`
      : `unknown kind ${JSON.stringify(kind)}; expected one of: ${known}`;
  }
  if (issue.code === 'invalid_key')
    return `invalid name ${JSON.stringify(issue.input)}: ${issue.issues[0]?.message ?? 'not allowed'}`;
  if (issue.code === 'invalid_type' && issue.input === undefined) return 'required';
  if (issue.code === 'invalid_type') return `expected ${issue.expected}, got ${describeValue(issue.input)}`;
  return undefined;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** One host's component, with its problems at keys relative to it (src/manifest/hosts.ts). */
function parseComponent(raw: unknown): { data: Component } | { problems: Problem[] } {
  const parsed = componentSchema.safeParse(raw, { error: describeIssue });
  if (parsed.success) return { data: parsed.data };
  return { problems: parsed.error.issues.flatMap((issue) => fromZod(issue, raw, componentSchema)) };
}

function fromZod(issue: z.core.$ZodIssue, input: unknown, schema: z.core.$ZodType = manifestSchema): Problem[] {
  if (issue.code === 'unrecognized_keys') {
    const allowed = objectKeysAt(schema, input, issue.path) ?? [];
    return issue.keys.map((key) => {
      const suggests = closestMatch(key, allowed);
      return {
        at: [...issue.path, key],
        message: 'unknown key',
        hint: suggests === undefined ? undefined : `did you mean "${suggests}"?`,
        suggests,
      };
    });
  }
  const given = valueAt(input, issue.path);
  let hint = (issue.code === 'custom' ? (issue.params as { hint?: string } | undefined)?.hint : undefined) ?? undefined;
  if (issue.code === 'invalid_union' && issue.path.at(-1) === 'kind' && typeof given === 'string')
    hint = didYouMean(given, KIND_NAMES);
  if (issue.code === 'invalid_value' && typeof given === 'string')
    hint = didYouMean(
      given,
      issue.values.map((v) => String(v)),
    );
  return [{ at: issue.path, message: issue.message, hint }];
}

/** The parts of a zod schema's definition that lead to the object at a path. */
interface WalkDef {
  type: string;
  shape?: Record<string, z.core.$ZodType>;
  valueType?: z.core.$ZodType;
  element?: z.core.$ZodType;
  innerType?: z.core.$ZodType;
  in?: z.core.$ZodType;
  options?: readonly z.core.$ZodType[];
  discriminator?: string;
}

/** The keys the object at `at` may hold, following the input through records and kinds. */
function objectKeysAt(schema: z.core.$ZodType, input: unknown, at: readonly PropertyKey[]): string[] | undefined {
  let current: z.core.$ZodType | undefined = schema;
  let value = input;
  let depth = 0;
  while (current) {
    const def = current._zod.def as unknown as WalkDef;
    if (def.innerType) {
      current = def.innerType;
      continue;
    }
    if (def.type === 'pipe') {
      current = def.in;
      continue;
    }
    if (def.type === 'union') {
      const discriminator = def.discriminator;
      const chosen = discriminator === undefined ? undefined : valueAt(value, [discriminator]);
      current = def.options?.find((option) =>
        option._zod.propValues?.[discriminator ?? '']?.has(chosen as string | undefined),
      );
      continue;
    }
    if (depth === at.length) return def.type === 'object' && def.shape ? Object.keys(def.shape) : undefined;
    const segment = at[depth]!;
    value = valueAt(value, [segment]);
    depth++;
    if (def.type === 'object') current = def.shape?.[String(segment)];
    else if (def.type === 'record') current = def.valueType;
    else if (def.type === 'array') current = def.element;
    else return undefined;
  }
  return undefined;
}
