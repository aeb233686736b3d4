// An environment's `verify` section: the checks that prove a rollback left the service working
// (HTTP, a command, a Prometheus query), run by its agent after each wave and in verify, and
// what a failure leads to. Its `waves` group components into a staged rollout. Pure.
import { z } from 'zod';
import { parseDuration } from '../manifest/duration';
import { durationField, memberField, nameField, repeatedEntries } from '../manifest/fields';

export const VERIFY_FAILURE_POLICIES = ['compensate', 'ask', 'accept-with-warning'] as const;
export type VerifyFailurePolicy = (typeof VERIFY_FAILURE_POLICIES)[number];

const httpCheck = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']).default('GET'),
  status: z.int().min(100).max(599).default(200).describe('The status every answer must have.'),
  body: z.string().min(1).optional().describe('Text every answer must contain.'),
  requests: z.int().min(1).max(10_000).default(1).describe('How many requests to send (the p95 is over these).'),
  p95: durationField('1ms', '1h').optional().describe('The 95th percentile latency must stay within this budget.'),
  timeout: durationField('10ms', '10m').default('10s').describe('Deadline of one request.'),
});

const commandCheck = z.strictObject({
  run: z.string().trim().min(1).describe('A shell command, e.g. a smoke suite; it passes when it exits 0.'),
  timeout: durationField('1s', '1h').default('5m'),
});

const prometheusCheck = z
  .strictObject({
    url: z.url({ protocol: /^https?$/ }).describe("Prometheus's base URL, e.g. http://127.0.0.1:9090."),
    query: z.string().trim().min(1).describe('An instant query that returns one number, e.g. an error ratio over 5m.'),
    below: z.number().optional().describe('The value must be below this.'),
    above: z.number().optional().describe('The value must be above this.'),
    timeout: durationField('100ms', '5m').default('10s'),
  })
  .refine((p) => p.below !== undefined || p.above !== undefined, 'give below or above (or both)')
  .refine((p) => p.below === undefined || p.above === undefined || p.above < p.below, {
    message: 'can never pass: the value must be above `above` and below `below`, so `above` must be the smaller',
  });

export const checkSchema = z
  .strictObject({
    name: nameField.describe('Names the check in the status, the report and the Web UI.'),
    http: httpCheck.optional(),
    command: commandCheck.optional(),
    prometheus: prometheusCheck.optional(),
    after: z
      .array(memberField)
      .optional()
      .describe(
        'Run only after the waves holding these components, or hosts of one (app@web1) (default: after every wave and in verify).',
      ),
  })
  .refine(
    (c) => [c.http, c.command, c.prometheus].filter((x) => x !== undefined).length === 1,
    'give exactly one of http, command or prometheus',
  );
export type Check = z.output<typeof checkSchema>;

const waveSchema = z.strictObject({
  name: nameField,
  components: z
    .array(memberField)
    .min(1)
    .describe('The components this wave rolls back; app@web1 names one host of a component that runs on several.'),
});

export const verifySectionSchema = z
  .strictObject({
    checks: z.array(checkSchema).default([]),
    onFailure: z
      .enum(VERIFY_FAILURE_POLICIES)
      .default('compensate')
      .describe('compensate: put everything back; ask: pause for an approver; accept-with-warning: complete, warned.'),
    ask: z
      .strictObject({
        deadline: durationField('10s', '7d')
          .default('30m')
          .describe('How long the run waits for accept or compensate.'),
        default: z.enum(['compensate', 'accept']).default('compensate').describe('What the deadline decides.'),
      })
      .prefault({}),
    waves: z
      .array(waveSchema)
      .default([])
      .describe(
        'Staged rollout: components in waves, each verified before the next; unnamed components form a last wave.',
      ),
  })
  .superRefine((v, ctx) => {
    for (const [i, name] of repeatedEntries(v.checks.map((c) => c.name)))
      ctx.addIssue({ code: 'custom', path: ['checks', i, 'name'], message: `check "${name}" is named twice` });
    for (const [i, name] of repeatedEntries(v.waves.map((w) => w.name)))
      ctx.addIssue({ code: 'custom', path: ['waves', i, 'name'], message: `wave "${name}" is named twice` });
    const seen = new Map<string, string>();
    v.waves.forEach((w, i) =>
      w.components.forEach((c, j) => {
        if (seen.has(c))
          ctx.addIssue({
            code: 'custom',
            path: ['waves', i, 'components', j],
            message: `${c} is already in wave ${seen.get(c)}`,
          });
        seen.set(c, w.name);
      }),
    );
  });
export type VerifySection = z.output<typeof verifySectionSchema>;

export type CheckKind = 'http' | 'command' | 'prometheus';

export function checkKind(check: Check): CheckKind {
  return check.http ? 'http' : check.command ? 'command' : 'prometheus';
}

/** One check's result: travels in the status, the report and the Web UI's details. */
export interface CheckResult {
  name: string;
  kind: CheckKind;
  passed: boolean;
  /** The measured value, in words: "p95 41 ms over 20 requests", "0.004", "exit 0". */
  value: string;
  /** The same as a number, for machines: the p95 in ms, the exit code, the query's value. */
  measured?: number;
  /** What passes, in words: "status 200, p95 <= 300ms", "exit 0", "below 0.01". */
  expected?: string;
  /** Why it failed, when it did. */
  problem?: string;
  /** When the check ran, after which wave (absent: in verify). */
  wave?: string;
  at: string;
  ms: number;
}

/** The checks that run after a wave holding `components` (all of them in verify, `components` undefined). */
export function checksFor<C extends { after?: readonly string[] }>(
  checks: readonly C[],
  components?: readonly string[],
): C[] {
  if (components === undefined) return [...checks];
  return checks.filter((c) => c.after === undefined || c.after.some((a) => components.includes(a)));
}

/** The components in waves: the manifest's, restricted to those in the run, then the rest as a last wave. */
export function wavesOf(
  waves: VerifySection['waves'],
  components: readonly string[],
): { name: string; components: string[] }[] {
  const inRun = new Set(components);
  const named = waves
    .map((w) => ({ name: w.name, components: w.components.filter((c) => inRun.has(c)) }))
    .filter((w) => w.components.length > 0);
  const placed = new Set(named.flatMap((w) => w.components));
  const rest = components.filter((c) => !placed.has(c));
  return rest.length > 0 ? [...named, { name: named.length > 0 ? 'rest' : 'all', components: rest }] : named;
}

/** What a rollback of `components` carries of the section (RollbackContext.verification). */
export function verificationOf(section: VerifySection, components: readonly string[]) {
  return {
    checks: section.checks.map((c) => ({ name: c.name, ...(c.after ? { after: c.after } : {}) })),
    onFailure: section.onFailure,
    askDeadlineMs: parseDuration(section.ask.deadline),
    askDefault: section.ask.default,
    waves: section.waves.length > 0 ? wavesOf(section.waves, components) : [],
  };
}
