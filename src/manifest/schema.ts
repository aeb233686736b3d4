// The manifest `rewind.yaml`: one zod schema that validates it, types it and, through
// `z.toJSONSchema`, gives editors completion. Pure: no I/O, so workflows may import the types.
import { z } from 'zod';
import { componentSchema, DRIFT_ASPECTS } from '../components/registry';
import { driftSectionSchema } from '../drift/rules';
import { apiSectionSchema } from '../api/access';
import { snapshotsSectionSchema } from '../retention/policy';
import { drillsSectionSchema } from '../drills/section';
import { slackSectionSchema } from '../notify/rollback-slack';
import { triggersSectionSchema } from '../api/triggers';
import { pagerDutySectionSchema, statusPageSectionSchema } from '../notify/escalation';
import { APP_VERSION_COMPONENT } from '../domain/drift-scan';
import { dependencyCycle } from '../domain/dependency-order';
import { hostMember, splitHost } from '../domain/hosts';
import { didYouMean, durationField, listenField, localPathField, nameField, repeatedEntries } from './fields';
import { repositorySchema } from './repository';
import { verifySectionSchema } from '../verify/section';

export type { Component, ComponentOf, KindName } from '../components/registry';

const name = nameField;

export { isRepositoryUrl } from './repository';

// Who may approve: names compared as typed with --as, so blanks and stray spaces never match.
const approver = z
  .string()
  .refine((a) => a.trim() !== '', 'must not be blank')
  .superRefine((a, ctx) => {
    if (a.trim() !== '' && a.trim() !== a)
      ctx.addIssue({ code: 'custom', message: `must not start or end with white space: ${JSON.stringify(a)}` });
  });

export const environmentSchema = z
  .strictObject({
    description: z.string().optional(),
    allowSelfApproval: z
      .boolean()
      .optional()
      .describe('May the requester approve their own rollback? Default: false for "production", true elsewhere.'),
    components: z
      .record(name, componentSchema)
      .refine((components) => Object.keys(components).length > 0, 'must declare at least one component'),
    version: z
      .strictObject({
        file: localPathField.optional().describe('A file holding the version (its first line, or JSON with `field`).'),
        url: z
          .url({ protocol: /^https?$/ })
          .optional()
          .describe('An HTTP endpoint answering the version (text, or JSON with `field`).'),
        field: z
          .string()
          .min(1)
          .optional()
          .describe('The dotted JSON field that holds the version, e.g. "build.version".'),
      })
      .refine((v) => (v.file === undefined) !== (v.url === undefined), 'set exactly one of file or url')
      .optional()
      .describe(
        'Where the running application version is read, for drift scans (an app component reports its own too).',
      ),
    verify: verifySectionSchema
      .optional()
      .describe('Checks that prove a rollback left the service working, what a failure leads to, and waves.'),
  })
  // Per environment, and also when some component has another problem, so that problems are
  // reported together: the value may then hold raw components, so read it with care.
  .superRefine(
    (env, ctx) => {
      const components = Object.entries(env.components as Record<string, unknown>).map(([name, c]) => ({
        name,
        dependsOn: dependenciesOf(c),
      }));
      const names = components.map((c) => c.name);
      for (const { name: componentName, dependsOn } of components) {
        dependsOn.forEach((dep, i) => {
          const at = ['components', componentName, 'dependsOn', i];
          if (!names.includes(dep)) {
            const hint = didYouMean(dep, names);
            ctx.addIssue({
              code: 'custom',
              path: at,
              message: `unknown component "${dep}" (this environment has: ${names.join(', ')})`,
              ...(hint ? { params: { hint } } : {}),
            });
          } else if (dep === componentName) {
            ctx.addIssue({ code: 'custom', path: at, message: 'a component cannot depend on itself' });
          }
        });
      }
      const verify = (env as { verify?: { checks?: { after?: unknown }[]; waves?: { components?: unknown }[] } })
        .verify;
      // A component on several hosts is one unit per host (`app@web1`); waves may name either.
      const hostsOfComponent = new Map(
        Object.entries(env.components as Record<string, unknown>).map(([n, c]) => [n, hostNames(c)]),
      );
      const unitsOf = (member: string): string[] => {
        const { component, host } = splitHost(member);
        if (host !== undefined) return [member];
        const hosts = hostsOfComponent.get(component) ?? [];
        return hosts.length === 0 ? [component] : hosts.map((h) => hostMember(component, h));
      };
      const named = (list: unknown, at: (string | number)[]) => {
        if (!Array.isArray(list)) return;
        list.forEach((c, j) => {
          if (typeof c !== 'string') return;
          const { component, host } = splitHost(c);
          if (!names.includes(component))
            ctx.addIssue({
              code: 'custom',
              path: [...at, j],
              message: `unknown component "${component}" (this environment has: ${names.join(', ')})`,
            });
          else if (host !== undefined) {
            const hosts = hostsOfComponent.get(component) ?? [];
            if (!hosts.includes(host))
              ctx.addIssue({
                code: 'custom',
                path: [...at, j],
                message:
                  hosts.length === 0
                    ? `${component} names no hosts, so it has no host "${host}"`
                    : `${component} has no host "${host}" (its hosts: ${hosts.join(', ')})`,
              });
          }
        });
      };
      verify?.waves?.forEach((w, i) => named(w?.components, ['verify', 'waves', i, 'components']));
      // A wave runs after the ones before it: what a component depends on cannot come later.
      const waveOf = new Map<string, number>();
      const entryOf = new Map<string, string>();
      verify?.waves?.forEach((w, i) => {
        if (!Array.isArray(w?.components)) return;
        w.components.forEach((c, j) => {
          if (typeof c !== 'string') return;
          for (const unit of unitsOf(c)) {
            // The same name twice is the section's own refusal; this one is a host in two waves.
            if (waveOf.has(unit) && entryOf.get(unit) !== c)
              ctx.addIssue({
                code: 'custom',
                path: ['verify', 'waves', i, 'components', j],
                message: `${unit} is already in an earlier wave (as ${entryOf.get(unit)})`,
              });
            if (!waveOf.has(unit)) {
              waveOf.set(unit, i);
              entryOf.set(unit, c);
            }
          }
        });
      });
      const lastWave = (verify?.waves?.length ?? 0) + 1;
      const ordering = new Set<string>();
      for (const { name: componentName, dependsOn } of components) {
        for (const unit of unitsOf(componentName)) {
          if (!waveOf.has(unit)) continue;
          const mine = waveOf.get(unit)!;
          for (const dep of dependsOn)
            if (unitsOf(dep).some((d) => (waveOf.get(d) ?? lastWave) > mine)) {
              const message = `${unit} depends on ${dep}, which comes in a later wave`;
              if (ordering.has(message)) continue;
              ordering.add(message);
              ctx.addIssue({ code: 'custom', path: ['verify', 'waves', mine, 'components'], message });
            }
        }
      }
      verify?.checks?.forEach((c, i) => named(c?.after, ['verify', 'checks', i, 'after']));
      const cycle = dependencyCycle(components.map((c) => ({ name: c.name, dependsOn: [...new Set(c.dependsOn)] })));
      if (cycle && cycle.length > 1) {
        ctx.addIssue({ code: 'custom', path: ['components'], message: `dependency cycle: ${cycle.join(' -> ')}` });
      }
    },
    { when: (payload) => isRecord((payload.value as { components?: unknown } | undefined)?.components) },
  );

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hostNames(component: unknown): string[] {
  const hosts = isRecord(component) ? component.hosts : undefined;
  if (Array.isArray(hosts)) return hosts.filter((h): h is string => typeof h === 'string');
  return isRecord(hosts) ? Object.keys(hosts) : [];
}

function dependenciesOf(component: unknown): string[] {
  const dependsOn = isRecord(component) ? component.dependsOn : undefined;
  return Array.isArray(dependsOn) ? dependsOn.filter((d): d is string => typeof d === 'string') : [];
}

export const manifestSchema = z
  .strictObject({
    repository: repositorySchema.describe('The restic repository that holds every snapshot.'),
    dataDir: localPathField
      .default('./.data')
      .describe('Where rewind keeps plans, reports and agent state. Relative to the manifest.'),
    approvers: z
      .array(approver)
      .min(1, 'must name at least one approver')
      .superRefine((approvers, ctx) => {
        for (const [i, a] of repeatedEntries(approvers))
          ctx.addIssue({ code: 'custom', path: [i], message: `${JSON.stringify(a)} is listed twice` });
      }),
    policy: z
      .strictObject({
        approvalTimeout: durationField('1s', '7d')
          .default('30m')
          .describe('How long a rollback waits for approval before it ends as timed-out.'),
        requiredApprovals: z.int().min(1).default(1).describe('Distinct approvers needed before execute.'),
        heartbeatTimeout: durationField('1s', '1h')
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
    drift: driftSectionSchema.describe('Drift scans: environment pairs, rules, thresholds and alerts.'),
    api: apiSectionSchema.describe('The HTTP API: where it listens, its principals and their roles, its tokens.'),
    slack: slackSectionSchema,
    triggers: triggersSectionSchema,
    pagerduty: pagerDutySectionSchema,
    statusPage: statusPageSectionSchema,
    drills: drillsSectionSchema.describe('Rollback drills on the regression environment (README.md#drills).'),
    snapshots: snapshotsSectionSchema.describe(
      'Scheduled cross-sections, retention tiers, pruning and checks of the repository (README.md#storage).',
    ),
    metrics: z
      .strictObject({
        worker: listenField
          .optional()
          .describe('Where the control worker serves /metrics (rollbacks, drift, snapshots). Default: none.'),
        agents: z
          .record(name, listenField)
          .default({})
          .describe("Where each environment's agent serves /metrics (restic, pg_dump), by environment."),
      })
      .prefault({})
      .describe('Prometheus /metrics of the worker and agents; the API serves /metrics on its own port.'),
  })
  // Runs whenever approvers and requiredApprovals are readable, whatever else is wrong.
  .superRefine(
    (manifest, ctx) => {
      const distinct = [...new Set(manifest.approvers.map((a) => a.trim()).filter((a) => a !== ''))];
      const required = manifest.policy.requiredApprovals;
      // No approvers at all is said on its own.
      if (distinct.length > 0 && required > distinct.length) {
        ctx.addIssue({
          code: 'custom',
          path: ['policy', 'requiredApprovals'],
          message: `${required} approvals needed, but only ${distinct.length} distinct approver${distinct.length === 1 ? '' : 's'} (${distinct.join(', ')})`,
          params: { hint: 'no rollback could ever be approved' },
        });
      }
    },
    { when: (payload) => approvalsReadable(payload.value) },
  )
  // Names in the drift section must be the manifest's own. Runs whenever the environments and
  // the drift section can be read, whatever else is wrong, so that every problem is listed at once.
  .superRefine(
    (value, ctx) => {
      const raw = value as unknown as {
        environments: Record<string, { components?: unknown }>;
        drift?: unknown;
        api?: unknown;
      };
      const envNames = Object.keys(raw.environments);
      /** A name where an environment of the manifest is expected: said once, with a hint. */
      const checkEnvironment = (env: unknown, path: (string | number)[]) => {
        if (typeof env !== 'string' || envNames.includes(env)) return;
        const hint = didYouMean(env, envNames);
        ctx.addIssue({
          code: 'custom',
          path,
          message: `unknown environment "${env}" (the manifest has: ${envNames.join(', ')})`,
          ...(hint ? { params: { hint } } : {}),
        });
      };
      const drift = isRecord(raw.drift) ? raw.drift : {};
      const pairs = Array.isArray(drift.pairs) ? (drift.pairs as unknown[]) : [];
      pairs.forEach((pair, i) => {
        if (!isRecord(pair)) return;
        for (const side of ['from', 'to'] as const) checkEnvironment(pair[side], ['drift', 'pairs', i, side]);
        if (typeof pair.from === 'string' && pair.from === pair.to)
          ctx.addIssue({ code: 'custom', path: ['drift', 'pairs', i], message: 'compares an environment with itself' });
      });
      const componentNames = new Set(
        Object.values(raw.environments).flatMap((e) => (isRecord(e?.components) ? Object.keys(e.components) : [])),
      );
      const api = isRecord(raw.api) ? raw.api : {};
      for (const [who, principal] of Object.entries(isRecord(api.principals) ? api.principals : {})) {
        const scoped = isRecord(principal) && isRecord(principal.environments) ? principal.environments : {};
        for (const env of Object.keys(scoped)) checkEnvironment(env, ['api', 'principals', who, 'environments', env]);
      }
      const metrics = isRecord((value as { metrics?: unknown }).metrics)
        ? (value as { metrics: Record<string, unknown> }).metrics
        : {};
      const snapshots = isRecord((value as { snapshots?: unknown }).snapshots)
        ? (value as { snapshots: Record<string, unknown> }).snapshots
        : {};
      const drills = isRecord((value as { drills?: unknown }).drills)
        ? (value as { drills: Record<string, unknown> }).drills
        : {};
      checkEnvironment(drills.environment, ['drills', 'environment']);
      for (const env of Object.keys(isRecord(snapshots.schedules) ? snapshots.schedules : {}))
        checkEnvironment(env, ['snapshots', 'schedules', env]);
      for (const env of Object.keys(isRecord(metrics.agents) ? metrics.agents : {}))
        checkEnvironment(env, ['metrics', 'agents', env]);
      // Two processes told to listen on one address: the second would fail to start.
      const addresses: [string[], unknown][] = [
        [['api', 'listen'], api.listen ?? '127.0.0.1:8787'],
        [['metrics', 'worker'], metrics.worker],
        ...Object.entries(isRecord(metrics.agents) ? metrics.agents : {}).map(
          ([env, at]) => [['metrics', 'agents', env], at] as [string[], unknown],
        ),
      ];
      const seen = new Map<string, string>();
      for (const [where, at] of addresses) {
        if (typeof at !== 'string') continue;
        const first = seen.get(at);
        if (first) ctx.addIssue({ code: 'custom', path: where, message: `${at} is already where ${first} listens` });
        else seen.set(at, where.join('.'));
      }
      const rules = Array.isArray(drift.rules) ? (drift.rules as unknown[]) : [];
      rules.forEach((rule, i) => {
        if (!isRecord(rule)) return;
        // A plain environment name (no glob characters) must be one of the manifest's.
        for (const side of ['from', 'to'] as const) {
          const env = rule[side];
          if (typeof env === 'string' && !/[*?]/.test(env)) checkEnvironment(env, ['drift', 'rules', i, side]);
        }
        if (typeof rule.aspect === 'string' && !DRIFT_ASPECTS.includes(rule.aspect)) {
          const hint = didYouMean(rule.aspect, DRIFT_ASPECTS);
          ctx.addIssue({
            code: 'custom',
            path: ['drift', 'rules', i, 'aspect'],
            message: `no drift finding has the aspect "${rule.aspect}" (aspects: ${DRIFT_ASPECTS.join(', ')})`,
            ...(hint ? { params: { hint } } : {}),
          });
        }
        const component = rule.component;
        // A plain name (no glob characters) that names no component is a typo that would make
        // the rule silently match nothing.
        if (typeof component !== 'string' || /[*?]/.test(component)) return;
        if (componentNames.has(component) || component === APP_VERSION_COMPONENT) return;
        const hint = didYouMean(component, componentNames);
        ctx.addIssue({
          code: 'custom',
          path: ['drift', 'rules', i, 'component'],
          message: `no environment has a component "${component}"`,
          ...(hint ? { params: { hint } } : {}),
        });
      });
    },
    { when: (payload) => isRecord((payload.value as { environments?: unknown } | undefined)?.environments) },
  );

function approvalsReadable(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const { approvers, policy } = value as { approvers?: unknown; policy?: { requiredApprovals?: unknown } };
  return (
    Array.isArray(approvers) &&
    approvers.every((a) => typeof a === 'string') &&
    typeof policy === 'object' &&
    policy !== null &&
    Number.isInteger(policy.requiredApprovals)
  );
}

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
