// The manifest `rewind.yaml`: one zod schema that validates it, types it and, through
// `z.toJSONSchema`, gives editors completion. Pure: no I/O, so workflows may import the types.
import { z } from 'zod';
import { DURATION_PATTERN } from './duration';
import { componentSchema } from '../components/registry';
import { dependencyCycle } from '../domain/dependency-order';
import { nameField } from './fields';

export { NAME_PATTERN } from './fields';
export type { Component, ComponentOf, KindName } from '../components/registry';

const name = nameField;

const duration = z.string().regex(DURATION_PATTERN, 'must be a duration such as 90s, 30m or 2h');

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
        path: z
          .string()
          .min(1)
          .describe('The restic repository that holds every snapshot (a directory or a restic URL).'),
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
        approvalTimeout: duration
          .default('30m')
          .describe('How long a rollback waits for approval before it ends as timed-out.'),
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
        taskQueue: name
          .default('rewind')
          .describe('Control task queue; agents listen on "<taskQueue>-env-<environment>".'),
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
      const cycle = dependencyCycle(
        Object.entries(env.components).map(([n, c]) => ({ name: n, dependsOn: c.dependsOn })),
      );
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
export function envTaskQueue(manifest: Pick<Manifest, 'temporal'>, environment: string): string {
  return `${manifest.temporal.taskQueue}-env-${environment}`;
}

export function allowsSelfApproval(environmentName: string, environment: Environment): boolean {
  return environment.allowSelfApproval ?? environmentName !== 'production';
}

export function manifestJsonSchema(): unknown {
  return z.toJSONSchema(manifestSchema, { io: 'input', target: 'draft-7' });
}
