// The control worker: runs every workflow and the control activities on the "rewind" task queue.
import { installTracing } from '../platform/tracing';
import { createControlMetrics } from '../metrics/control-metrics';
import { processMetricsRegistry } from '../metrics/registry';
import { serveMetrics } from '../metrics/server';
import { Connection, type Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { installSdkRuntime } from './sdk-runtime';
import { createAnnounceActivities } from '../activities/announce';
import { createControlActivities } from '../activities/control';
import { createDrillActivities } from '../activities/drills';
import { createRepositoryActivities } from '../activities/repository';
import { createDriftActivities } from '../activities/drift';
import { createSyncActivities } from '../activities/sync';
import { driftNotifier } from '../drift/slack';
import { lazyProjectStore, type ProjectStore } from '../store/project-store';
import type { LoadedManifest } from '../manifest/load';
import { createLogger, type Logger } from '../platform/logger';
import { connectClient, ensureSearchAttributes, temporalSettings, type TemporalSettings } from '../platform/temporal';
import { openColdRepository, openSnapshotStore } from '../snapshots/open';
import type { SnapshotStore } from '../snapshots/store';
import { tracedWorkflowCode } from './workflow-code';

export interface ControlWorkerOptions {
  loaded: LoadedManifest;
  store: SnapshotStore;
  temporal: TemporalSettings;
  logger: Logger;
  /** The project store (drift scans and findings); opened on first use when absent. */
  projectStore?: () => Promise<ProjectStore>;
}

export async function createControlWorker(
  options: ControlWorkerOptions,
): Promise<{ worker: Worker; client: Client; close: () => Promise<void> }> {
  const { manifest } = options.loaded;
  const admin = await Connection.connect({ address: options.temporal.address });
  const added = await ensureSearchAttributes(admin, options.temporal.namespace);
  if (added.length) options.logger.info({ added }, 'registered search attributes');
  await admin.close();

  const projectStore: (() => Promise<ProjectStore>) & { close?: () => Promise<void> } =
    options.projectStore ?? lazyProjectStore(manifest.dataDir);
  const client = await connectClient(options.temporal);
  const connection = await NativeConnection.connect({ address: options.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: options.temporal.namespace,
    taskQueue: manifest.temporal.taskQueue,
    ...tracedWorkflowCode(),
    activities: {
      ...createControlActivities({ manifest, store: options.store, logger: options.logger, client }),
      ...createDriftActivities({ manifest, logger: options.logger, projectStore, ...driftNotifier(manifest) }),
      ...createSyncActivities({ manifest, projectStore }),
      ...createAnnounceActivities({ manifest, projectStore, logger: options.logger }),
      ...createDrillActivities({ manifest, store: options.store, projectStore }),
      ...createRepositoryActivities({
        manifest,
        store: options.store,
        cold: openColdRepository(manifest),
        client,
        projectStore,
        logger: options.logger,
      }),
    },
  });
  return {
    worker,
    client,
    close: async () => {
      await connection.close();
      await client.connection.close();
      await projectStore.close?.();
    },
  };
}

/** The `rewind worker` process: runs until the worker is shut down (SIGINT, SIGTERM). */
export async function runControlWorker(loaded: LoadedManifest): Promise<void> {
  const logger = createLogger('rewind-worker');
  const tracing = installTracing('rewind-worker');
  installSdkRuntime(logger);
  const settings = temporalSettings(loaded.manifest.temporal.namespace);
  const store = openSnapshotStore(loaded.manifest);
  void store.restic.binary; // fail at start, not at the first step, when restic is missing or too old
  const projectStore = lazyProjectStore(loaded.manifest.dataDir);
  const { worker, client, close } = await createControlWorker({
    loaded,
    store,
    temporal: settings,
    logger,
    projectStore,
  });
  // Opened now, not at the first scan: the CLI reads the embedded store through this process.
  projectStore().then(
    (s) => logger.info({ store: s.where }, 'project store open'),
    (err: unknown) => logger.error({ err }, 'could not open the project store; drift scans will fail until it opens'),
  );
  const listen = loaded.manifest.metrics.worker;
  const metrics = listen
    ? await serveMetrics(
        listen,
        [
          { registry: processMetricsRegistry() },
          createControlMetrics({
            manifest: loaded.manifest,
            projectStore,
            client,
            snapshots: store,
            cold: openColdRepository(loaded.manifest),
            logger,
          }),
        ],
        logger,
        'metrics.worker',
      )
    : undefined;
  logger.info({ taskQueue: loaded.manifest.temporal.taskQueue, temporal: settings.address }, 'control worker ready');
  await worker.run();
  metrics?.close();
  await close();
  await tracing?.shutdown();
  await projectStore.close();
}
