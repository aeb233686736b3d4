// Where a worker gets its workflow code: a pre-built bundle when one exists (fast start, and
// what `npm run build` produces), else the sources, which the worker bundles itself.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { WorkerOptions } from '@temporalio/worker';

export const WORKFLOW_BUNDLE_ENV = 'REWIND_WORKFLOW_BUNDLE';

export function workflowCode(
  env: NodeJS.ProcessEnv = process.env,
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  const prebuilt = env[WORKFLOW_BUNDLE_ENV] ?? path.resolve(__dirname, '..', '..', 'workflow-bundle.js');
  if (existsSync(prebuilt)) return { workflowBundle: { codePath: prebuilt } };
  return { workflowsPath: require.resolve('../workflows') };
}
