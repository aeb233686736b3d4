// Bundles the workflow code once at build time (lib/workflow-bundle.js), so workers start in
// a second instead of running webpack on every start.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

/** The workflow bundle's code: rewind's workflows, or another workflows module (tests). */
export async function workflowBundleCode(workflowsPath = require.resolve('../workflows')): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath,
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

export async function bundleWorkflows(outFile: string): Promise<void> {
  await writeFile(outFile, await workflowBundleCode());
}

if (require.main === module) {
  const out = process.argv[2] ?? path.resolve(__dirname, '..', '..', 'workflow-bundle.js');
  bundleWorkflows(out).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
