// An environment agent: the only process that touches that environment's files. It serves
// the task queue "<taskQueue>-env-<environment>" and runs no workflows. An agent started with a
// host serves the components on that host (`component@host`), on that queue plus "@<host>".
import { installTracing, tracingWorkerOptions } from '../platform/tracing';
import { processMetricsRegistry } from '../metrics/registry';
import { serveMetrics } from '../metrics/server';
import { NativeConnection, Worker } from '@temporalio/worker';
import { installSdkRuntime } from './sdk-runtime';
import { createAgentActivities } from '../activities/agent';
import type { LoadedManifest } from '../manifest/load';
import { envTaskQueue } from '../manifest/schema';
import { hostTaskQueue } from '../domain/hosts';
import { createLogger, type Logger } from '../platform/logger';
import { temporalSettings, type TemporalSettings } from '../platform/temporal';
import { openSnapshotStore } from '../snapshots/open';
import type { SnapshotStore } from '../snapshots/store';

export interface AgentWorkerOptions {
  loaded: LoadedManifest;
  environment: string;
  /** The host whose components this agent serves; none: the environment's own agent. */
  host?: string;
  store: SnapshotStore;
  temporal: TemporalSettings;
  logger: Logger;
}

export async function createAgentWorker(
  options: AgentWorkerOptions,
): Promise<{ worker: Worker; close: () => Promise<void> }> {
  const { manifest } = options.loaded;
  const connection = await NativeConnection.connect({ address: options.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: options.temporal.namespace,
    taskQueue: hostTaskQueue(envTaskQueue(manifest, options.environment), options.host),
    ...tracingWorkerOptions(),
    activities: createAgentActivities({
      environment: options.environment,
      manifest,
      store: options.store,
      logger: options.logger,
    }),
    // Restores are disk-bound; a few at once keeps components of one wave in parallel.
    maxConcurrentActivityTaskExecutions: 4,
  });
  return { worker, close: () => connection.close() };
}

/** The `rewind agent --env NAME [--host H]` process: runs until the worker is shut down (SIGINT, SIGTERM). */
export async function runAgent(loaded: LoadedManifest, environment: string, host?: string): Promise<void> {
  const name = `rewind-agent-${environment}${host !== undefined ? `-${host}` : ''}`;
  const logger = createLogger(name);
  const tracing = installTracing(name);
  installSdkRuntime(logger);
  const settings = temporalSettings(loaded.manifest.temporal.namespace);
  const store = openSnapshotStore(loaded.manifest);
  // Fail at start, not at the first step, when restic is missing or too old.
  void store.restic.binary;
  await store.restic.ensureInitialized();
  const { worker, close } = await createAgentWorker({
    loaded,
    environment,
    ...(host !== undefined ? { host } : {}),
    store,
    temporal: settings,
    logger,
  });
  // metrics.agents names one port per environment: the environment's own agent serves it.
  const listen = host === undefined ? loaded.manifest.metrics.agents[environment] : undefined;
  const metrics = listen
    ? await serveMetrics(listen, [{ registry: processMetricsRegistry() }], logger, `metrics.agents.${environment}`)
    : undefined;
  logger.info({ environment, ...(host !== undefined ? { host } : {}), temporal: settings.address }, 'agent ready');
  await worker.run();
  await close();
  metrics?.close();
  await tracing?.shutdown();
}
