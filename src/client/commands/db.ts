// `rewind db info|migrate|undo|validate|pitr-enable`: a postgres component's Flyway migrations,
// and turning on its WAL archiving.
import type { Command } from 'commander';
import { lockWorkflowId } from '../../domain/rollback';
import { envTaskQueue } from '../../manifest/schema';
import { lockHolder } from '../../platform/rollback-runs';
import { connectClient, temporalSettings } from '../../platform/temporal';
import type { Migrator } from '../../components/postgres/facade';

// The postgres kind's facade loads the pg driver: only `db` commands need it.
const facade = () => import('../../components/postgres/facade');
import { checkAgainstManifest, RequestError } from '../client';
import { action, manifestOf, print } from './command-context';

interface DbOptions {
  env: string;
  component: string;
  target?: string;
  force?: boolean;
}

/** Opens the component's database with its migrations, for the `db` commands. */
async function withMigrator<T>(
  cmd: Command,
  opts: DbOptions,
  fn: (migrator: Migrator, where: string) => Promise<T>,
): Promise<T> {
  const { manifest } = manifestOf(cmd);
  checkAgainstManifest(manifest, opts.env, [opts.component]);
  const { postgresComponent, withMigrator: withComponentMigrator } = await facade();
  const component = postgresComponent(manifest, opts.env, opts.component);
  return withComponentMigrator(component, { environment: opts.env, name: opts.component }, fn);
}

/**
 * A migration that changes the database under a rollback in progress would make its plan (and
 * its safety snapshot) wrong: refuse while a rollback holds the environment, unless --force.
 * When Temporal cannot be reached, say so and go on: migrations must work without it.
 */
async function refuseDuringRollback(cmd: Command, opts: DbOptions): Promise<void> {
  if (opts.force) return;
  const { manifest } = manifestOf(cmd);
  const settings = temporalSettings(manifest.temporal.namespace);
  let holder: string | undefined;
  try {
    const client = await connectClient(settings);
    try {
      holder = await lockHolder(client, lockWorkflowId(envTaskQueue(manifest, opts.env)));
    } finally {
      await client.connection.close();
    }
  } catch (err) {
    process.stderr.write(
      `warning: could not check for a rollback of ${opts.env} in progress: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    return;
  }
  if (holder) {
    throw new RequestError(
      `rollback ${holder} is in progress on ${opts.env}; changing its database now would make its plan wrong. Wait for it or cancel it, or pass --force`,
    );
  }
}

function dbCommand(
  db: Command,
  name: string,
  description: string,
  configure: (c: Command) => Command,
  run: (m: Migrator, opts: DbOptions, cmd: Command, where: string) => Promise<void>,
  { changesDatabase = false } = {},
) {
  const command = db
    .command(name)
    .description(description)
    .requiredOption('--env <name>', 'environment')
    .requiredOption('--component <name>', 'postgres component');
  if (changesDatabase) command.option('--force', 'run even while a rollback of the environment is in progress');
  configure(command).action(
    action(async (opts: DbOptions, cmd: Command) => {
      if (changesDatabase) {
        checkAgainstManifest(manifestOf(cmd).manifest, opts.env, [opts.component]);
        await refuseDuringRollback(cmd, opts);
      }
      return withMigrator(cmd, opts, (m, where) => run(m, opts, cmd, where));
    }),
  );
}

export function registerDbCommands(program: Command): void {
  const db = program
    .command('db')
    .description("a postgres component's Flyway migrations: info, migrate, undo, validate");

  dbCommand(
    db,
    'info',
    'every migration with its version, script, checksum and state',
    (c) => c,
    async (m, _opts, cmd, where) => {
      const info = await m.info();
      print(cmd, info, () =>
        [
          `${where}: ${info.current ? `at version ${info.current}` : 'no migration applied'}`,
          // Flyway's info columns: category, version, state; repeatables have no version.
          'CATEGORY    VERSION   STATE     CHECKSUM     SCRIPT',
          ...info.migrations.map(
            (x) =>
              `${'Versioned'.padEnd(11)} ${x.version.padEnd(9)} ${x.state.padEnd(9)} ${String(x.checksum ?? '').padEnd(12)} ${x.script}${x.undoScript ? `  (undo: ${x.undoScript})` : ''}${x.appliedChecksum !== undefined ? `  CHANGED since it ran (applied checksum ${String(x.appliedChecksum)}; see rewind db validate)` : ''}`,
          ),
          ...info.repeatables.map(
            (x) =>
              `${'Repeatable'.padEnd(11)} ${''.padEnd(9)} ${x.state.padEnd(9)} ${String(x.checksum ?? '').padEnd(12)} ${x.script}${x.state === 'outdated' ? `  changed since it last ran (applied checksum ${String(x.appliedChecksum)}); the next migrate runs it again` : ''}`,
          ),
        ].join('\n'),
      );
    },
  );

  dbCommand(
    db,
    'migrate',
    'apply pending migrations up to --target (default: the latest)',
    (c) => c.option('--target <version>', 'stop at this version'),
    async (m, opts, cmd, where) => {
      const result = await m.migrate(opts.target);
      print(cmd, result, () =>
        result.applied.length
          ? `${where}: applied ${result.applied.join(', ')}; now at ${result.current ?? '-'}`
          : `${where}: up to date at ${result.current ?? '-'}`,
      );
    },
    { changesDatabase: true },
  );

  dbCommand(
    db,
    'undo',
    'undo applied migrations newer than --target with their U scripts',
    (c) => c.requiredOption('--target <version>', 'version to return to'),
    async (m, opts, cmd, where) => {
      const result = await m.undo(opts.target!);
      print(cmd, result, () =>
        result.undone.length
          ? `${where}: undid ${result.undone.join(', ')}; now at ${result.current ?? '-'}`
          : `${where}: already at ${opts.target!}`,
      );
    },
    { changesDatabase: true },
  );

  dbCommand(
    db,
    'validate',
    'check applied migrations against the scripts (checksums, missing, failed)',
    (c) => c,
    async (m, _opts, cmd, where) => {
      const issues = await m.validate();
      print(cmd, { valid: issues.length === 0, issues }, () =>
        issues.length ? [`${where}: invalid`, ...issues.map((i) => `  ${i}`)].join('\n') : `${where}: valid`,
      );
      if (issues.length) process.exitCode = 1;
    },
  );

  db.command('pitr-enable')
    .description(
      "turn on WAL archiving into the component's archive folder (restarts the cluster if archive_mode was off)",
    )
    .requiredOption('--env <name>', 'environment')
    .requiredOption('--component <name>', 'postgres component with a pitr section')
    .action(
      action(async (opts: DbOptions, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        checkAgainstManifest(manifest, opts.env, [opts.component]);
        const { postgresComponent, enablePointInTimeRecovery } = await facade();
        const component = postgresComponent(manifest, opts.env, opts.component);
        const result = await enablePointInTimeRecovery(component, { environment: opts.env, name: opts.component });
        print(
          cmd,
          result,
          () =>
            `WAL archiving into ${result.archiveDir} is on${result.restarted ? ' (the cluster was restarted for archive_mode)' : ''}; the next snapshot takes a base backup`,
        );
      }),
    );
}
