// Bundles the workflow code once at build time (lib/workflow-bundle.js, and the traced one), so workers start in
// a second instead of running webpack on every start.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_TRACING_MODULE } from '../platform/tracing';
import { BUNDLE_FILES, PRELOADED_MODULES } from './workflow-code';

/** The workflow bundle's code: rewind's workflows, or another workflows module (tests). */
export async function workflowBundleCode(
  workflowsPath = require.resolve('../workflows'),
  workflowInterceptorModules: string[] = [],
): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    workflowInterceptorModules,
    preloadModules: [...PRELOADED_MODULES],
    logger: {
      log: () => undefined,
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: console.warn,
      error: console.error,
    },
  });
  const problems = preloadedModuleProblems(code, PRELOADED_MODULES);
  if (problems.length > 0) throw new Error(`the workflow bundle cannot preload:\n  ${problems.join('\n  ')}`);
  return code;
}

/**
 * What keeps the given modules from being preloaded (shared by every workflow of a worker): a
 * module that is not in the bundle, or one that reaches Temporal's workflow modules, whose state
 * is per workflow. Read from webpack's development output (`/***\/ "id"` headers and
 * `__webpack_require__(… "id")` calls); a bundle it cannot read fails the check.
 */
export function preloadedModuleProblems(code: string, preloaded: readonly string[]): string[] {
  const parts = code.split(/^\/\*{3}\/ "([^"]+)"$/m);
  const requires = new Map<string, string[]>();
  for (let i = 1; i < parts.length; i += 2)
    requires.set(
      parts[i]!,
      [...parts[i + 1]!.matchAll(/__webpack_require__\(\/\*![^*]*\*\/ "([^"]+)"\)/g)].map((m) => m[1]!),
    );
  const reached = (id: string, seen = new Set<string>()): Set<string> => {
    if (!seen.has(id)) {
      seen.add(id);
      for (const next of requires.get(id) ?? []) reached(next, seen);
    }
    return seen;
  };
  const problems: string[] = [];
  for (const file of preloaded) {
    const id = [...requires.keys()].find((m) => file.endsWith(m.replace(/^\.\//, '/')));
    if (id === undefined) {
      problems.push(`${file} is not in the bundle`);
      continue;
    }
    const temporal = [...reached(id)].find((m) => m.includes('/@temporalio/'));
    if (temporal) problems.push(`${id} reaches ${temporal}, whose state is per workflow`);
  }
  return problems;
}

/** Writes the plain bundle and, beside it, the one with OpenTelemetry's workflow interceptors. */
export async function bundleWorkflows(outDir: string): Promise<void> {
  await writeFile(path.join(outDir, BUNDLE_FILES.plain), await workflowBundleCode());
  await writeFile(
    path.join(outDir, BUNDLE_FILES.traced),
    await workflowBundleCode(undefined, [require.resolve(WORKFLOW_TRACING_MODULE)]),
  );
}

if (require.main === module) {
  const out = process.argv[2] ?? path.resolve(__dirname, '..', '..');
  bundleWorkflows(out).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
