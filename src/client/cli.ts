#!/usr/bin/env node
// The `rewind` command. Every command takes --json; bad input gets one clear error line on
// stderr and a non-zero exit, and changes nothing. Each command group lives in ./commands.
import { Command } from 'commander';
import { registerDbCommands } from './commands/db';
import { registerManifestCommands } from './commands/manifest';
import { registerProcessCommands } from './commands/processes';
import { registerRollbackCommands } from './commands/rollback';
import { registerSnapshotCommands } from './commands/snapshot';

const program = new Command('rewind')
  .description('Durable, approved, compensating rollbacks of production and regression environments, on Temporal.')
  .option('--manifest <file>', 'manifest file (default: $REWIND_MANIFEST or ./rewind.yaml)')
  .option('--json', 'print machine-readable JSON')
  .showHelpAfterError('(run with --help for usage)')
  .configureHelp({ showGlobalOptions: true })
  .addHelpText(
    'after',
    '\nEnvironment: TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_NAMESPACE, REWIND_MANIFEST (default ./rewind.yaml),\n' +
      'REWIND_USER (default for --as), REWIND_LOG_LEVEL (workers and agents; default info).',
  );

// Registration order is the order `rewind --help` lists the commands in.
registerProcessCommands(program);
registerManifestCommands(program);
registerSnapshotCommands(program);
registerDbCommands(program);
registerRollbackCommands(program);

void program.parseAsync(process.argv);
