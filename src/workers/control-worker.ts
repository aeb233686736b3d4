// The control worker: runs every workflow and the control activities on the "rewind" task queue.
import { Connection } from '@temporalio/client';
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createControlActivities } from '../activities/control';
import type { LoadedManifest } from '../manifest/load';
import { createLogger, sdkLogger, type Logger } from '../platform/logger';
import { connectClient, ensureSearchAttributes, temporalSettings, type TemporalSettings } from '../platform/temporal';
import { openSnapshotStore } from '../snapshots/open';
import type { SnapshotStore } from '../snapshots/store';
import { workflowCode } from './workflow-code';

export interface ControlWorkerOptions {
  loaded: LoadedManifest;
  store: SnapshotStore;
  temporal: TemporalSettings;
  logger: Logger;
}

export async function createControlWorker(
  options: ControlWorkerOptions,
): Promise<{ worker: Worker; close: () => Promise<void> }> {
  const { manifest } = options.loaded;
  const admin = await Connection.connect({ address: options.temporal.address });
  const added = await ensureSearchAttributes(admin, options.temporal.namespace);
  if (added.length) options.logger.info({ added }, 'registered search attributes');
  await admin.close();

  const client = await connectClient(options.temporal);
  const connection = await NativeConnection.connect({ address: options.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: options.temporal.namespace,
    taskQueue: manifest.temporal.taskQueue,
    ...workflowCode(),
    activities: createControlActivities({ manifest, store: options.store, logger: options.logger, client }),
  });
  return {
    worker,
    close: async () => {
      await connection.close();
      await client.connection.close();
    },
  };
}

/** The `rewind worker` process: runs until the worker is shut down (SIGINT, SIGTERM). */
export async function runControlWorker(loaded: LoadedManifest): Promise<void> {
  const logger = createLogger('rewind-worker');
  Runtime.install({ logger: sdkLogger(logger) });
  const settings = temporalSettings(loaded.manifest.temporal.namespace);
  const store = openSnapshotStore(loaded.manifest);
  void store.restic.binary; // fail at start, not at the first step, when restic is missing or too old
  const { worker, close } = await createControlWorker({
    loaded,
    store,
    temporal: settings,
    logger,
  });
  logger.info({ taskQueue: loaded.manifest.temporal.taskQueue, temporal: settings.address }, 'control worker ready');
  await worker.run();
  await close();
}
