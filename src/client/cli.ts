#!/usr/bin/env node
// The `rewind` command. Every command takes --json; bad input gets one clear error line on
// stderr and a non-zero exit, and changes nothing.
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Faults } from '../activities/faults';
import { CROSS_SECTION_ID_PATTERN } from '../domain/cross-section';
import { FINAL_STATES, lockWorkflowId, STRATEGIES, TRIGGERS, type RollbackStatus } from '../domain/rollback';
import { ManifestError, loadManifest, manifestPathFrom, type LoadedManifest } from '../manifest/load';
import { envTaskQueue, manifestJsonSchema, type PostgresComponent } from '../manifest/schema';
import { Runtime } from '@temporalio/worker';
import { createLogger, sdkLogger } from '../platform/logger';
import { lockHolder } from '../platform/rollback-runs';
import { connectClient, temporalSettings } from '../platform/temporal';
import { openSnapshotStore } from '../snapshots/open';
import { componentUrl, describeTarget as describeDatabase, withPostgres } from '../components/postgres/connect';
import { readMigrations } from '../components/postgres/flyway';
import { Migrator } from '../components/postgres/migrator';
import { ManagedCluster } from '../components/postgres/pitr';
import { pgBin } from '../components/postgres/tools';
import { createAgentWorker } from '../workers/agent-worker';
import { createControlWorker } from '../workers/control-worker';
import { checkAgainstManifest, failureMessage, RequestError, RewindClient, type RollbackView } from './client';
import type { SnapshotStore } from '../snapshots/store';
import { describeContents, progressBar, renderCrossSection, renderCrossSections, renderLive, renderStatus } from './render';
import { runStack } from './stack';

interface GlobalOptions {
  manifest?: string;
  json?: boolean;
}

class UsageError extends Error {}

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

function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

function manifestOf(cmd: Command, checkPaths: 'all' | string[] | false = false): LoadedManifest {
  return loadManifest(manifestPathFrom(globals(cmd).manifest), { checkPaths });
}

async function rewindClient(cmd: Command): Promise<RewindClient> {
  const { manifest } = manifestOf(cmd);
  // The repository lets the client refuse a missing target before starting a run; an operator
  // without its password still gets the same answer from the workflow.
  let store: SnapshotStore | undefined;
  try {
    store = openSnapshotStore(manifest);
  } catch {
    store = undefined;
  }
  return new RewindClient(await connectClient(temporalSettings(manifest.temporal.namespace)), manifest, store);
}

function print(cmd: Command, json: unknown, human: () => string): void {
  process.stdout.write(globals(cmd).json ? `${JSON.stringify(json, null, 2)}\n` : `${human()}\n`);
}

function currentUser(as: string | undefined): string {
  return as ?? process.env.REWIND_USER ?? os.userInfo().username;
}

function nonEmpty(flag: string) {
  return (value: string): string => {
    if (!value.trim()) throw new InvalidArgumentError(`${flag} must not be empty`);
    return value;
  };
}

function list(value: string): string[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new InvalidArgumentError('expected a comma-separated list, e.g. config,models');
  return items;
}

/** Runs a command's action; any error becomes one clear message and exit code 1. */
function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void) {
  return async (...args: A): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    try {
      await fn(...args);
    } catch (err) {
      reportError(cmd, err);
      process.exitCode = 1;
    }
  };
}

function reportError(cmd: Command, err: unknown): void {
  let message: string;
  if (err instanceof ManifestError) {
    message =
      err.issues.length === 1
        ? `${err.file}: ${err.issues[0]!.path ? `${err.issues[0]!.path}: ` : ''}${err.issues[0]!.message}`
        : err.message;
  } else if (err instanceof Error) {
    message = failureMessage(err);
  } else {
    message = String(err);
  }
  if (globals(cmd).json) process.stderr.write(`${JSON.stringify({ error: message })}\n`);
  else process.stderr.write(`error: ${message}\n`);
  if (process.env.REWIND_DEBUG && err instanceof Error && !(err instanceof RequestError) && !(err instanceof ManifestError)) {
    process.stderr.write(`${err.stack ?? ''}\n`);
  }
}

// ---- processes ----

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

// ---- manifest ----

const manifestCmd = program.command('manifest').description('check the manifest, or print its JSON Schema');

manifestCmd
  .command('validate')
  .description('validate the manifest; with --check-paths also check every component path exists')
  .option('--check-paths', 'check that every component path exists')
  .action(
    action((opts: { checkPaths?: boolean }, cmd: Command) => {
      const loaded = manifestOf(cmd, opts.checkPaths ? 'all' : false);
      const envs = Object.entries(loaded.manifest.environments).map(([name, e]) => ({ name, components: Object.keys(e.components) }));
      print(cmd, { valid: true, file: loaded.file, environments: envs }, () =>
        [`${loaded.file}: valid`, ...envs.map((e) => `  ${e.name}: ${e.components.join(', ')}`)].join('\n'),
      );
    }),
  );

manifestCmd
  .command('schema')
  .description('print the JSON Schema of rewind.yaml (for editor completion)')
  .action(
    action(() => {
      process.stdout.write(`${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
    }),
  );

// ---- snapshots ----

const snapshot = program.command('snapshot').description('take and list cross-sections (snapshots of an environment)');

snapshot
  .command('create')
  .description('take a cross-section of an environment')
  .requiredOption('--env <name>', 'environment')
  .option('--version <label>', 'release version label, e.g. v1.4.2', nonEmpty('--version'))
  .option('--reason <text>', 'why, for the record')
  .option('--components <list>', 'only these components (comma-separated)', list)
  .option('--wait', 'wait until the cross-section is taken')
  .option('--as <user>', 'who asks (default: $REWIND_USER or your login)', nonEmpty('--as'))
  .action(
    action(async (opts: { env: string; version?: string; reason?: string; components?: string[]; wait?: boolean; as?: string }, cmd: Command) => {
      const client = await rewindClient(cmd);
      const handle = await client.startSnapshot({
        environment: opts.env,
        requester: currentUser(opts.as),
        ...(opts.version ? { version: opts.version } : {}),
        ...(opts.reason ? { reason: opts.reason } : {}),
        ...(opts.components ? { components: opts.components } : {}),
      });
      await warnWithoutAgent(client, opts.env);
      if (!opts.wait) {
        print(cmd, { workflowId: handle.workflowId }, () => `started ${handle.workflowId}; add --wait to wait for the cross-section id`);
        return;
      }
      const result = await client.snapshotResult(handle.workflowId);
      print(cmd, { workflowId: handle.workflowId, ...result }, () =>
        [
          `cross-section ${result.crossSectionId} of ${result.environment}${result.version ? ` (version ${result.version})` : ''}`,
          ...Object.values(result.components).map(
            (c) => `  ${c.component}: snapshot ${c.snapshotId.slice(0, 8)}, ${describeContents(c.fingerprint)}`,
          ),
        ].join('\n'),
      );
    }),
  );

snapshot
  .command('list')
  .description("list an environment's cross-sections, newest first")
  .requiredOption('--env <name>', 'environment')
  .option('--all', 'include safety cross-sections taken before rollbacks')
  .action(
    action(async (opts: { env: string; all?: boolean }, cmd: Command) => {
      const { manifest } = manifestOf(cmd);
      checkAgainstManifest(manifest, opts.env);
      const sections = (await openSnapshotStore(manifest).crossSections(opts.env)).filter(
        (s) => opts.all || (s.origin !== 'safety' && s.origin !== 'dry-run'),
      );
      print(cmd, sections, () => renderCrossSections(sections));
    }),
  );

snapshot
  .command('show <id>')
  .description('show one cross-section: its components, snapshots and fingerprints')
  .requiredOption('--env <name>', 'environment')
  .action(
    action(async (id: string, opts: { env: string }, cmd: Command) => {
      const { manifest } = manifestOf(cmd);
      checkAgainstManifest(manifest, opts.env);
      const section = (await openSnapshotStore(manifest).crossSections(opts.env)).find((s) => s.id === id);
      if (!section) throw new RequestError(`no cross-section ${id} in ${opts.env} (rewind snapshot list --env ${opts.env})`);
      print(cmd, section, () => renderCrossSection(section));
    }),
  );

// ---- databases ----

const db = program.command('db').description("a postgres component's Flyway migrations: info, migrate, undo, validate");

interface DbOptions {
  env: string;
  component: string;
  target?: string;
  force?: boolean;
}

/** Opens the component's database with its migrations, for the `db` commands. */
function urlOfComponent(component: PostgresComponent, what: string): string {
  try {
    return componentUrl(component, process.env, what);
  } catch (err) {
    throw new RequestError((err as Error).message);
  }
}

async function withMigrator<T>(cmd: Command, opts: DbOptions, fn: (migrator: Migrator, where: string) => Promise<T>): Promise<T> {
  const { manifest } = manifestOf(cmd);
  checkAgainstManifest(manifest, opts.env, [opts.component]);
  const component = manifest.environments[opts.env]!.components[opts.component]!;
  if (component.kind !== 'postgres') throw new RequestError(`${opts.env}/${opts.component} is a ${component.kind} component, not postgres`);
  if (!component.migrations) {
    throw new RequestError(`${opts.env}/${opts.component} has no migrations folder (environments.${opts.env}.components.${opts.component}.migrations)`);
  }
  const url = urlOfComponent(component, `${opts.env}/${opts.component}`);
  const migrations = await readMigrations(component.migrations);
  return withPostgres(url, (client) =>
    fn(new Migrator(client, { schema: component.schema, table: component.historyTable, migrations }), describeDatabase(url)),
  );
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
    process.stderr.write(`warning: could not check for a rollback of ${opts.env} in progress: ${err instanceof Error ? err.message : String(err)}\n`);
    return;
  }
  if (holder) {
    throw new RequestError(
      `rollback ${holder} is in progress on ${opts.env}; changing its database now would make its plan wrong. Wait for it or cancel it, or pass --force`,
    );
  }
}

function dbCommand(
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

dbCommand('info', 'every migration with its version, script, checksum and state', (c) => c, async (m, _opts, cmd, where) => {
  const info = await m.info();
  print(cmd, info, () =>
    [
      `${where}: ${info.current ? `at version ${info.current}` : 'no migration applied'}`,
      'VERSION   STATE     CHECKSUM     SCRIPT',
      ...info.migrations.map((x) => `${x.version.padEnd(9)} ${x.state.padEnd(9)} ${String(x.checksum ?? '').padEnd(12)} ${x.script}${x.undoScript ? `  (undo: ${x.undoScript})` : ''}${x.appliedChecksum !== undefined ? `  CHANGED since it ran (applied checksum ${String(x.appliedChecksum)}; see rewind db validate)` : ''}`),
    ].join('\n'),
  );
});

dbCommand('migrate', 'apply pending migrations up to --target (default: the latest)', (c) => c.option('--target <version>', 'stop at this version'), async (m, opts, cmd, where) => {
  const result = await m.migrate(opts.target);
  print(cmd, result, () => (result.applied.length ? `${where}: applied ${result.applied.join(', ')}; now at ${result.current ?? '-'}` : `${where}: up to date at ${result.current ?? '-'}`));
}, { changesDatabase: true });

dbCommand('undo', 'undo applied migrations newer than --target with their U scripts', (c) => c.requiredOption('--target <version>', 'version to return to'), async (m, opts, cmd, where) => {
  const result = await m.undo(opts.target!);
  print(cmd, result, () => (result.undone.length ? `${where}: undid ${result.undone.join(', ')}; now at ${result.current ?? '-'}` : `${where}: already at ${opts.target!}`));
}, { changesDatabase: true });

dbCommand('validate', 'check applied migrations against the scripts (checksums, missing, failed)', (c) => c, async (m, _opts, cmd, where) => {
  const issues = await m.validate();
  print(cmd, { valid: issues.length === 0, issues }, () => (issues.length ? [`${where}: invalid`, ...issues.map((i) => `  ${i}`)].join('\n') : `${where}: valid`));
  if (issues.length) process.exitCode = 1;
});

db.command('pitr-enable')
  .description("turn on WAL archiving into the component's archive folder (restarts the cluster if archive_mode was off)")
  .requiredOption('--env <name>', 'environment')
  .requiredOption('--component <name>', 'postgres component with a pitr section')
  .action(
    action(async (opts: DbOptions, cmd: Command) => {
      const { manifest } = manifestOf(cmd);
      checkAgainstManifest(manifest, opts.env, [opts.component]);
      const component = manifest.environments[opts.env]!.components[opts.component]!;
      if (component.kind !== 'postgres' || !component.pitr) {
        throw new RequestError(`${opts.env}/${opts.component} has no pitr section (environments.${opts.env}.components.${opts.component}.pitr)`);
      }
      const url = urlOfComponent(component, `${opts.env}/${opts.component}`);
      const major = await withPostgres(url, async (c) => Math.floor(Number((await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v) / 10_000));
      const result = await new ManagedCluster(component.pitr, url, pgBin(major)).enableArchiving();
      print(cmd, { archiveDir: component.pitr.archiveDir, ...result }, () =>
        `WAL archiving into ${component.pitr!.archiveDir} is on${result.restarted ? ' (the cluster was restarted for archive_mode)' : ''}; the next snapshot takes a base backup`,
      );
    }),
  );

// ---- rollbacks ----

const rollback = program.command('rollback').description('roll an environment back, approve, watch');

rollback
  .command('start')
  .description('start a rollback to a version or a cross-section; waits for the plan unless --no-wait')
  .requiredOption('--env <name>', 'environment')
  .option('--to-version <label>', 'newest cross-section labelled with this version', nonEmpty('--to-version'))
  .option('--to-snapshot <id>', 'a cross-section id (rewind snapshot list)')
  .option('--to-time <iso>', 'a moment, e.g. 2026-11-28T13:05:00Z: point-in-time recovery for databases that have it, the newest cross-section before it otherwise')
  .option('--components <list>', 'only these components (partial rollback)', list)
  .option('--reason <text>', 'why, for the record')
  .option('--as <user>', 'requester (default: $REWIND_USER or your login)', nonEmpty('--as'))
  .addOption(new Option('--trigger <trigger>', 'what started it').choices(TRIGGERS as unknown as string[]).default('manual'))
  .addOption(new Option('--strategy <strategy>', 'for postgres components: undo migrations, restore the dump, or point-in-time recovery').choices(STRATEGIES as unknown as string[]))
  .option('--accept-data-loss', 'accept up front a plan that loses data (otherwise an approver must)')
  .option('--dry-run', 'decide and prepare only: print the plan, change nothing')
  .option('--no-wait', 'return as soon as the run has started')
  .action(
    action(
      async (
        opts: {
          env: string;
          toVersion?: string;
          toSnapshot?: string;
          toTime?: string;
          components?: string[];
          reason?: string;
          as?: string;
          trigger: string;
          dryRun?: boolean;
          wait: boolean;
          strategy?: string;
          acceptDataLoss?: boolean;
        },
        cmd: Command,
      ) => {
        if ([opts.toVersion, opts.toSnapshot, opts.toTime].filter((t) => t !== undefined).length !== 1) {
          throw new UsageError('give exactly one of --to-version V, --to-snapshot ID or --to-time ISO');
        }
        if (opts.toTime !== undefined) {
          const at = Date.parse(opts.toTime);
          if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(opts.toTime) || Number.isNaN(at)) {
            throw new UsageError(`--to-time: "${opts.toTime}" is not an ISO time with a zone, like 2026-11-28T13:05:00Z`);
          }
          if (at > Date.now()) throw new UsageError(`--to-time: ${opts.toTime} is in the future`);
        }
        if (opts.toSnapshot !== undefined && !CROSS_SECTION_ID_PATTERN.test(opts.toSnapshot)) {
          throw new UsageError(`--to-snapshot: "${opts.toSnapshot}" is not a cross-section id (like xs-20261128-130641-a1b2)`);
        }
        const client = await rewindClient(cmd);
        const { workflowId } = await client.startRollback({
          environment: opts.env,
          target:
            opts.toVersion !== undefined
              ? { kind: 'version', version: opts.toVersion }
              : opts.toTime !== undefined
                ? { kind: 'time', time: new Date(opts.toTime).toISOString() }
                : { kind: 'cross-section', id: opts.toSnapshot },
          requester: currentUser(opts.as),
          trigger: opts.trigger,
          dryRun: opts.dryRun ?? false,
          acceptDataLoss: opts.acceptDataLoss ?? false,
          ...(opts.strategy ? { strategy: opts.strategy } : {}),
          ...(opts.components ? { components: opts.components } : {}),
          ...(opts.reason ? { reason: opts.reason } : {}),
        });
        // After the request's checks: a refused request prints only why.
        await warnWithoutAgent(client, opts.env);
        if (!opts.wait && !opts.dryRun) {
          print(cmd, { workflowId, phase: 'decide', state: 'running' }, () => `started ${workflowId}\nFollow it: rewind rollback status ${workflowId} --watch`);
          return;
        }
        const tty = !globals(cmd).json && process.stderr.isTTY;
        if (tty) process.stderr.write(`started ${workflowId}; taking the safety snapshot and computing the plan …\n`);
        const view = await client.waitForRollback(workflowId, (s) => s.state === 'awaiting-approval', { timeoutMs: 3_600_000 });
        const s = view.status;
        if (s.state === 'failed') throw new RequestError(`${s.cause ?? 'the rollback failed'} (${workflowId})`);
        print(cmd, { workflowId, phase: s.phase, state: s.state, cause: s.cause, plan: s.plan, reportFile: s.reportFile }, () =>
          renderStatus(view),
        );
      },
    ),
  );

function decisionCommand(name: 'approve' | 'reject') {
  rollback
    .command(`${name} <workflowId>`)
    .description(name === 'approve' ? 'approve a rollback that awaits approval' : 'reject a rollback before it executes')
    .option('--as <user>', 'who decides (default: $REWIND_USER or your login)', nonEmpty('--as'))
    .option('--comment <text>', 'a note for the record')
    .option('--request-id <id>', 'idempotency key: a repeated request with the same id counts once')
    .option('--accept-data-loss', name === 'approve' ? 'accept that the plan loses data (needed when it does)' : 'ignored for reject')
    .action(
      action(async (workflowId: string, opts: { as?: string; comment?: string; requestId?: string; acceptDataLoss?: boolean }, cmd: Command) => {
        const client = await rewindClient(cmd);
        const user = currentUser(opts.as);
        const outcome = await client.decide(workflowId, name, {
          user,
          ...(opts.acceptDataLoss && name === 'approve' ? { acceptDataLoss: true } : {}),
          ...(opts.comment ? { comment: opts.comment } : {}),
          ...(opts.requestId ? { requestId: opts.requestId } : {}),
        });
        print(cmd, { workflowId, accepted: outcome.accepted, reason: outcome.reason, state: outcome.status.state, phase: outcome.status.phase }, () =>
          outcome.accepted
            ? `${name === 'approve' ? 'approved' : 'rejected'} by ${user}; state: ${outcome.status.state}`
            : `refused: ${outcome.reason ?? 'unknown reason'}`,
        );
        if (!outcome.accepted) process.exitCode = 1;
      }),
    );
}
decisionCommand('approve');
decisionCommand('reject');

rollback
  .command('cancel <workflowId>')
  .description('cancel a rollback: before execute it stops cleanly; during execute it compensates')
  .action(
    action(async (workflowId: string, _opts: unknown, cmd: Command) => {
      const client = await rewindClient(cmd);
      await client.cancel(workflowId);
      print(cmd, { workflowId, cancelRequested: true }, () => `cancellation requested for ${workflowId}; follow it with: rewind rollback status ${workflowId} --watch`);
    }),
  );

rollback
  .command('status <workflowId>')
  .description('phase, state, plan and per-step progress of a rollback')
  .option('--watch', 'follow it live until it ends or awaits approval')
  .action(
    action(async (workflowId: string, opts: { watch?: boolean }, cmd: Command) => {
      const client = await rewindClient(cmd);
      if (!opts.watch) {
        const view = await client.rollbackView(workflowId);
        print(cmd, statusJson(view), () => renderStatus(view));
        return;
      }
      const view = await watch(client, workflowId, globals(cmd).json ?? false);
      print(cmd, statusJson(view), () => renderStatus(view));
    }),
  );

rollback
  .command('report <workflowId>')
  .description('print the Markdown report of a finished rollback')
  .action(
    action(async (workflowId: string, _opts: unknown, cmd: Command) => {
      const { status } = await (await rewindClient(cmd)).rollbackView(workflowId);
      if (!status.report) throw new RequestError(`${workflowId} has no report yet (state ${status.state}); it is written when the run ends`);
      print(cmd, { workflowId, reportFile: status.reportFile, report: status.report }, () => status.report!);
    }),
  );

rollback
  .command('list')
  .description('recent rollbacks, newest first')
  .option('--env <name>', 'only this environment')
  .option('--limit <n>', 'how many', '20')
  .action(
    action(async (opts: { env?: string; limit: string }, cmd: Command) => {
      const runs = await (await rewindClient(cmd)).listRollbacks(opts.env, port(opts.limit, '--limit'));
      print(cmd, runs, () =>
        runs.length === 0
          ? 'no rollbacks yet'
          : runs
              .map(
                (r) =>
                  `${r.workflowId.padEnd(48)} ${String(r.state ?? r.execution).padEnd(18)} ${String(r.phase ?? '').padEnd(10)} ${r.target ?? ''}${r.dryRun ? '  (dry run)' : ''}`,
              )
              .join('\n'),
      );
    }),
  );

/** A run without an agent waits, durably, until one starts; say so rather than seem to hang. */
async function warnWithoutAgent(client: RewindClient, environment: string): Promise<void> {
  if (!client.manifest.environments[environment]) return; // the request check names the problem
  if (await client.agentIsPolling(environment).catch(() => true)) return;
  process.stderr.write(
    `warning: no agent serves ${environment} right now; the run will wait until \`rewind agent --env ${environment}\` starts\n`,
  );
}

function statusJson(view: RollbackView) {
  return { ...view.status, execution: view.execution, live: view.live };
}

/** Live per-phase progress bars, redrawn in place on a terminal, until the run ends or waits. */
async function watch(client: RewindClient, workflowId: string, json: boolean): Promise<RollbackView> {
  const tty = process.stderr.isTTY && !json;
  let drawn = 0;
  const draw = (view: RollbackView) => {
    if (!tty) return;
    const s: RollbackStatus = view.status;
    const lines = [`${workflowId}  state ${s.state}  phase ${s.phase}`];
    for (const phase of ['decide', 'prepare', 'approval', 'execute', 'verify', 'complete'] as const) {
      const t = s.phases[phase];
      const done = t?.durationMs !== undefined ? 1 : t ? 0.5 : 0;
      lines.push(`  ${phase.padEnd(9)} ${progressBar(done, 10)} ${t?.durationMs !== undefined ? `${(t.durationMs / 1000).toFixed(1)}s` : t ? '…' : ''}`);
    }
    for (const live of view.live) {
      lines.push(`  ${live.component.padEnd(12)} ${progressBar(live.progress?.percent ?? 0)} ${renderLive(live)}`);
    }
    if (drawn) process.stderr.write(`\x1b[${drawn}A\x1b[0J`);
    process.stderr.write(`${lines.join('\n')}\n`);
    drawn = lines.length;
  };
  let lastState = '';
  for (let polls = 0; ; polls++) {
    const view = await client.rollbackView(workflowId);
    draw(view);
    if (!tty && !json && view.status.state + view.status.phase !== lastState) {
      process.stderr.write(`${new Date().toISOString()} phase ${view.status.phase}, state ${view.status.state}\n`);
      lastState = view.status.state + view.status.phase;
    }
    if (FINAL_STATES.includes(view.status.state) || view.status.state === 'awaiting-approval') return view;
    await sleep(polls < 20 ? 250 : 1_000);
  }
}

function port(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`${flag}: "${value}" is not a number from 1 to 65535`);
  return n;
}

void program.parseAsync(process.argv);

