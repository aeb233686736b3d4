// Rollbacks that are running now, found through Temporal's visibility store. Scoped to one
// installation's control task queue: another rewind on the same namespace may have an
// environment of the same name. Dry runs change nothing, so they do not count.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { dryRunAttribute } from '../domain/search-attributes';

export async function runningRollbacks(client: Client, taskQueue: string, environment: string): Promise<string[]> {
  const query = `WorkflowType = 'rollbackWorkflow' AND ExecutionStatus = 'Running' AND RewindEnvironment = '${environment}' AND TaskQueue = '${taskQueue}'`;
  const ids: string[] = [];
  for await (const run of client.workflow.list({ query })) {
    if (run.typedSearchAttributes.get(dryRunAttribute) !== true) ids.push(run.workflowId);
  }
  return ids;
}

/** The rollback holding an environment's lock workflow (workflows/lock.ts), if that still runs. */
export async function lockHolder(client: Client, lockWorkflowId: string): Promise<string | undefined> {
  try {
    const description = await client.workflow.getHandle(lockWorkflowId).describe();
    return description.status.name === 'RUNNING' ? (description.parentExecution?.workflowId ?? undefined) : undefined;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}
