// An environment agent: the only process that touches that environment's files. It serves
// the task queue "<taskQueue>-env-<environment>" and runs no workflows.
import { NativeConnection, Worker } from '@temporalio/worker';
import { createAgentActivities } from '../activities/agent';
import type { Faults } from '../activities/faults';
import type { LoadedManifest } from '../manifest/load';
import { envTaskQueue } from '../manifest/schema';
import type { Logger } from '../platform/logger';
import type { TemporalSettings } from '../platform/temporal';
import type { SnapshotStore } from '../snapshots/store';

export interface AgentWorkerOptions {
  loaded: LoadedManifest;
  environment: string;
  store: SnapshotStore;
  temporal: TemporalSettings;
  logger: Logger;
  faults?: Faults;
}

export async function createAgentWorker(options: AgentWorkerOptions): Promise<{ worker: Worker; close: () => Promise<void> }> {
  const { manifest } = options.loaded;
  const connection = await NativeConnection.connect({ address: options.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: options.temporal.namespace,
    taskQueue: envTaskQueue(manifest, options.environment),
    activities: createAgentActivities({
      environment: options.environment,
      manifest,
      store: options.store,
      logger: options.logger,
      ...(options.faults ? { faults: options.faults } : {}),
    }),
    // Restores are disk-bound; a few at once keeps components of one wave in parallel.
    maxConcurrentActivityTaskExecutions: 4,
  });
  return { worker, close: () => connection.close() };
}
