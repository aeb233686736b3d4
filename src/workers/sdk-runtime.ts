// The Temporal SDK's runtime for a worker process: its own lines, and those of its native core
// (which would otherwise print coloured text straight to stderr), go to the process's JSON log.
import { Runtime } from '@temporalio/worker';
import { sdkLogger, type Logger } from '../platform/logger';

export function installSdkRuntime(logger: Logger): void {
  Runtime.install({
    logger: sdkLogger(logger),
    telemetryOptions: { logging: { filter: { core: 'WARN', other: 'WARN' }, forward: {} } },
  });
}
