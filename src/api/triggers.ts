// Alert-driven rollbacks (seed 6.4.1, 6.8.2): Alertmanager's webhook (payload version 4) is
// matched against the manifest's `triggers.rules`; a rule that matches firing alerts decides
// whether to roll back, by policy: only its severities (labels), only within N hours of the
// last deploy, at most one rollback per environment at a time. A rollback started this way still
// waits for a human approval, unless its rule says `autoApprove` (the workflow checks the rule
// again in decide). Every decision, also not to roll back, is recorded with its reason.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { CrossSection } from '../domain/cross-section';
import { keyedRollbackId, type RollbackTarget } from '../domain/rollback';
import { parseDuration } from '../manifest/duration';
import { durationField } from '../manifest/fields';

const envVar = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be the name of an environment variable');

export const triggerRuleSchema = z
  .strictObject({
    name: z.string().min(1).max(100),
    match: z
      .record(z.string().min(1), z.union([z.string(), z.array(z.string()).min(1)]))
      .refine((m) => Object.keys(m).length > 0, 'must name at least one label')
      .describe('Alert labels that must all match: a value, or any of several (`severity: [critical, page]`).'),
    environment: z.string().min(1).optional().describe('The environment to roll back.'),
    environmentLabel: z.string().min(1).optional().describe('Or: the alert label that names it.'),
    target: z
      .union([z.literal('previous-release'), z.strictObject({ version: z.string().min(1) })])
      .default('previous-release')
      .describe('previous-release: the newest cross-section whose version differs from the last deployed one.'),
    components: z.array(z.string().min(1)).min(1).optional(),
    withinHoursOfDeploy: z
      .number()
      .positive()
      .max(24 * 90)
      .optional()
      .describe('Roll back only this soon after the last deploy (the newest cross-section with a version).'),
    cooldown: durationField('0s', '7d')
      .default('1h')
      .describe(
        'After an alert group started a rollback, no other from the same group and environment for this long, even when its alerts change (another alert of the group firing, the first resolved). 0s: none.',
      ),
    autoApprove: z
      .boolean()
      .default(false)
      .describe(
        'Execute without waiting for a human: the rule approves its own rollback (recorded as `trigger rule <name>`). A plan that loses data still waits for a human unless acceptDataLoss is set too.',
      ),
    acceptDataLoss: z
      .boolean()
      .default(false)
      .describe(
        'With autoApprove: approve a plan that loses data (a database restore that drops writes since the snapshot).',
      ),
  })
  .refine((r) => (r.environment === undefined) !== (r.environmentLabel === undefined), {
    message: 'set environment or environmentLabel (one of them)',
  })
  .refine((r) => r.autoApprove || !r.acceptDataLoss, {
    message: 'acceptDataLoss applies only to a rule with autoApprove: true',
    path: ['acceptDataLoss'],
  });
export type TriggerRule = z.output<typeof triggerRuleSchema>;

export const triggersSectionSchema = z
  .strictObject({
    auth: z
      .strictObject({
        bearerTokenEnv: envVar.optional().describe("Variable holding the token Alertmanager's http_config sends."),
        basic: z.strictObject({ username: z.string().min(1), passwordEnv: envVar }).optional(),
      })
      .refine((a) => a.bearerTokenEnv !== undefined || a.basic !== undefined, 'set bearerTokenEnv or basic'),
    rules: z
      .array(triggerRuleSchema)
      .default([])
      .superRefine((rules, ctx) => {
        // The workflow finds a rule by its name again in decide: two of one name would be ambiguous.
        const seen = new Set<string>();
        rules.forEach((rule, i) => {
          if (seen.has(rule.name))
            ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `a second rule is named "${rule.name}"` });
          seen.add(rule.name);
        });
      }),
  })
  .optional()
  .describe('Alertmanager webhooks that may start rollbacks (POST /v1/webhooks/alertmanager).');
export type TriggersSection = z.output<typeof triggersSectionSchema>;

/** Alertmanager's webhook body, version 4 (the fields rewind reads; others pass). */
export const alertmanagerPayloadSchema = z.looseObject({
  version: z.literal('4'),
  groupKey: z.string().min(1).max(10_000),
  status: z.enum(['firing', 'resolved']),
  receiver: z.string().optional(),
  commonLabels: z.record(z.string(), z.string()).default({}),
  commonAnnotations: z.record(z.string(), z.string()).default({}),
  externalURL: z.string().optional(),
  alerts: z
    .array(
      z.looseObject({
        status: z.enum(['firing', 'resolved']),
        labels: z.record(z.string(), z.string()),
        annotations: z.record(z.string(), z.string()).default({}),
        startsAt: z.string(),
        fingerprint: z.string().optional(),
      }),
    )
    .max(1000),
});
export type AlertmanagerPayload = z.output<typeof alertmanagerPayloadSchema>;

export interface TriggerPlan {
  rule: string;
  environment: string;
  target: RollbackTarget;
  components?: string[];
  reason: string;
  /** The idempotency key: one rollback per alert group and firing episode. */
  requestId: string;
  /** Who approves: the rule itself (autoApprove), or humans. */
  approval: 'rule' | 'human';
  /** The alert group and environment, as the audit log records it for the cooldown. */
  group: string;
}

/** What the decisions need from outside: the environments, their releases, the group's last start. */
export interface TriggerFacts {
  environments: string[];
  /** An environment's cross-sections, newest first. */
  crossSections: (environment: string) => Promise<CrossSection[]>;
  /** The last rollback an alert group (TriggerPlan.group) started, if the audit log knows one. */
  lastStart?: (group: string) => Promise<{ at: Date; runId: string } | undefined>;
  /** The delivery's time. */
  now: Date;
}

export type TriggerDecision =
  | { rule: string; outcome: 'start'; plan: TriggerPlan }
  | { rule?: string; environment?: string; outcome: 'not rolled back'; reason: string };

const matches = (labels: Record<string, string>, match: TriggerRule['match']) =>
  Object.entries(match).every(([label, want]) =>
    Array.isArray(want) ? want.includes(labels[label] ?? '') : labels[label] === want,
  );

/** What each rule decides about one delivery. */
export async function decideTriggers(
  payload: AlertmanagerPayload,
  rules: TriggerRule[],
  facts: TriggerFacts,
): Promise<TriggerDecision[]> {
  const firing = payload.alerts.filter((a) => a.status === 'firing');
  if (firing.length === 0)
    return [{ outcome: 'not rolled back', reason: `the alert group is ${payload.status}, with no firing alert` }];
  const decisions: TriggerDecision[] = [];
  for (const rule of rules) {
    const matched = firing.filter((a) => matches(a.labels, rule.match));
    // One decision per environment the matching alerts name (a group may span several).
    const byEnvironment = new Map<string | undefined, typeof matched>();
    for (const alert of matched) {
      const environment = rule.environment ?? alert.labels[rule.environmentLabel!];
      byEnvironment.set(environment, [...(byEnvironment.get(environment) ?? []), alert]);
    }
    for (const [environment, alerts] of byEnvironment)
      decisions.push(await decideOne(payload, rule, environment, alerts, facts));
  }
  if (decisions.length === 0)
    decisions.push({
      outcome: 'not rolled back',
      reason: `no trigger rule matches the firing alerts (${firing
        .slice(0, 3)
        .map((a) =>
          Object.entries(a.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(','),
        )
        .join('; ')})`.slice(0, 500),
    });
  return decisions;
}

/** One rule's decision for one environment, from the alerts of the group that name it. */
async function decideOne(
  payload: AlertmanagerPayload,
  rule: TriggerRule,
  environment: string | undefined,
  alerts: AlertmanagerPayload['alerts'],
  facts: TriggerFacts,
): Promise<TriggerDecision> {
  const refuse = (reason: string): TriggerDecision => ({
    rule: rule.name,
    ...(environment ? { environment } : {}),
    outcome: 'not rolled back',
    reason,
  });
  if (!environment || !facts.environments.includes(environment))
    return refuse(`label ${rule.environmentLabel} names no environment of the manifest (${environment ?? 'absent'})`);
  const hash = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 32);
  const group = hash(`${payload.groupKey}\n${environment}`);
  const cooldownMs = parseDuration(rule.cooldown);
  // Asked now, read below: the repository and the audit log answer at once.
  const lastStart = cooldownMs > 0 ? facts.lastStart?.(group) : undefined;
  lastStart?.catch(() => undefined);
  const released = (await facts.crossSections(environment)).filter((x) => x.version !== undefined && x.complete);
  const last = released[0];
  if (rule.withinHoursOfDeploy !== undefined) {
    if (!last)
      return refuse(
        `no deploy of ${environment} is known (no cross-section with a version), and the rule acts only within ${rule.withinHoursOfDeploy} h of one`,
      );
    const age = facts.now.getTime() - Date.parse(last.time);
    if (age > rule.withinHoursOfDeploy * 3_600_000)
      return refuse(
        `the last deploy of ${environment} (${last.version} at ${last.time}) is ${(age / 3_600_000).toFixed(1)} h ago; the rule acts within ${rule.withinHoursOfDeploy} h`,
      );
  }
  let target: RollbackTarget;
  if (rule.target === 'previous-release') {
    const previous = released.find((x) => x.version !== last?.version);
    if (!last || !previous)
      return refuse(`${environment} has no release before ${last?.version ?? 'the current one'} to go back to`);
    target = { kind: 'version', version: previous.version! };
  } else target = { kind: 'version', version: rule.target.version };
  const episode = alerts.map((a) => a.startsAt).sort()[0]!;
  // One rollback per alert group, environment and firing episode.
  const requestId = `am-${hash(`${payload.groupKey}\n${environment}\n${episode}`)}`;
  // The episode is the earliest firing alert: when it resolves and another of the group still
  // fires, the episode moves. The cooldown keeps that from starting a second rollback.
  const started = await lastStart;
  if (
    started &&
    started.runId !== keyedRollbackId(environment, requestId) &&
    facts.now.getTime() - started.at.getTime() < cooldownMs
  )
    return refuse(
      `this alert group started ${started.runId} at ${started.at.toISOString()}; rule ${rule.name} starts at most one rollback per alert group within ${rule.cooldown} (cooldown)`,
    );
  const name = alerts[0]!.labels.alertname ?? rule.name;
  const summary = alerts[0]!.annotations.summary ?? payload.commonAnnotations.summary ?? '';
  return {
    rule: rule.name,
    outcome: 'start',
    plan: {
      rule: rule.name,
      environment,
      target,
      ...(rule.components ? { components: rule.components } : {}),
      reason: `alert ${name}${summary ? `: ${summary}` : ''} (rule ${rule.name})`.slice(0, 500),
      approval: rule.autoApprove ? 'rule' : 'human',
      requestId,
      group,
    },
  };
}
