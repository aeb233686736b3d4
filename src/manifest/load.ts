// Reads `rewind.yaml`: YAML → zod → absolute paths → (optionally) paths that must exist.
// Every problem is reported with the key's path, e.g.
// `environments.production.components.models.path: required`, and nothing starts.
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { isMap, parseDocument } from 'yaml';
import type { z } from 'zod';
import { componentFolders, KIND_NAMES, resolveComponentPaths } from '../components/registry';
import { manifestSchema, type Manifest } from './schema';

export const DEFAULT_MANIFEST = 'rewind.yaml';
export const DEFAULT_PASSWORD_ENV = 'REWIND_REPOSITORY_PASSWORD';

export interface ManifestIssue {
  /** Dotted key path, e.g. `environments.production.components.models.path`; empty for the whole file. */
  path: string;
  message: string;
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
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ManifestError(
      file,
      doc.errors.map((e) => ({
        path: '',
        message: `YAML: ${(e.message.split('\n')[0] ?? e.message).replace(/:$/, '')}`,
      })),
    );
  }
  if (!isMap(doc.contents)) {
    throw new ManifestError(file, [
      { path: '', message: 'expected a YAML mapping with repository, approvers and environments' },
    ]);
  }
  const parsed = manifestSchema.safeParse(doc.toJS(), { error: describeIssue });
  if (!parsed.success) throw new ManifestError(file, parsed.error.issues.map(toManifestIssue));

  const manifest = resolvePaths(parsed.data, path.dirname(file));
  const checkPaths = options.checkPaths ?? false;
  if (checkPaths !== false) {
    const missing = missingComponentPaths(
      manifest,
      checkPaths === 'all' ? Object.keys(manifest.environments) : checkPaths,
    );
    if (missing.length > 0) throw new ManifestError(file, missing);
  }
  return { file, manifest };
}

function resolvePaths(manifest: Manifest, base: string): Manifest {
  const isUrl = (p: string) => /^[a-z0-9]+:/i.test(p) && !path.isAbsolute(p);
  return {
    ...manifest,
    repository: {
      ...manifest.repository,
      path: isUrl(manifest.repository.path) ? manifest.repository.path : path.resolve(base, manifest.repository.path),
      ...(manifest.repository.passwordFile
        ? { passwordFile: path.resolve(base, manifest.repository.passwordFile) }
        : {}),
    },
    dataDir: path.resolve(base, manifest.dataDir),
    environments: Object.fromEntries(
      Object.entries(manifest.environments).map(([envName, env]) => [
        envName,
        {
          ...env,
          components: Object.fromEntries(
            Object.entries(env.components).map(([n, c]) => [n, resolveComponentPaths(c, (p) => path.resolve(base, p))]),
          ),
        },
      ]),
    ),
  };
}

/** Component folders (files paths, migrations folders) that do not exist, for the given environments. */
export function missingComponentPaths(manifest: Manifest, environments: readonly string[]): ManifestIssue[] {
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
  const { passwordFile, passwordEnv } = manifest.repository;
  if (passwordFile) {
    if (!existsSync(passwordFile))
      throw new ManifestError('manifest', [
        { path: 'repository.passwordFile', message: `${passwordFile} does not exist` },
      ]);
    return readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '');
  }
  const variable = passwordEnv ?? DEFAULT_PASSWORD_ENV;
  const value = env[variable];
  if (!value) {
    throw new ManifestError('manifest', [
      {
        path: 'repository.passwordEnv',
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

function toManifestIssue(issue: z.core.$ZodIssue): ManifestIssue {
  const at = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    return { path: [...at, issue.keys.join(',')].join('.'), message: `unknown key${issue.keys.length > 1 ? 's' : ''}` };
  }
  return { path: at.join('.'), message: issue.message };
}
