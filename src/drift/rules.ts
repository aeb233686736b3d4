// The manifest's `drift` section and how its rules classify what a scan found. Pure: workflow
// code imports it. The first rule that matches a difference decides: it allows it (an expected
// per-environment value) or gives it a severity; a difference no rule matches gets the default
// severity, unless its kind gave it one (a dangerous pickle global is critical).
import { z } from 'zod';
import { SEVERITIES, type DriftDifference, type Severity } from '../components/drift';
import { durationField, nameField } from '../manifest/fields';

const glob = z
  .string()
  .min(1)
  .describe('A glob: * matches within one path segment (no /), ** matches anything, ? one character.');

export const driftRuleSchema = z
  .strictObject({
    name: z.string().min(1).optional().describe('Shown with the findings the rule classifies.'),
    component: glob.default('**').describe('Component name (glob).'),
    subject: glob
      .default('**')
      .describe(
        'What differs (glob): a path (`conf/app.yaml`), a key (`conf/app.yaml:database.host`), a schema object.',
      ),
    aspect: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Kind of difference: content, key, mode, schema, rows, sample, migration, pickle, pickle-global, version …',
      ),
    from: glob.optional().describe('Environment compared from (glob). Default: any.'),
    to: glob.optional().describe('Environment compared to (glob). Default: any.'),
    allow: z.boolean().optional().describe('The difference is expected: it is recorded as allowed, never alerted.'),
    severity: z.enum(SEVERITIES).optional(),
    autoFix: z
      .boolean()
      .default(false)
      .describe('rewind sync may bring this difference in line without asking for approval.'),
  })
  .refine((r) => (r.allow === true) !== (r.severity !== undefined), 'set exactly one of allow: true or severity');

export type DriftRule = z.output<typeof driftRuleSchema>;

const thresholdsSchema = z
  .strictObject({
    critical: z.int().min(0).default(1),
    warning: z.int().min(0).default(1),
    info: z.int().min(0).default(0),
  })
  .describe('Findings of each severity (not allowed) that raise an alert; 0 never alerts on that severity.');

export const driftPairSchema = z.strictObject({
  from: nameField,
  to: nameField,
  every: durationField('1m', '7d').default('1h').describe('How often the schedule scans this pair.'),
  thresholds: thresholdsSchema.prefault({}),
});

export const driftSectionSchema = z
  .strictObject({
    pairs: z
      .array(driftPairSchema)
      .optional()
      .describe('Environment pairs scanned. Default: production → regression when both exist.'),
    defaultSeverity: z.enum(SEVERITIES).default('warning').describe('Severity of a difference no rule matches.'),
    secretKeys: z
      .array(glob)
      .default([])
      .describe('Config keys (globs on dotted keys) whose values are secret, besides password, token, secret, key …'),
    rules: z.array(driftRuleSchema).default([]),
    slack: z
      .strictObject({
        channel: z.string().min(1),
        tokenEnv: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
          .default('SLACK_BOT_TOKEN'),
        apiUrl: z.url().optional().describe("Slack's Web API base URL (for a proxy). Default: https://slack.com/api/."),
      })
      .optional()
      .describe('Where drift alerts go.'),
    topFindings: z.int().min(1).max(50).default(10).describe('Findings named in an alert.'),
    historyBytes: z
      .int()
      .min(64 * 1024)
      .max(32 * 1024 * 1024)
      .default(8 * 1024 * 1024)
      .describe(
        "A scan's workflow continues as a new run of the same id once its history holds this many bytes (Temporal refuses a history past 50 MB); the scan goes on where it was.",
      ),
  })
  .prefault({});

export type DriftSection = z.output<typeof driftSectionSchema>;
export type DriftPair = z.output<typeof driftPairSchema>;

/** The pairs the manifest scans: its own list, or production → regression when both exist. */
export function driftPairs(section: DriftSection, environments: readonly string[]): DriftPair[] {
  if (section.pairs) return section.pairs;
  if (environments.includes('production') && environments.includes('regression'))
    return [driftPairSchema.parse({ from: 'production', to: 'regression' })];
  return [];
}

const globCache = new Map<string, RegExp>();

export function globMatches(pattern: string, value: string): boolean {
  let re = globCache.get(pattern);
  if (!re) {
    let source = '';
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern[i]!;
      if (c === '*' && pattern[i + 1] === '*') {
        source += '.*';
        i++;
      } else if (c === '*') source += '[^/]*';
      else if (c === '?') source += '[^/]';
      else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    re = new RegExp(`^${source}$`, 's');
    globCache.set(pattern, re);
  }
  return re.test(value);
}

export interface Classification {
  severity: Severity;
  allowed: boolean;
  autoFixable: boolean;
  /** `#2 per-environment hosts`: the rule's position (from 1) and name. */
  rule?: string;
}

export function classifyDrift(
  difference: DriftDifference & { component: string },
  pair: { from: string; to: string },
  section: Pick<DriftSection, 'rules' | 'defaultSeverity'>,
): Classification {
  for (const [i, rule] of section.rules.entries()) {
    if (!globMatches(rule.component, difference.component)) continue;
    if (!globMatches(rule.subject, difference.subject)) continue;
    if (rule.aspect !== undefined && rule.aspect !== difference.aspect) continue;
    if (rule.from !== undefined && !globMatches(rule.from, pair.from)) continue;
    if (rule.to !== undefined && !globMatches(rule.to, pair.to)) continue;
    // What the kind itself calls critical (a pickle that can run code) is allowed only by a rule
    // that names that aspect, never by a broad one.
    if (rule.allow && difference.severity === 'critical' && rule.aspect !== difference.aspect) continue;
    const label = `#${i + 1}${rule.name ? ` ${rule.name}` : ''}`;
    return {
      severity: rule.severity ?? difference.severity ?? section.defaultSeverity,
      allowed: rule.allow === true,
      autoFixable: rule.autoFix,
      rule: label,
    };
  }
  return { severity: difference.severity ?? section.defaultSeverity, allowed: false, autoFixable: false };
}

export const SEVERITY_RANK: Record<Severity, number> = { critical: 3, warning: 2, info: 1 };

/** Whether counts of findings not allowed cross the pair's thresholds. */
export function crossesThreshold(counts: Record<Severity, number>, thresholds: DriftPair['thresholds']): boolean {
  return SEVERITIES.some((s) => thresholds[s] > 0 && counts[s] >= thresholds[s]);
}
