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

export function workflowCode(
  env: NodeJS.ProcessEnv = process.env,
  traced = false,
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath' | 'interceptors'> {
  const plain = env[WORKFLOW_BUNDLE_ENV] ?? path.resolve(__dirname, '..', '..', BUNDLE_FILES.plain);
  // The traced bundle is built beside the plain one.
  const prebuilt = traced ? path.join(path.dirname(plain), BUNDLE_FILES.traced) : plain;
  if (existsSync(prebuilt)) return { workflowBundle: { codePath: prebuilt } };
  return {
    workflowsPath: require.resolve('../workflows'),
    ...(traced ? { interceptors: { workflowModules: [require.resolve(WORKFLOW_TRACING_MODULE)] } } : {}),
  };
}

/** A workflow worker's code, with the tracing interceptors and sink when this process traces. */
export function tracedWorkflowCode(
  env: NodeJS.ProcessEnv = process.env,
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath' | 'interceptors' | 'sinks'> {
  const code = workflowCode(env, tracingOn());
  const tracing = tracingWorkerOptions();
  return { ...code, ...tracing, interceptors: { ...code.interceptors, ...tracing.interceptors } };
}
