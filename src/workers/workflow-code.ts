// Where a worker gets its workflow code: a pre-built bundle when one exists (fast start, and
// what `npm run build` produces), else the sources, which the worker bundles itself. A traced
// worker (OTEL_EXPORTER_OTLP_ENDPOINT set) takes the bundle built with OpenTelemetry's workflow
// interceptors: a bundle's interceptors are fixed when it is built.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { WorkerOptions } from '@temporalio/worker';
import { tracingOn, tracingWorkerOptions, WORKFLOW_TRACING_MODULE } from '../platform/tracing';

export const WORKFLOW_BUNDLE_ENV = 'REWIND_WORKFLOW_BUNDLE';

/** The bundles `npm run build` writes (lib/), plain and traced. */
export const BUNDLE_FILES = { plain: 'workflow-bundle.js', traced: 'workflow-bundle-traced.js' } as const;

/**
 * Modules evaluated once per worker instead of once per workflow. A reusable V8 context gives every
 * workflow its own module cache, so each new workflow (and each replay after a cache eviction) ran
 * these modules again: they build the manifest's zod schemas at load, 15 to 35 ms of CPU per
 * workflow on a 2-core machine (docs/benchmarks.md, "Drift scans"). They hold no state and import
 * nothing of Temporal's: a preloaded module that reached `@temporalio/workflow` would share one
 * workflow's context with all. `npm run build` checks that (`preloadedModuleProblems`).
 */
export const PRELOADED_MODULES: readonly string[] = [
  '../components/registry',
  '../domain/cross-section',
  '../domain/drift-scan',
  '../domain/report',
  '../domain/rollback',
  '../domain/rollback-plan',
  '../domain/rollback-rules',
  '../drills/section',
  '../manifest/fields',
  '../verify/section',
].map((m) => require.resolve(m));

export function workflowCode(
  env: NodeJS.ProcessEnv = process.env,
  traced = false,
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath' | 'interceptors' | 'bundlerOptions'> {
  const plain = env[WORKFLOW_BUNDLE_ENV] ?? path.resolve(__dirname, '..', '..', BUNDLE_FILES.plain);
  // The traced bundle is built beside the plain one.
  const prebuilt = traced ? path.join(path.dirname(plain), BUNDLE_FILES.traced) : plain;
  if (existsSync(prebuilt)) return { workflowBundle: { codePath: prebuilt } };
  return {
    workflowsPath: require.resolve('../workflows'),
    bundlerOptions: { preloadModules: [...PRELOADED_MODULES] },
    ...(traced ? { interceptors: { workflowModules: [require.resolve(WORKFLOW_TRACING_MODULE)] } } : {}),
  };
}

/** A workflow worker's code, with the tracing interceptors and sink when this process traces. */
export function tracedWorkflowCode(
  env: NodeJS.ProcessEnv = process.env,
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath' | 'interceptors' | 'bundlerOptions' | 'sinks'> {
  const code = workflowCode(env, tracingOn());
  const tracing = tracingWorkerOptions();
  return { ...code, ...tracing, interceptors: { ...code.interceptors, ...tracing.interceptors } };
}
