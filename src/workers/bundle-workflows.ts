// Bundles the workflow code once at build time (lib/workflow-bundle.js, and the traced one), so workers start in
// a second instead of running webpack on every start.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_TRACING_MODULE } from '../platform/tracing';
import { BUNDLE_FILES } from './workflow-code';

/** The workflow bundle's code: rewind's workflows, or another workflows module (tests). */
export async function workflowBundleCode(
  workflowsPath = require.resolve('../workflows'),
  workflowInterceptorModules: string[] = [],
): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    workflowInterceptorModules,
    logger: {
      log: () => undefined,
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: console.warn,
      error: console.error,
    },
  });
  return code;
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
