// The manifest `rewind.yaml`: one zod schema that validates it, types it and, through
// `z.toJSONSchema`, gives editors completion. Pure: no I/O, so workflows may import the types.
import { z } from 'zod';
import { DURATION_PATTERN } from './duration';
import { dependencyCycle } from '../domain/dependency-order';
import { STRATEGIES } from '../domain/rollback';

// Environment and component names become task queue names and restic tags, so keep them plain.
export const NAME_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;
const name = z
  .string()
  .regex(NAME_PATTERN, 'must start with a lowercase letter and hold only a-z, 0-9 and "-" (40 characters at most)');

const duration = z.string().regex(DURATION_PATTERN, 'must be a duration such as 90s, 30m or 2h');

export const filesComponentSchema = z
  .strictObject({
    kind: z.literal('files'),
    path: z.string().min(1).describe('Directory that holds the files. Relative paths are relative to the manifest.'),
    format: z
      .enum(['config', 'pickle', 'any'])
      .default('any')
      .describe('What the files are: config files, Python pickle files (never unpickled) or anything.'),
    dependsOn: z
      .array(name)
      .default([])
      .describe('Components of the same environment that must be rolled back before this one.'),
    description: z.string().optional(),
  })
  .describe('A directory of files (config files, pickle files, any directory).');

const envVarName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be the name of an environment variable');


export const postgresComponentSchema = z
  .strictObject({
    kind: z.literal('postgres'),
    url: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
      .optional()
      .describe('Connection URL. Prefer urlEnv when the URL holds a password.'),
    urlEnv: envVarName.optional().describe('Environment variable holding the connection URL.'),
    migrations: z.string().min(1).optional().describe('Flyway migrations folder (V/U/R scripts). Relative to the manifest.'),
    schema: z.string().min(1).default('public').describe("Schema of Flyway's history table."),
    historyTable: z.string().min(1).default('flyway_schema_history'),
    strategy: z
      .enum(STRATEGIES)
      .default('restore')
      .describe('Default rollback strategy: undo migrations, restore the dump, or point-in-time recovery.'),
    sample: z
      .strictObject({
        tables: z.array(z.string().min(1)).min(1),
        rows: z.int().min(1).max(10_000).default(100),
        keyEnv: envVarName.default('REWIND_SAMPLE_KEY').describe('Environment variable holding the HMAC key for row samples.'),
      })
      .optional()
      .describe('Tables sampled (by keyed hash, never copied) for drift scans and verification.'),
    pitr: z
      .strictObject({
        dataDir: z.string().min(1).describe("The cluster's data directory (the agent stops, replaces and starts it)."),
        archiveDir: z.string().min(1).describe('Where WAL is archived; rewind owns it.'),
        baseBackupDir: z.string().min(1).describe('Where base backups go, one taken with each snapshot.'),
        osUser: z.string().min(1).optional().describe('OS user the cluster runs as (default postgres when the agent is root).'),
      })
      .optional()
      .describe('Point-in-time recovery of a cluster this agent manages (its data directory and pg_ctl).'),
    dependsOn: z.array(name).default([]),
    description: z.string().optional(),
  })
  .refine((c) => (c.url === undefined) !== (c.urlEnv === undefined), 'set exactly one of url or urlEnv')
  .refine((c) => c.strategy !== 'pitr' || c.pitr !== undefined, 'strategy pitr needs a pitr section (dataDir, archiveDir, baseBackupDir)')
  .describe('A PostgreSQL database.');

export const componentSchema = z.discriminatedUnion('kind', [filesComponentSchema, postgresComponentSchema]);
export const COMPONENT_KINDS = componentSchema.options.map((o) => o.shape.kind.value);

export const environmentSchema = z.strictObject({
  description: z.string().optional(),
  allowSelfApproval: z
    .boolean()
    .optional()
    .describe('May the requester approve their own rollback? Default: false for "production", true elsewhere.'),
  components: z
    .record(name, componentSchema)
    .refine((components) => Object.keys(components).length > 0, 'must declare at least one component'),
});

export const manifestSchema = z
  .strictObject({
    repository: z
      .strictObject({
        path: z.string().min(1).describe('The restic repository that holds every snapshot (a directory or a restic URL).'),
        passwordEnv: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be the name of an environment variable')
          .optional()
          .describe('Environment variable holding the repository password. Default: REWIND_REPOSITORY_PASSWORD.'),
        passwordFile: z.string().min(1).optional().describe('File holding the repository password.'),
      })
      .refine((r) => !(r.passwordEnv && r.passwordFile), 'set passwordEnv or passwordFile, not both'),
    dataDir: z
      .string()
      .min(1)
      .default('./.data')
      .describe('Where rewind keeps plans, reports and agent state. Relative to the manifest.'),
    approvers: z.array(z.string().min(1)).min(1, 'must name at least one approver'),
    policy: z
      .strictObject({
        approvalTimeout: duration.default('30m').describe('How long a rollback waits for approval before it ends as timed-out.'),
        requiredApprovals: z.int().min(1).default(1).describe('Distinct approvers needed before execute.'),
        heartbeatTimeout: duration
          .default('30s')
          .describe('How long an agent may stay silent during a step before Temporal retries the step elsewhere.'),
        planPreviewPaths: z.int().min(0).max(200).default(20).describe('Paths per component shown in a plan.'),
      })
      .prefault({}),
    temporal: z
      .strictObject({
        namespace: z.string().min(1).default('default'),
        taskQueue: name.default('rewind').describe('Control task queue; agents listen on "<taskQueue>-env-<environment>".'),
      })
      .prefault({}),
    environments: z
      .record(name, environmentSchema)
      .refine((envs) => Object.keys(envs).length > 0, 'must declare at least one environment'),
  })
  .superRefine((manifest, ctx) => {
    for (const [envName, env] of Object.entries(manifest.environments)) {
      const names = Object.keys(env.components);
      for (const [componentName, component] of Object.entries(env.components)) {
        component.dependsOn.forEach((dep, i) => {
          if (!names.includes(dep)) {
            ctx.addIssue({
              code: 'custom',
              path: ['environments', envName, 'components', componentName, 'dependsOn', i],
              message: `unknown component "${dep}" (this environment has: ${names.join(', ')})`,
            });
          } else if (dep === componentName) {
            ctx.addIssue({
              code: 'custom',
              path: ['environments', envName, 'components', componentName, 'dependsOn', i],
              message: 'a component cannot depend on itself',
            });
          }
        });
      }
      const cycle = dependencyCycle(Object.entries(env.components).map(([n, c]) => ({ name: n, dependsOn: c.dependsOn })));
      if (cycle && cycle.length > 1) {
        ctx.addIssue({
          code: 'custom',
          path: ['environments', envName, 'components'],
          message: `dependency cycle: ${cycle.join(' -> ')}`,
        });
      }
    }
  });

export type Manifest = z.output<typeof manifestSchema>;
export type ManifestInput = z.input<typeof manifestSchema>;
export type Environment = Manifest['environments'][string];
export type Component = z.output<typeof componentSchema>;
export type ComponentKind = Component['kind'];
export type FilesComponent = z.output<typeof filesComponentSchema>;
export type PostgresComponent = z.output<typeof postgresComponentSchema>;

/** Where a component lives, for plans and reports: a path, or a database with its password hidden. */
export function componentLocation(component: Component): string {
  if (component.kind === 'files') return component.path;
  if (component.url) return component.url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
  return `$${component.urlEnv}`;
}

export function envTaskQueue(manifest: Pick<Manifest, 'temporal'>, environment: string): string {
  return `${manifest.temporal.taskQueue}-env-${environment}`;
}

export function allowsSelfApproval(environmentName: string, environment: Environment): boolean {
  return environment.allowSelfApproval ?? environmentName !== 'production';
}

export function manifestJsonSchema(): unknown {
  return z.toJSONSchema(manifestSchema, { io: 'input', target: 'draft-7' });
}
