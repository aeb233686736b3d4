#!/usr/bin/env node
// The `rewind` command. Every command takes --json; bad input gets one clear error line on
// stderr and a non-zero exit, and changes nothing. Each command group lives in ./commands.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { registerApiCommands } from './commands/api';
import { registerAuditCommands } from './commands/audit';
import { registerDbCommands } from './commands/db';
import { registerDrillCommands } from './commands/drill';
import { registerDriftCommands } from './commands/drift';
import { registerScheduleCommands } from './commands/schedules';
import { registerSyncCommands } from './commands/sync';
import { registerManifestCommands } from './commands/manifest';
import { registerProcessCommands } from './commands/processes';
import { registerRollbackCommands } from './commands/rollback';
import { registerSnapshotCommands } from './commands/snapshot';
import { registerStatsCommands } from './commands/stats';

/** This package's version, from its package.json (two folders up from sources, three from lib/). */
function packageVersion(): string {
  for (const up of ['../..', '../../..']) {
    try {
      return (JSON.parse(readFileSync(path.join(__dirname, up, 'package.json'), 'utf8')) as { version: string })
        .version;
    } catch {
      // not this level
    }
  }
  return 'unknown';
}

const program = new Command('rewind')
  .description('Durable, approved, compensating rollbacks of production and regression environments, on Temporal.')
  .option('--manifest <file>', 'manifest file (default: $REWIND_MANIFEST or ./rewind.yaml)')
  .option('--json', 'print machine-readable JSON')
  .option('--address <host:port>', 'Temporal frontend address (default: $TEMPORAL_ADDRESS or localhost:7233)')
  .option('--namespace <name>', "Temporal namespace (default: $TEMPORAL_NAMESPACE or the manifest's)")
  .option(
    '--api <url>',
    'the rollback commands, drift scan and drift report go through the HTTP API instead of Temporal (token in $REWIND_API_TOKEN; default: $REWIND_API_URL)',
  )
  .showHelpAfterError('(run with --help for usage)')
  .configureHelp({ showGlobalOptions: true })
  .addHelpText(
    'after',
    '\nEnvironment: TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_NAMESPACE, REWIND_MANIFEST (default ./rewind.yaml),\n' +
      'REWIND_USER (default for --as), REWIND_LOG_LEVEL (workers and agents; default info),\n' +
      'REWIND_API_URL and REWIND_API_TOKEN (rollback commands, drift scan and drift report through the HTTP API).\n' +
      '`rewind --version` prints the version.',
  );

// The flags win over the variables, as with the temporal CLI; worker and agent processes that
// `rewind start` spawns get the address it chose through the same variables.
program.hook('preAction', (_root, command) => {
  const { address, namespace } = command.optsWithGlobals<{ address?: string; namespace?: string }>();
  if (address !== undefined) process.env.TEMPORAL_ADDRESS = address;
  if (namespace !== undefined) process.env.TEMPORAL_NAMESPACE = namespace;
});

// `--api` reaches only the commands the HTTP API serves. Named on another, which would go to
// Temporal regardless, it is refused rather than ignored; REWIND_API_URL, set once for a
// shell, is not (those commands just do not use it).
const THROUGH_API = /^(rollback \S+|drift scan|drift report)$/;
program.hook('preAction', (root, command) => {
  if (root.getOptionValueSource('api') !== 'cli') return;
  const names: string[] = [];
  for (let c: Command | null = command; c && c !== root; c = c.parent) names.unshift(c.name());
  const name = names.join(' ');
  if (THROUGH_API.test(name)) return;
  process.stderr.write(
    `error: rewind ${name} does not go through the HTTP API (--api serves the rollback commands, drift scan and drift report); run it without --api, where Temporal is reachable\n`,
  );
  process.exit(1);
});

// Registration order is the order `rewind --help` lists the commands in.
registerProcessCommands(program);
registerManifestCommands(program);
registerSnapshotCommands(program);
registerDbCommands(program);
registerRollbackCommands(program);
registerDriftCommands(program);
registerScheduleCommands(program);
registerSyncCommands(program);
registerApiCommands(program);
registerAuditCommands(program);
registerStatsCommands(program);
registerDrillCommands(program);

// A process `rewind start` launched (worker, agents, API) holds an IPC channel to it: when the
// supervisor dies without stopping it (killed with SIGKILL, its terminal gone), the channel
// closes and the process stops as on SIGTERM, instead of living on with its ports and queues.
if (process.channel) {
  process.channel.unref();
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}

// `rewind --version` only as the first argument: `snapshot create --version V` is a release label.
if (process.argv[2] === '--version') process.stdout.write(`${packageVersion()}\n`);
else void program.parseAsync(process.argv);
