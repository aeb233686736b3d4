// The long-running processes, whose bodies live in src/workers: `rewind start` (the local stack),
// `rewind worker` (the control worker) and `rewind agent` (one environment's agent).
import type { Command } from 'commander';
import { manifestPathFrom } from '../../manifest/load';
// The worker modules load the Temporal worker (hundreds of modules): only the commands that run
// one load them, so that `rewind rollback start` and the other client commands start quickly.
const workers = {
  agent: () => import('../../workers/agent-worker'),
  control: () => import('../../workers/control-worker'),
  stack: () => import('../../workers/stack'),
};
import { action, globals, manifestOf, port, UsageError } from './command-context';
import { hostsAmong } from '../../domain/hosts';

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
        const { runStack } = await workers.stack();
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
      action(async (_opts: unknown, cmd: Command) => (await workers.control()).runControlWorker(manifestOf(cmd))),
    );

  program
    .command('agent')
    .description("run an environment's agent: the only process that touches that environment's files")
    .requiredOption('--env <name>', 'environment to serve')
    .option(
      '--host <name>',
      'serve the components on this host (those the manifest gives hosts:, as component@host); without it, the others',
    )
    .action(
      action(async (opts: { env: string; host?: string }, cmd: Command) => {
        const loaded = manifestOf(cmd, [opts.env], opts.host ?? null);
        if (opts.host !== undefined) {
          const hosts = hostsAmong(Object.keys(loaded.manifest.environments[opts.env]?.components ?? {}));
          if (!hosts.includes(opts.host))
            throw new UsageError(
              hosts.length === 0
                ? `--host ${opts.host}: no component of ${opts.env} names hosts, so its agent runs without --host`
                : `--host ${opts.host}: no component of ${opts.env} runs on ${opts.host} (its hosts: ${hosts.join(', ')})`,
            );
        }
        return (await workers.agent()).runAgent(loaded, opts.env, opts.host);
      }),
    );
}
