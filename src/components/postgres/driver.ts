// The `postgres` driver. A snapshot is a pg_dump (custom format, uncompressed) streamed into
// restic, with the database's fingerprint (schema signature, migration version, table
// statistics) as its listing. A rollback either restores the dump into a scratch database and
// swaps it in, or undoes migrations with their U scripts, keeping the data written since.
import { countToolBytes, timedTool } from '../../metrics/tool-metrics';
import { ApplicationFailure } from '@temporalio/common';
import type pg from 'pg';
import { encodeTags, type ComponentSnapshot } from '../../domain/cross-section';
import { ErrorType } from '../../domain/errors';
import type { Change, StrategyImpact } from '../core';
import { postgresKind, type PostgresComponent, type PostgresRestoreDetails, type PostgresStrategy } from './kind';
import { componentUrl, DatabaseError, withPostgres } from './connect';
import { createDatabaseDescriber, type PostgresDriftQuestion } from './drift';
import {
  createScratch,
  databaseName,
  dropDatabase,
  DUMP_FILE,
  pgDumpCommand,
  pgRestoreConsumer,
  restoredBy,
  swapIn,
} from './dump';
import {
  databaseFingerprint,
  diffSignatures,
  parseDatabaseFingerprint,
  summarizeDatabase,
  type DatabaseFingerprint,
} from './fingerprint';
import { readMigrations } from './flyway';
import { restoreImpact, undoImpact } from './impact';
import { Migrator } from './migrator';
import { ManagedCluster } from './pitr';
import { pgBin } from './tools';
import { ResticError } from '../../snapshots/restic';
import { LISTING_FILE } from '../../snapshots/store';
import {
  snapshotLabels,
  type ComponentDriver,
  type RestoreResult,
  type StageOutcome,
  type StepContext,
} from '../driver';
import { summarizeChanges } from '../change-list';

export interface PostgresDriverOptions {
  env: NodeJS.ProcessEnv;
}

const STABLE_SNAPSHOT_ATTEMPTS = 3;

export function createPostgresDriver(options: PostgresDriverOptions): ComponentDriver<PostgresComponent> {
  const urlOf = (component: PostgresComponent): string => {
    try {
      return componentUrl(component, options.env, 'the database, for this agent');
    } catch (err) {
      throw ApplicationFailure.nonRetryable((err as Error).message, ErrorType.ComponentUnavailable);
    }
  };

  const fingerprint = (component: PostgresComponent, client: pg.Client): Promise<DatabaseFingerprint> => {
    const key = component.sample ? options.env[component.sample.keyEnv] : undefined;
    return databaseFingerprint(client, {
      schema: component.schema,
      historyTable: component.historyTable,
      ...(component.sample && key
        ? { sample: { tables: component.sample.tables, rows: component.sample.rows, key } }
        : {}),
    });
  };

  const serverMajor = async (client: pg.Client): Promise<number> => {
    const { rows } = await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    return Math.floor(Number(rows[0]?.v ?? 0) / 10_000);
  };

  const clusterOf = async (component: PostgresComponent, url: string): Promise<ManagedCluster | undefined> => {
    if (!component.pitr) return undefined;
    return new ManagedCluster(component.pitr, url, pgBin(await withPostgres(url, serverMajor), options.env));
  };

  const describe = createDatabaseDescriber();
  return {
    describe: (component, question, ctx) =>
      withPostgres(urlOf(component), (client) => describe(client, component, question as PostgresDriftQuestion, ctx)),

    async snapshot(component, req, ctx): Promise<ComponentSnapshot> {
      const url = urlOf(component);
      for (let attempt = 1; attempt <= STABLE_SNAPSHOT_ATTEMPTS; attempt++) {
        const { before, major } = await withPostgres(url, async (client) => ({
          before: await fingerprint(component, client),
          major: await serverMajor(client),
        }));
        const bin = pgBin(major, options.env);
        const summary = summarizeDatabase(before);
        // The base backup comes before the snapshot is stored: a stored snapshot (what a retried
        // step finds and returns at once) then always has its base backup.
        const cluster = await clusterOf(component, url);
        if (cluster) {
          if (!(await cluster.archivingEnabled())) {
            throw ApplicationFailure.nonRetryable(
              `${req.component}: WAL archiving is off; run \`rewind db pitr-enable --env ${req.environment} --component ${req.component}\` first`,
              ErrorType.ComponentUnavailable,
            );
          }
          ctx.progress.update({ stage: 'pg_basebackup' });
          await cluster.baseBackup(req.crossSectionId);
        }
        const labels = snapshotLabels(req, summary);
        const document = JSON.stringify(before);
        const dump = pgDumpCommand(url, bin);
        ctx.progress.update({ stage: 'pg_dump' });
        const [dumped, listing] = await Promise.allSettled([
          timedTool('pg_dump', 'dump', async () => {
            const stored = await ctx.store.restic.backupFromCommand(
              { command: dump.command, filename: DUMP_FILE, host: req.environment, tags: encodeTags(labels) },
              {
                lockFile: ctx.lockFile,
                signal: ctx.progress.signal,
                commandEnv: dump.env,
                onProgress: (p) => ctx.progress.update({ stage: 'pg_dump', bytesDone: p.bytesDone }),
              },
            );
            countToolBytes('pg_dump', 'dump', stored.totalBytes);
            return stored;
          }),
          ctx.store.restic.backupStdin({
            data: document,
            filename: LISTING_FILE,
            host: req.environment,
            tags: encodeTags({ ...labels, role: 'listing' }),
          }),
        ]);
        if (dumped.status === 'rejected' || listing.status === 'rejected') {
          // Half a snapshot must not stay behind for a retry or a listing to find.
          const stored = [dumped, listing].flatMap((r) => (r.status === 'fulfilled' ? [r.value.snapshotId] : []));
          if (stored.length > 0) await ctx.store.restic.forget(stored).catch(() => undefined);
          throw dumpFailure(
            dumped.status === 'rejected' ? dumped.reason : (listing as PromiseRejectedResult).reason,
            req.component,
          );
        }
        const [data, listed] = [dumped.value, listing.value];
        const after = summarizeDatabase(await withPostgres(url, (client) => fingerprint(component, client)));
        if (after.digest === summary.digest) {
          await ctx.listings.save(listed.snapshotId, document);
          return {
            component: req.component,
            snapshotId: data.snapshotId,
            listingSnapshotId: listed.snapshotId,
            fingerprint: summary,
          };
        }
        ctx.logger.warn({ component: req.component, attempt }, 'the schema changed during pg_dump; dumping again');
        await ctx.store.restic.forget([data.snapshotId, listed.snapshotId]);
      }
      throw ApplicationFailure.retryable(
        `${req.component}: the schema kept changing during ${STABLE_SNAPSHOT_ATTEMPTS} dumps`,
        ErrorType.FilesChanging,
      );
    },

    /** A `restore` reads the whole dump back through restic (every blob's hash checked), to nowhere. */
    async stage(component, req, ctx): Promise<StageOutcome> {
      const strategy = (req.strategy ?? component.strategy) as PostgresStrategy;
      if (strategy === 'undo') return { readable: true, note: 'nothing to read: undo runs the U scripts', bytes: 0 };
      if (strategy === 'pitr')
        return { readable: true, note: 'not read before approval: recovery reads the base backup and WAL', bytes: 0 };
      ctx.progress.update({ stage: 'read back' });
      try {
        await ctx.store.restic.dumpInto(
          { snapshotId: req.target.snapshotId, file: `/${DUMP_FILE}`, consumer: { command: 'cat', args: [] } },
          { signal: ctx.progress.signal },
        );
      } catch (err) {
        if (err instanceof ResticError && (err.kind === 'damaged' || err.kind === 'refused'))
          return { readable: false, note: `the target snapshot cannot be read: ${err.message}`, bytes: 0 };
        throw err;
      }
      return { readable: true, note: 'the whole dump read back, every block checked', bytes: 0 };
    },

    async restore(component, req, ctx): Promise<RestoreResult> {
      const url = urlOf(component);
      // The safety snapshot of a database is a dump: compensation restores it (when needed, below).
      const strategy = req.purpose === 'compensation' ? 'restore' : ((req.strategy ?? 'restore') as PostgresStrategy);
      if (strategy === 'undo') {
        const target = parseDatabaseFingerprint(await ctx.listings.load(req.listingSnapshotId));
        return undoMigrations(component, url, target.migration, req.fingerprint.digest, ctx);
      }
      if (strategy === 'pitr')
        return recoverToTime(component, url, req.targetTime, req.idempotencyKey ?? req.snapshotId, ctx);

      // The database names the step whose restore put it in place: a retried step stops here.
      const key = req.idempotencyKey ?? req.snapshotId;
      if ((await restoredBy(url)) === key) return already(strategy);
      // Compensation puts back only what the rollback's step changed: a step that failed before
      // changing anything (a U script that rolled back, a restore that never swapped) leaves
      // the database as it is, with every write made since the safety snapshot.
      if (req.purpose === 'compensation' && req.compensates) {
        const untouched = await untouchedBy(component, url, req.compensates, req.fingerprint.digest);
        if (untouched) return { ...already(strategy), note: untouched };
      }

      const bin = pgBin(await withPostgres(url, serverMajor), options.env);
      const scratch = `${databaseName(url).slice(0, 40)}__rewind_${req.snapshotId.slice(0, 8)}`;
      await createScratch(url, scratch, key);
      try {
        // Reading the repository and loading the scratch database overlap.
        ctx.progress.update({ stage: 'pg_restore' });
        await timedTool('pg_restore', 'restore', () =>
          ctx.store.restic.dumpInto(
            { snapshotId: req.snapshotId, file: `/${DUMP_FILE}`, consumer: pgRestoreConsumer(url, scratch, bin) },
            { signal: ctx.progress.signal },
          ),
        );
      } catch (err) {
        await dropDatabase(url, scratch).catch(() => undefined);
        throw err;
      }
      ctx.progress.update({ stage: 'swap' });
      const swap = await swapIn(url, scratch);
      ctx.logger.info(
        { component: req.component, swapWindowMs: swap.windowMs, droppedOld: swap.droppedOld },
        'database swapped in',
      );
      return changed({ kind: 'postgres', strategy, swapWindowMs: swap.windowMs });
    },

    async assess(component, req, ctx) {
      const url = urlOf(component);
      if (!req.safety) throw new Error('a postgres plan needs the safety snapshot (plansFromLiveState is false)');
      const safety = req.safety;
      const current = parseDatabaseFingerprint(await ctx.listings.load(safety.listingSnapshotId));
      const target = parseDatabaseFingerprint(await ctx.listings.load(req.target.listingSnapshotId));
      const { added, removed } = diffSignatures(current.schema, target.schema);
      const changes: Change[] = [
        ...(current.migration !== target.migration
          ? [
              {
                op: 'change' as const,
                subject: 'migration version',
                detail: `${current.migration ?? 'none'} → ${target.migration ?? 'none'}`,
                bytes: 0,
              },
            ]
          : []),
        ...added.map((line) => ({ op: 'add' as const, subject: line, bytes: 0 })),
        ...removed.map((line) => ({ op: 'remove' as const, subject: line, bytes: 0 })),
      ];
      const scripts = component.migrations ? await readMigrations(component.migrations) : undefined;
      const impact = await withPostgres(url, async (client) => {
        const migrator = scripts
          ? new Migrator(client, { schema: component.schema, table: component.historyTable, migrations: scripts })
          : undefined;
        const applied = migrator ? (await migrator.info()).migrations : [];
        const problems = migrator ? await migrator.validate() : [];
        const cannotRestore = await restoreRefusal(client);
        return [
          cannotRestore
            ? {
                strategy: 'restore' as const,
                available: false,
                unavailable: cannotRestore,
                destructive: false,
                losses: [],
              }
            : restoreImpact(current, target),
          await undoImpact(client, scripts, applied, target.migration, problems),
          await pitrImpact(component, url, req.targetTime ?? target.takenAt),
        ];
      });
      const strategy = req.strategy ?? component.strategy;
      const chosen = impact.find((i) => i.strategy === strategy)!;
      const summary = await summarizeChanges(
        {
          plansDir: ctx.plansDir,
          workflowId: req.workflowId,
          component: req.component,
          previewPaths: req.previewPaths,
        },
        changes,
      );
      return {
        component: req.component,
        kind: 'postgres',
        path: postgresKind.location(component),
        targetSnapshotId: req.target.snapshotId,
        safetySnapshotId: safety.snapshotId,
        ...summary,
        bytesToWrite: strategy === 'restore' ? target.bytes : 0,
        strategy,
        impact,
        destructive: chosen.destructive,
        details: { kind: 'postgres' },
      };
    },

    async verify(component, req, ctx) {
      const url = urlOf(component);
      const current = await withPostgres(url, (client) => fingerprint(component, client));
      const actual = summarizeDatabase(current);
      const issues: string[] = [];
      if (component.migrations) {
        const migrator = await withPostgres(url, async (client) =>
          new Migrator(client, {
            schema: component.schema,
            table: component.historyTable,
            migrations: await readMigrations(component.migrations!),
          }).validate(),
        );
        issues.push(...migrator.map((i) => `migration history: ${i}`));
      }
      // After point-in-time recovery there is no snapshot of that moment to equal: the cluster
      // must be promoted, reachable and its migration history consistent.
      if (req.strategy === 'pitr') {
        const recovering = await withPostgres(
          url,
          async (client) => (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r,
        );
        if (recovering) issues.push('the cluster is still in recovery');
        return {
          matches: issues.length === 0,
          actual,
          differences: issues.map((line) => ({ op: 'change' as const, subject: line })),
        };
      }
      if (actual.digest === req.expected.digest && issues.length === 0)
        return { matches: true, actual, differences: [] };
      const target = parseDatabaseFingerprint(await ctx.listings.load(req.listingSnapshotId));
      const { added, removed } = diffSignatures(current.schema, target.schema);
      const differences = [
        ...(current.migration !== target.migration
          ? [
              {
                op: 'change' as const,
                subject: 'migration version',
                detail: `${current.migration ?? 'none'} (target ${target.migration ?? 'none'})`,
              },
            ]
          : []),
        ...added.map((line) => ({ op: 'add' as const, subject: line })),
        ...removed.map((line) => ({ op: 'remove' as const, subject: line })),
        ...issues.map((line) => ({ op: 'change' as const, subject: line })),
      ];
      return { matches: false, actual, differences: differences.slice(0, 10) };
    },
  };

  /**
   * Why the connection's role cannot restore a dump (create the scratch copy, rename the live
   * database aside and the copy into place), or undefined when it can.
   */
  async function restoreRefusal(client: pg.Client): Promise<string | undefined> {
    const { rows } = await client.query<{
      role: string;
      database: string;
      superuser: boolean;
      createdb: boolean;
      owner: boolean;
    }>(
      `SELECT current_user AS role, current_database() AS database, r.rolsuper AS superuser, r.rolcreatedb AS createdb,
              pg_has_role(current_user, d.datdba, 'MEMBER') AS owner
         FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = current_database()`,
    );
    const me = rows[0];
    if (!me || me.superuser || (me.createdb && me.owner)) return undefined;
    const lacks = [...(me.createdb ? [] : ['CREATEDB']), ...(me.owner ? [] : [`ownership of database ${me.database}`])];
    return `role ${me.role} lacks ${lacks.join(' and ')}, which restoring a dump needs (to create a copy and swap it in); compensation needs it too`;
  }

  /**
   * Why the rollback step `step` left the database untouched, or undefined when it may have
   * changed it (then compensation restores the safety dump).
   */
  async function untouchedBy(
    component: PostgresComponent,
    url: string,
    step: { idempotencyKey: string; strategy?: string },
    safetyDigest: string,
  ): Promise<string | undefined> {
    const unchanged = `the ${step.strategy ?? 'restore'} step changed nothing; the database keeps every write made since the safety snapshot`;
    if ((step.strategy ?? 'restore') === 'restore')
      return (await restoredBy(url)) === step.idempotencyKey ? undefined : unchanged;
    if (step.strategy === 'undo') {
      // Every U script that commits records an undo row, so an unchanged schema and version
      // (the fingerprint digest) means none did.
      const now = summarizeDatabase(await withPostgres(url, (client) => fingerprint(component, client)));
      return now.digest === safetyDigest ? unchanged : undefined;
    }
    const cluster = await clusterOf(component, url);
    return cluster && !cluster.touchedBy(step.idempotencyKey) ? unchanged : undefined;
  }

  async function pitrImpact(
    component: PostgresComponent,
    url: string,
    time: string | undefined,
  ): Promise<StrategyImpact> {
    const cluster = await clusterOf(component, url);
    if (!cluster)
      return {
        strategy: 'pitr',
        available: false,
        unavailable: 'the component has no pitr section in the manifest',
        destructive: false,
        losses: [],
      };
    if (!time)
      return {
        strategy: 'pitr',
        available: false,
        unavailable: 'no moment to recover to',
        destructive: false,
        losses: [],
      };
    const backup = cluster.baseBackupBefore(new Date(time));
    if (!backup)
      return {
        strategy: 'pitr',
        available: false,
        unavailable: `no base backup finished before ${time}`,
        destructive: false,
        losses: [],
      };
    return {
      strategy: 'pitr',
      available: true,
      destructive: true,
      losses: [`every write to the whole cluster (all its databases) after ${time}`],
      keeps: `writes up to ${time}, replayed from the WAL archive onto base backup ${backup.id}`,
    };
  }

  async function recoverToTime(
    component: PostgresComponent,
    url: string,
    time: string | undefined,
    key: string,
    ctx: StepContext,
  ): Promise<RestoreResult> {
    const cluster = await clusterOf(component, url);
    if (!cluster || !time) {
      throw ApplicationFailure.nonRetryable(
        "point-in-time recovery needs the component's pitr section and a target time",
        ErrorType.InvalidRequest,
      );
    }
    if (cluster.lastRecovery()?.key === key) return already('pitr');
    const { baseBackup, asideDir } = await cluster.recoverTo(new Date(time), key, (stage) =>
      ctx.progress.update({ stage }),
    );
    ctx.logger.info({ time, baseBackup: baseBackup.id, asideDir }, 'cluster recovered to a point in time');
    return {
      ...changed({ kind: 'postgres', strategy: 'pitr' }),
      note: `recovered to ${time} from base backup ${baseBackup.id}; the previous data directory is kept at ${asideDir}`,
    };
  }

  async function undoMigrations(
    component: PostgresComponent,
    url: string,
    targetVersion: string | undefined,
    targetDigest: string,
    ctx: StepContext,
  ): Promise<RestoreResult> {
    if (!component.migrations) {
      throw ApplicationFailure.nonRetryable(
        "the undo strategy needs the component's migrations folder in the manifest",
        ErrorType.InvalidRequest,
      );
    }
    const scripts = await readMigrations(component.migrations);
    return withPostgres(url, async (client) => {
      const now = summarizeDatabase(await fingerprint(component, client));
      if (now.digest === targetDigest) return already('undo');
      ctx.progress.update({ stage: 'undo migrations' });
      const migrator = new Migrator(client, {
        schema: component.schema,
        table: component.historyTable,
        migrations: scripts,
      });
      const { undone } = await migrator.undo(targetVersion ?? '0');
      return changed({ kind: 'postgres', strategy: 'undo', migrationsUndone: undone });
    });
  }
}

/**
 * What pg_dump said, as an error of the right kind: missing privileges will not go away by
 * retrying; anything else (a dropped connection, a full disk) may.
 */
function dumpFailure(err: unknown, component: string): unknown {
  if (!(err instanceof ResticError) || !/pg_dump:/.test(err.message)) return err;
  const message = `${component}: pg_dump failed: ${err.message.replace(/^restic backup: /, '')}`;
  return new DatabaseError(message, /permission denied|must be owner/i.test(err.message) ? 'permission' : 'sql');
}

function already(strategy: PostgresStrategy): RestoreResult {
  const details: PostgresRestoreDetails = { kind: 'postgres', strategy };
  return { alreadyAtTarget: true, bytesWritten: 0, details };
}

function changed(details: PostgresRestoreDetails): RestoreResult {
  return { alreadyAtTarget: false, bytesWritten: 0, details };
}
