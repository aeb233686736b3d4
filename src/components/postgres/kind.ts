// The `postgres` kind, pure half: a database, with Flyway migrations and three ways back.
import { z } from 'zod';
import { count, formatBytes } from '../../domain/format';
import { dependsOnField, hostsField, envVarField, localPathField } from '../../manifest/fields';
import type { FingerprintSummary, KindDetails } from '../core';
import type { ComponentKind } from '../kind';

export const POSTGRES_STRATEGIES = ['undo', 'restore', 'pitr'] as const;
export type PostgresStrategy = (typeof POSTGRES_STRATEGIES)[number];

export const postgresComponentSchema = z
  .strictObject({
    kind: z.literal('postgres'),
    url: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
      .optional()
      .describe('Connection URL. Prefer urlEnv when the URL holds a password.'),
    urlEnv: envVarField.optional().describe('Environment variable holding the connection URL.'),
    migrations: localPathField
      .optional()
      .describe('Flyway migrations folder (V/U/R scripts). Relative to the manifest.'),
    schema: z.string().min(1).default('public').describe("Schema of Flyway's history table."),
    historyTable: z.string().min(1).default('flyway_schema_history'),
    strategy: z
      .enum(POSTGRES_STRATEGIES)
      .default('restore')
      .describe('Default rollback strategy: undo migrations, restore the dump, or point-in-time recovery.'),
    sample: z
      .strictObject({
        tables: z.array(z.string().min(1)).min(1),
        rows: z.int().min(1).max(10_000).default(100),
        keyEnv: envVarField
          .default('REWIND_SAMPLE_KEY')
          .describe('Environment variable holding the HMAC key for row samples.'),
      })
      .optional()
      .describe('Tables sampled (by keyed hash, never copied) for drift scans and verification.'),
    pitr: z
      .strictObject({
        dataDir: localPathField.describe("The cluster's data directory (the agent stops, replaces and starts it)."),
        archiveDir: localPathField.describe('Where WAL is archived; rewind owns it.'),
        baseBackupDir: localPathField.describe('Where base backups go, one taken with each snapshot.'),
        osUser: z
          .string()
          .min(1)
          .optional()
          .describe('OS user the cluster runs as (default postgres when the agent is root).'),
      })
      .optional()
      .describe('Point-in-time recovery of a cluster this agent manages (its data directory and pg_ctl).'),
    dependsOn: dependsOnField,
    hosts: hostsField,
    description: z.string().optional(),
  })
  .refine((c) => (c.url === undefined) !== (c.urlEnv === undefined), 'set exactly one of url or urlEnv')
  .refine(
    (c) => c.strategy !== 'pitr' || c.pitr !== undefined,
    'strategy pitr needs a pitr section (dataDir, archiveDir, baseBackupDir)',
  )
  .describe('A PostgreSQL database.');

export type PostgresComponent = z.output<typeof postgresComponentSchema>;

export interface PostgresFingerprintDetails extends KindDetails {
  kind: 'postgres';
  tables: number;
  /** The Flyway version applied when the fingerprint was read. */
  migration?: string;
}

export interface PostgresRestoreDetails extends KindDetails {
  kind: 'postgres';
  strategy: PostgresStrategy;
  /** restore: how long the database refused connections during the swap. */
  swapWindowMs?: number;
  /** undo: the versions undone, newest first. */
  migrationsUndone?: string[];
}

function isPostgresStrategy(value: string | undefined): value is PostgresStrategy {
  return (POSTGRES_STRATEGIES as readonly (string | undefined)[]).includes(value);
}

const detailsOf = <D extends KindDetails>(value: { details?: KindDetails | undefined }): D | undefined =>
  value.details?.kind === 'postgres' ? (value.details as D) : undefined;

export const postgresKind = {
  name: 'postgres',
  schema: postgresComponentSchema,
  plansFromLiveState: false,
  strategies: POSTGRES_STRATEGIES,
  driftAspects: ['schema', 'migration', 'rows', 'sample'],
  location(component) {
    if (component.url) return component.url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
    return `$${component.urlEnv}`;
  },
  resolvePaths: (c, resolve) => ({
    ...c,
    ...(c.migrations !== undefined ? { migrations: resolve(c.migrations) } : {}),
    ...(c.pitr
      ? {
          pitr: {
            ...c.pitr,
            dataDir: resolve(c.pitr.dataDir),
            archiveDir: resolve(c.pitr.archiveDir),
            baseBackupDir: resolve(c.pitr.baseBackupDir),
          },
        }
      : {}),
  }),
  localFolders: (c) => (c.migrations !== undefined ? [{ key: 'migrations', dir: c.migrations, written: false }] : []),
  refuse(component, request) {
    if (request.strategy === 'pitr' && !component.pitr)
      return 'it has no pitr section, so point-in-time recovery is not set up';
    return undefined;
  },
  stepOptions(component, request) {
    // A rollback to a moment recovers databases that can replay to it; others use their default.
    const strategy = isPostgresStrategy(request.strategy)
      ? request.strategy
      : request.time !== undefined && component.pitr
        ? 'pitr'
        : component.strategy;
    return { strategy, ...(strategy === 'pitr' ? { targetTime: request.time ?? request.crossSectionTime } : {}) };
  },
  legacyDetails(tags) {
    const tables = Number(tags.get('tables'));
    if (!tags.has('tables') || !Number.isFinite(tables)) return undefined;
    const migration = tags.get('migration');
    return {
      kind: 'postgres',
      tables,
      ...(migration !== undefined ? { migration: decodeURIComponent(migration) } : {}),
    } satisfies PostgresFingerprintDetails;
  },
  present: {
    contents(fingerprint: FingerprintSummary) {
      const d = detailsOf<PostgresFingerprintDetails>(fingerprint);
      return `database: ${d ? `${count(d.tables, 'table')}, migration ${d.migration ?? 'none'}, ` : ''}${formatBytes(fingerprint.bytes)} on disk`;
    },
    planCounts: () => '',
    outcome(outcome) {
      const d = detailsOf<PostgresRestoreDetails>(outcome);
      const note = outcome.note ? `: ${outcome.note}` : '';
      switch (d?.strategy) {
        case 'undo': {
          const undone = d.migrationsUndone ?? [];
          return `undid migration${undone.length === 1 ? '' : 's'} ${undone.join(', ') || '(none)'}${note}`;
        }
        case 'restore':
          return `restored the dump and swapped it in (unavailable for ${d.swapWindowMs ?? '?'} ms)${note}`;
        case 'pitr':
          return `point-in-time recovery${note}`;
        default:
          return `restored${note}`;
      }
    },
  },
} satisfies ComponentKind<PostgresComponent>;
