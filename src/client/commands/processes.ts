// The long-running processes: `rewind start` (the local stack), `rewind worker` (the control
// worker) and `rewind agent` (one environment's agent).
import type { Command } from 'commander';
import { Runtime } from '@temporalio/worker';
import { Faults } from '../../activities/faults';
import { manifestPathFrom } from '../../manifest/load';
import { createLogger, sdkLogger } from '../../platform/logger';
import { temporalSettings } from '../../platform/temporal';
import { openSnapshotStore } from '../../snapshots/open';
import { createAgentWorker } from '../../workers/agent-worker';
import { createControlWorker } from '../../workers/control-worker';
import { runStack } from '../stack';
import { action, globals, manifestOf, port } from './command-context';

export function registerProcessCommands(program: Command): void {
  program
    .command('start')
    .description('run the local stack: Temporal dev server (with Web UI), control worker and one agent per environment')
    .option('--port <port>', 'Temporal gRPC port', '7233')
    .option('--ui-port <port>', 'Web UI port', '8233')
    .option('--ip <ip>', 'address to bind', '127.0.0.1')
    .option('--headless', 'no Web UI')
    .action(
      action(async (opts: { port: string; uiPort: string; ip: string; headless?: boolean }, cmd: Command) => {
        const explicit = globals(cmd).manifest || process.env.REWIND_MANIFEST || undefined;
        await runStack({
          manifestFile: manifestPathFrom(explicit),
          writeDemoIfMissing: explicit === undefined,
          ip: opts.ip,
          port: port(opts.port, '--port'),
          uiPort: port(opts.uiPort, '--ui-port'),
          headless: opts.headless ?? false,
          json: globals(cmd).json ?? false,
        });
      }),
    );

  program
    .command('worker')
    .description('run the control worker (workflows and control activities) on the manifest task queue')
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        const loaded = manifestOf(cmd);
        const logger = createLogger('rewind-worker');
        Runtime.install({ logger: sdkLogger(logger) });
        const settings = temporalSettings(loaded.manifest.temporal.namespace);
        const { worker, close } = await createControlWorker({ loaded, store: openSnapshotStore(loaded.manifest), temporal: settings, logger });
        logger.info({ taskQueue: loaded.manifest.temporal.taskQueue, temporal: settings.address }, 'control worker ready');
        await worker.run();
        await close();
      }),
    );

  program
    .command('agent')
    .description("run an environment's agent: the only process that touches that environment's files")
    .requiredOption('--env <name>', 'environment to serve')
    .action(
      action(async (opts: { env: string }, cmd: Command) => {
        const loaded = manifestOf(cmd, [opts.env]);
        const logger = createLogger(`rewind-agent-${opts.env}`);
        Runtime.install({ logger: sdkLogger(logger) });
        const faults = Faults.parse(process.env.REWIND_FAULTS);
        if (faults.enabled) logger.warn({ faults: faults.describe() }, 'REWIND_FAULTS is set: this agent injects faults (tests only)');
        const settings = temporalSettings(loaded.manifest.temporal.namespace);
        const store = openSnapshotStore(loaded.manifest);
        await store.restic.ensureInitialized();
        const { worker, close } = await createAgentWorker({ loaded, environment: opts.env, store, temporal: settings, logger, faults });
        logger.info({ environment: opts.env, temporal: settings.address }, 'agent ready');
        await worker.run();
        await close();
      }),
    );
}
