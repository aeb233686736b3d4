// Who may do what through rewind's doors. The manifest's `api` section names principals (people
// and tools) and their roles, everywhere or per environment; tokens (./tokens.ts) say which
// principal is calling. Pure: the CLI, the API server and the tests all read it.
import { listenField } from '../manifest/fields';
import { z } from 'zod';

export const ROLES = ['viewer', 'operator', 'approver', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** What each action needs; admin may do everything, and every role may read. */
export const ACTIONS = {
  read: ['viewer', 'operator', 'approver', 'admin'],
  start: ['operator', 'admin'],
  cancel: ['operator', 'admin'],
  approve: ['approver', 'admin'],
  reject: ['approver', 'admin'],
  /** accept or compensate a failed verification that waits. */
  accept: ['approver', 'admin'],
  compensate: ['approver', 'admin'],
  scan: ['operator', 'admin'],
} as const satisfies Record<string, readonly Role[]>;
export type Action = keyof typeof ACTIONS;

const principalName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be 1 to 63 lowercase letters, digits, dots, dashes or underscores');

const roleList = z.array(z.enum(ROLES)).min(1);

export const principalSchema = z.strictObject({
  roles: roleList.optional().describe('Roles in every environment.'),
  environments: z
    .record(z.string(), roleList)
    .optional()
    .describe('Roles in one environment, added to `roles`: `{ production: [approver] }`.'),
  slackUserId: z
    .string()
    .regex(/^[UW][A-Z0-9]{2,20}$/, 'must be a Slack user id such as U024BE7LH')
    .optional()
    .describe("The principal's Slack user id, for approvals from Slack."),
});
export type Principal = z.output<typeof principalSchema>;

export const apiSectionSchema = z
  .strictObject({
    listen: listenField.default('127.0.0.1:8787').describe('Where `rewind api` listens.'),
    tokensFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Where `rewind tokens create` keeps the tokens, hashed. Relative to the manifest; default <dataDir>/api-tokens.json.',
      ),
    tokensEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be the name of an environment variable')
      .optional()
      .describe('Read the hashed tokens from this environment variable instead of the file (read-only).'),
    webUiUrl: z
      .url()
      .default('http://localhost:8233')
      .describe("The Temporal Web UI's address, for the links in answers."),
    principals: z.record(principalName, principalSchema).default({}),
  })
  .prefault({});
export type ApiSection = z.output<typeof apiSectionSchema>;

/** The roles a principal holds in an environment (or anywhere, without one). */
export function rolesOf(principal: Principal, environment?: string): Set<Role> {
  const roles = new Set<Role>(principal.roles ?? []);
  if (environment) for (const r of principal.environments?.[environment] ?? []) roles.add(r);
  return roles;
}

/**
 * Whether `name` may do `action` in `environment`: undefined when it may, else the reason,
 * which the API returns with a 403 and the audit log keeps.
 */
export function refusal(
  api: ApiSection,
  name: string,
  action: Action,
  environment: string | undefined,
): string | undefined {
  const principal = api.principals[name];
  if (!principal) return `${name} is not a principal of this manifest (api.principals)`;
  const held = rolesOf(principal, environment);
  const needed: readonly Role[] = ACTIONS[action];
  if (needed.some((r) => held.has(r))) return undefined;
  const where = environment ? ` in ${environment}` : '';
  const has = held.size ? `has ${[...held].join(', ')}` : 'has no role';
  return `${name} may not ${action}${where}: it takes ${needed.filter((r) => r !== 'admin').join(' or ')} (or admin), and ${name} ${has}${where}`;
}

/** The principal whose Slack user id this is. */
export function principalBySlackUser(api: ApiSection, slackUserId: string): string | undefined {
  return Object.entries(api.principals).find(([, p]) => p.slackUserId === slackUserId)?.[0];
}

/** A run's page in the Temporal Web UI, for every answer and message that names the run. */
export function webUiLink(
  manifest: { api: { webUiUrl: string }; temporal: { namespace: string } },
  workflowId: string,
): string {
  return `${manifest.api.webUiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(manifest.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
