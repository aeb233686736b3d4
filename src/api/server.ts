// rewind's HTTP API: the door for incident tooling and for operators who are not given
// Temporal itself. Every caller is a principal with a bearer token; the actor of every start,
// decision and cancellation is that principal, never something the body says. Bodies are
// validated by the same zod schemas the OpenAPI document at /openapi.json is made from, and
// every answer that names a run links to it in the Temporal Web UI.
import { Registry } from 'prom-client';
import { defineMetric, processMetricsRegistry } from '../metrics/registry';
import { renderMetrics } from '../metrics/server';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { WorkflowNotFoundError } from '@temporalio/client';
import { appendAudit, planEvidence, type AuditEntry } from '../audit/audit-log';
import { RequestError, type RewindClient } from '../client/client';
import { driftScanRequestSchema } from '../domain/drift-scan';
import { requestIdSchema, rollbackRequestSchema } from '../domain/rollback';
import { findScan, scanFindings } from '../drift/report';
import type { CrossSection } from '../domain/cross-section';
import type { DecisionOutcome } from '../domain/messages';
import type { Manifest } from '../manifest/schema';
import type { ProjectStore } from '../store/project-store';
import { principalBySlackUser, refusal, webUiLink, type Action } from './access';
import { slackRequestRefusal, SeenSignatures } from './slack-signature';
import { Recent } from './recent';
import { alertmanagerPayloadSchema, decideTriggers } from './triggers';
import { APPROVE_ACTION, REJECT_ACTION } from '../notify/rollback-slack';
import { checkToken, type TokenRecord } from './tokens';

export interface ApiDeps {
  manifest: Manifest;
  client: RewindClient;
  projectStore: () => Promise<ProjectStore>;
  /** The audit log's key (audit-log.ts auditKey). */
  auditKey: Buffer;
  /** The current tokens; called per request, so a revoked token stops working at once. */
  tokens: () => TokenRecord[];
  logger: Logger;
  /** Where the Slack signing secret and the webhook credentials are read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** An environment's cross-sections, newest first (the snapshot store's), for alert triggers. */
  crossSections?: (environment: string) => Promise<CrossSection[]>;
}

/** A refusal with its HTTP status: every error answer is `{ error, reason }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly reason: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(reason);
  }
}

// ---- request bodies: the API's contract, and the source of the OpenAPI document ----

const ignoredActor = z.unknown().optional().describe("Ignored: the actor is the token's principal.");

// triggerRule is the webhook's to set (a rule may approve its own run): not a caller's.
export const startRollbackBody = rollbackRequestSchema
  .omit({ requester: true, manifestDigest: true, triggerRule: true })
  .extend({ requester: ignoredActor });
export const approveBody = z.strictObject({
  comment: z.string().max(500).optional(),
  acceptDataLoss: z.boolean().optional().describe('Approve a plan that loses data (the plan says when it does).'),
  user: ignoredActor,
});
export const rejectBody = z.strictObject({ comment: z.string().max(500).optional(), user: ignoredActor });
export const cancelBody = z.strictObject({ reason: z.string().max(500).optional(), user: ignoredActor });
export const driftScanBody = driftScanRequestSchema
  .omit({ requestedBy: true })
  .extend({ requestedBy: ignoredActor, trigger: driftScanRequestSchema.shape.trigger.default('api') });

const runId = z.string().regex(/^[A-Za-z0-9._:-]{1,200}$/, 'must be a run id such as rollback-production-…');
const listQuery = z.strictObject({
  environment: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(20),
});

function parse<S extends z.ZodType>(schema: S, input: unknown, where: string): z.output<S> {
  // No body at all is an empty one; a body of `null` is not.
  const parsed = schema.safeParse(input === undefined ? {} : input);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({ path: [where, ...i.path].join('.'), message: i.message }));
  throw new ApiError(400, 'invalid request', `${issues[0]!.path}: ${issues[0]!.message}`, { issues });
}

function idempotencyKey(request: FastifyRequest): string | undefined {
  const value = request.headers['idempotency-key'];
  if (value === undefined) return undefined;
  const parsed = requestIdSchema.safeParse(Array.isArray(value) ? value[0] : value);
  if (!parsed.success)
    throw new ApiError(400, 'invalid request', `Idempotency-Key header: ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

export async function createApiServer(deps: ApiDeps): Promise<FastifyInstance> {
  const { manifest, client } = deps;
  const app = Fastify({ bodyLimit: 256 * 1024, logger: false });
  // This server's own: a second server in one process (tests) counts apart.
  const httpMetrics = new Registry();
  const webUi = (workflowId: string) => webUiLink(manifest, workflowId);

  const audit = async (entry: AuditEntry) => {
    try {
      await appendAudit(await deps.projectStore(), deps.auditKey, entry);
    } catch (err) {
      // An action that happened is not undone because its record could not be written; the
      // log says so loudly, and /readyz reports the store.
      deps.logger.error({ err, action: entry.action, runId: entry.runId }, 'could not write the audit log');
    }
  };

  /** The caller's principal, or a 401. */
  const principalOf = (request: FastifyRequest): string => {
    const header = request.headers.authorization;
    const bearer = header?.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : undefined;
    const checked = checkToken(deps.tokens(), header && !bearer ? 'malformed' : bearer);
    if ('refused' in checked)
      throw new ApiError(
        401,
        'unauthorized',
        header && !bearer ? 'expected Authorization: Bearer <token>' : checked.refused,
      );
    return checked.principal;
  };

  /** The caller's principal, or a 401, audited unless the caller only wanted to read. */
  const authenticate = async (request: FastifyRequest, action: Action): Promise<string> => {
    try {
      return principalOf(request);
    } catch (err) {
      if (err instanceof ApiError && action !== 'read')
        await audit({
          actor: 'unknown',
          door: 'api',
          action: 'auth.refused',
          outcome: 'refused',
          reason: err.reason,
          detail: { attempted: action, status: err.status, path: request.url.split('?')[0] },
        });
      throw err;
    }
  };

  /** A caller's Idempotency-Key, scoped to the caller and what it asks: no one can borrow another's. */
  const scopedKey = (prefix: string, who: string, key: string) =>
    `${prefix}-${createHash('sha256').update(`${who}\n${key}`).digest('hex').slice(0, 32)}`;

  /**
   * Authenticates and authorises one request; refusals of anything but a read are audited.
   * `environment` may need the run (approve names a run, not an environment).
   */
  const authorize = async (
    request: FastifyRequest,
    action: Action,
    environment: string | undefined,
    runId?: string,
  ): Promise<string> => {
    let who = 'anonymous';
    try {
      who = principalOf(request);
      const reason = refusal(manifest.api, who, action, environment);
      if (reason) throw new ApiError(403, 'forbidden', reason);
      return who;
    } catch (err) {
      if (err instanceof ApiError && action !== 'read')
        await audit({
          actor: who,
          door: 'api',
          action: `auth.refused`,
          outcome: 'refused',
          reason: err.reason,
          ...(runId ? { runId } : {}),
          ...(environment ? { environment } : {}),
          detail: { attempted: action, status: err.status },
        });
      throw err;
    }
  };

  /**
   * The run, when the caller may see it. A run in an environment the caller may not read is
   * answered as one that does not exist (404, the same words), so that ids cannot be probed;
   * the refusal of anything but a read is audited with the truth.
   */
  const runOf = async (request: FastifyRequest, id: string, action: Action) => {
    const notFound = new ApiError(404, 'not found', `no rollback ${id}`);
    let view;
    try {
      view = await client.rollbackView(id);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || err instanceof RequestError) throw notFound;
      throw err;
    }
    const who = principalOf(request);
    const hidden = refusal(manifest.api, who, 'read', view.status.environment);
    if (hidden) {
      if (action !== 'read')
        await audit({
          actor: who,
          door: 'api',
          action: 'auth.refused',
          outcome: 'refused',
          reason: hidden,
          runId: id,
          environment: view.status.environment,
          detail: { attempted: action, status: 404 },
        });
      throw notFound;
    }
    return view;
  };

  app.setErrorHandler((err: unknown, request, reply) => {
    if (err instanceof ApiError)
      return reply.code(err.status).send({ error: err.error, reason: err.reason, ...err.extra });
    if (err instanceof RequestError) return reply.code(400).send({ error: 'invalid request', reason: err.message });
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500)
      return reply.code(status).send({ error: 'invalid request', reason: (err as Error).message });
    // The detail (hosts, paths, a server's words) goes to the log, not to the caller.
    deps.logger.error({ err, requestId: request.id }, 'API request failed');
    return reply.code(500).send({ error: 'internal error', reason: `see the API log, request ${request.id}` });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: 'not found', reason: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );
  const httpRequests = defineMetric(httpMetrics, 'httpRequests');
  const httpDuration = defineMetric(httpMetrics, 'httpDuration');
  app.addHook('onResponse', async (request, reply) => {
    // By route pattern, not path: a run id in the path would make a series per run.
    const route = request.routeOptions.url ?? 'unmatched';
    httpRequests.inc({ route, method: request.method, status: String(reply.statusCode) });
    httpDuration.observe({ route, method: request.method }, reply.elapsedTime / 1000);
    deps.logger.info(
      {
        method: request.method,
        path: request.url.split('?')[0],
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'api request',
    );
  });

  app.get('/healthz', (_request, reply) => reply.send({ ok: true }));

  // Prometheus's scrape, unauthenticated like /healthz: counts and durations, never run details.
  app.get('/metrics', async (_request, reply) => {
    const { contentType, body } = await renderMetrics([
      { registry: processMetricsRegistry() },
      { registry: httpMetrics },
    ]);
    return reply.type(contentType).send(body);
  });

  app.get('/readyz', async (_request, reply: FastifyReply) => {
    // Anyone may ask, so the answer says what is down, and the log says why.
    const check = async (name: string, what: () => Promise<unknown>) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          what(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('no answer within 2 s')), 2_000);
          }),
        ]);
        return { ok: true };
      } catch (err) {
        deps.logger.warn({ err, check: name }, 'not ready');
        return { ok: false, reason: `${name} does not answer (see the API log)` };
      } finally {
        clearTimeout(timer);
      }
    };
    const [temporal, store] = await Promise.all([
      check('Temporal', () => client.client.workflowService.getSystemInfo({})),
      check('the project store', async () => (await deps.projectStore()).query('SELECT 1')),
    ]);
    return reply.code(temporal.ok && store.ok ? 200 : 503).send({ ok: temporal.ok && store.ok, temporal, store });
  });

  const document = openApiDocument();
  app.get('/openapi.json', (_request, reply) => reply.send(document));

  // Each route authenticates before it reads the body: a caller without a token learns nothing
  // of what a valid request looks like.
  app.post('/v1/rollbacks', async (request, reply) => {
    await authenticate(request, 'start');
    const body = parse(startRollbackBody, request.body, 'body');
    const key = idempotencyKey(request);
    const who = await authorize(request, 'start', body.environment);
    const { requester: claimed, ...rest } = body;
    const entry = {
      actor: who,
      door: 'api' as const,
      action: 'rollback.start',
      environment: body.environment,
      detail: {
        target: body.target,
        dryRun: body.dryRun,
        ...(typeof claimed === 'string' && claimed !== who ? { claimedRequester: claimed.slice(0, 100) } : {}),
        ...(key ? { idempotencyKey: key } : {}),
      },
    };
    try {
      const started = await client.startRollback(
        { ...rest, requester: who },
        key ? { requestId: scopedKey('api', who, key) } : {},
      );
      await audit({ ...entry, outcome: 'accepted', runId: started.workflowId });
      return reply.code(started.existing ? 200 : 202).send({
        workflowId: started.workflowId,
        existing: started.existing,
        environment: body.environment,
        requester: who,
        webUi: webUi(started.workflowId),
        status: `/v1/rollbacks/${started.workflowId}`,
      });
    } catch (err) {
      if (err instanceof RequestError) {
        await audit({ ...entry, outcome: 'refused', reason: err.message });
        throw new ApiError(409, 'refused', err.message);
      }
      throw err;
    }
  });

  app.get('/v1/rollbacks', async (request) => {
    principalOf(request);
    const query = parse(listQuery, request.query, 'query');
    await authorize(request, 'read', query.environment);
    let runs;
    try {
      runs = await client.listRollbacks(query.environment, query.limit);
    } catch (err) {
      if (err instanceof RequestError) throw new ApiError(400, 'invalid request', `query.environment: ${err.message}`);
      throw err;
    }
    return { runs: runs.map((r) => ({ ...r, webUi: webUi(r.workflowId) })) };
  });

  app.get('/v1/rollbacks/:id', async (request) => {
    principalOf(request);
    const id = parse(runId, (request.params as { id: string }).id, 'id');
    const view = await runOf(request, id, 'read');
    return { ...view, webUi: webUi(id) };
  });

  const decision = (action: 'approve' | 'reject' | 'accept' | 'compensate' | 'cancel', schema: z.ZodType) =>
    app.post(`/v1/rollbacks/:id/${action}`, async (request) => {
      await authenticate(request, action);
      const id = parse(runId, (request.params as { id: string }).id, 'id');
      const body = parse(schema, request.body, 'body') as {
        comment?: string;
        reason?: string;
        acceptDataLoss?: boolean;
        user?: unknown;
      };
      const given = idempotencyKey(request);
      const view = await runOf(request, id, action);
      const environment = view.status.environment;
      const who = await authorize(request, action, environment, id);
      const key = given ? scopedKey(action, who, given) : randomUUID();
      const entry = {
        actor: who,
        door: 'api' as const,
        action: `rollback.${action}`,
        runId: id,
        environment,
        ...(view.status.plan ? { evidence: { plan: planEvidence(view.status.plan) } } : {}),
        detail: {
          requestId: key,
          ...(typeof body.user === 'string' && body.user !== who ? { claimedUser: body.user.slice(0, 100) } : {}),
        },
      };
      let outcome;
      try {
        outcome =
          action === 'cancel'
            ? await client.cancel(id, { user: who, requestId: key, ...(body.reason ? { reason: body.reason } : {}) })
            : await client.decide(id, action, {
                user: who,
                requestId: key,
                ...(body.comment ? { comment: body.comment } : {}),
                ...(body.acceptDataLoss ? { acceptDataLoss: true } : {}),
              });
      } catch (err) {
        if (err instanceof RequestError) {
          await audit({ ...entry, outcome: 'refused', reason: err.message });
          throw new ApiError(409, 'refused', err.message, { webUi: webUi(id) });
        }
        throw err;
      }
      await audit({
        ...entry,
        outcome: outcome.accepted ? 'accepted' : 'refused',
        ...(outcome.reason ? { reason: outcome.reason } : {}),
      });
      if (!outcome.accepted)
        throw new ApiError(409, 'refused', outcome.reason ?? 'refused', { ...outcome, webUi: webUi(id) });
      return { ...outcome, webUi: webUi(id) };
    });
  decision('approve', approveBody);
  decision('reject', rejectBody);
  decision('cancel', cancelBody);
  decision('accept', rejectBody);
  decision('compensate', rejectBody);

  app.post('/v1/drift-scans', async (request, reply) => {
    await authenticate(request, 'scan');
    const body = parse(driftScanBody, request.body, 'body');
    const who = await authorize(request, 'scan', body.to);
    const { requestedBy: _claimed, ...rest } = body;
    try {
      const started = await client.startDriftScan({ ...rest, requestedBy: who });
      await audit({
        actor: who,
        door: 'api',
        action: 'drift.scan',
        outcome: 'accepted',
        runId: started.workflowId,
        environment: started.to,
        detail: {
          from: started.from,
          attached: started.attached,
          ...(started.scanId ? { scanId: started.scanId } : {}),
        },
      });
      return reply.code(202).send({ ...started, webUi: webUi(started.workflowId) });
    } catch (err) {
      if (err instanceof RequestError) throw new ApiError(400, 'invalid request', `body: ${err.message}`);
      throw err;
    }
  });

  // A Slack click names a run its channel already shows: no need to hide it there.
  registerSlackInteractions(app, deps, { audit, runOf: (id: string) => client.rollbackView(id) });
  registerAlertmanagerWebhook(app, deps, { audit, webUi });

  app.get('/v1/drift-reports/:id', async (request) => {
    principalOf(request);
    const id = parse(
      z.string().regex(/^([0-9a-f-]{1,40}|latest)$/, 'must be a scan id such as 20261129-154301-3fa2c9, or latest'),
      (request.params as { id: string }).id,
      'id',
    );
    const store = await deps.projectStore();
    const scan = await findScan(store, id);
    // A scan of an environment the caller may not read is answered as one that does not exist.
    if (!scan || refusal(manifest.api, principalOf(request), 'read', scan.to))
      throw new ApiError(404, 'not found', `no drift scan ${id}`);
    const [alert] = await store.query<{ kind: 'alert' | 'resolved'; reason: string | null }>(
      'SELECT kind, reason FROM drift_alerts WHERE scan_id = $1',
      [scan.id],
    );
    return {
      scan,
      findings: await scanFindings(store, scan.id),
      // What the scan sent to Slack, if anything (a scan that sent nothing has none).
      alert: alert ? { sent: alert.kind, reason: alert.reason ?? '' } : null,
      webUi: webUi(scan.workflowId),
    };
  });

  return app;
}

interface SlackAction {
  action_id?: string;
  value?: string;
  action_ts?: string;
}
interface SlackInteraction {
  type?: string;
  user?: { id?: string; username?: string };
  actions?: SlackAction[];
  response_url?: string;
}

/**
 * `POST /v1/slack/interactions`: the Approve and Reject buttons. The request must be signed by
 * Slack; the Slack user must be a principal (api.principals.<name>.slackUserId) with the role;
 * the run's own rules apply through the same Update as every other door, whose id is the
 * click's, so a click delivered twice counts once. Slack gets its 200 within 3 seconds; a
 * refusal is said to the clicker alone (an ephemeral reply through the response_url).
 */
function registerSlackInteractions(
  app: FastifyInstance,
  deps: ApiDeps,
  helpers: {
    audit: (entry: AuditEntry) => Promise<void>;
    runOf: (id: string) => Promise<{ status: { environment: string; plan?: unknown } }>;
  },
): void {
  const { manifest, client } = deps;
  const seen = new SeenSignatures();
  // Decisions still being made when the server closes are waited for, not dropped.
  const inFlight = new Set<Promise<void>>();
  const decisions = new Limiter(4);
  // A burst of clicks on one run reads it once (a status query each would load the worker): its
  // environment never changes, nor its plan once it awaits approval.
  const views = new Recent<{ status: { environment: string; plan?: unknown } }>(2_000);
  // Clicks of one principal on the same button of one run, while the first is decided or within
  // seconds after it counted, share that decision: a burst of them (double clicks, an impatient
  // approver) costs the run one Update, and each later click hears it already counted. A refusal
  // is not kept: a click a moment later may be decided otherwise (the plan became ready).
  const counted = new Recent<DecisionOutcome>(5_000);
  app.addHook('onClose', async () => {
    await Promise.allSettled([...inFlight]);
  });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) =>
    done(null, body),
  );

  /** Replies to the clicker alone; only to Slack's own hosts (or the configured API's, for tests). */
  const replyPrivately = async (responseUrl: string | undefined, text: string) => {
    if (!responseUrl) return;
    const allowed = new Set(['https://hooks.slack.com']);
    if (manifest.slack?.apiUrl) allowed.add(new URL(manifest.slack.apiUrl).origin);
    let url: URL;
    try {
      url = new URL(responseUrl);
    } catch {
      return;
    }
    if (!allowed.has(url.origin)) {
      deps.logger.warn({ origin: url.origin }, 'a Slack response_url outside Slack; not answered');
      return;
    }
    await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ response_type: 'ephemeral', replace_original: false, text }),
      signal: AbortSignal.timeout(5_000),
    }).catch((err: unknown) => deps.logger.warn({ err }, 'could not answer in Slack'));
  };

  app.post('/v1/slack/interactions', async (request, reply) => {
    const env = deps.env ?? process.env;
    const secretEnv = manifest.slack?.signingSecretEnv;
    const secret = secretEnv ? env[secretEnv] : undefined;
    if (!secret)
      throw new ApiError(
        503,
        'not configured',
        `Slack interactions need the manifest's slack section and the signing secret in ${secretEnv ?? 'SLACK_SIGNING_SECRET'}`,
      );
    const body = typeof request.body === 'string' ? request.body : '';
    const header = (name: string) => {
      const value = request.headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    const forged = slackRequestRefusal({
      secret,
      timestamp: header('x-slack-request-timestamp'),
      signature: header('x-slack-signature'),
      body,
      seen,
    });
    if (forged) {
      await helpers.audit(unauthenticated('slack', forged));
      throw new ApiError(401, 'unauthorized', forged);
    }
    let interaction: SlackInteraction;
    try {
      interaction = JSON.parse(new URLSearchParams(body).get('payload') ?? '') as SlackInteraction;
    } catch {
      throw new ApiError(400, 'invalid request', 'body.payload: expected the JSON of a Slack interaction');
    }
    const click = interaction.actions?.[0];
    const action =
      click?.action_id === APPROVE_ACTION ? 'approve' : click?.action_id === REJECT_ACTION ? 'reject' : undefined;
    // Not one of ours (another app's button, a shortcut): acknowledged, nothing done.
    if (interaction.type !== 'block_actions' || !action || !click?.value) return reply.code(200).send();
    const workflowId = click.value;
    const slackUser = interaction.user?.id ?? '';

    // After the acknowledgement has gone out, a few at a time: a burst of clicks is answered
    // first and decided after, without the decisions crowding out the acknowledgements.
    const work: Promise<void> = decisions
      .run(async () => {
        const who = principalBySlackUser(manifest.api, slackUser);
        const entry = {
          door: 'slack' as const,
          action: `rollback.${action}`,
          runId: workflowId,
          detail: { slackUser, ...(click.action_ts ? { actionTs: click.action_ts } : {}) },
        };
        const refuse = async (actor: string, reason: string, environment?: string) => {
          await helpers.audit({ ...entry, actor, outcome: 'refused', reason, ...(environment ? { environment } : {}) });
          await replyPrivately(interaction.response_url, `:no_entry: Not ${action}d: ${reason}`);
        };
        if (!who)
          return refuse(
            `slack:${slackUser}`,
            `your Slack user (${slackUser}) is not a rewind principal: an admin sets api.principals.<name>.slackUserId`,
          );
        let view;
        try {
          view = await views.get(workflowId, () => helpers.runOf(workflowId));
        } catch {
          return refuse(who, `no rollback ${workflowId}`);
        }
        const environment = view.status.environment;
        const denied = refusal(manifest.api, who, action, environment);
        if (denied) return refuse(who, denied, environment);
        let first = false;
        try {
          await counted.get(`${workflowId}\0${who}\0${action}`, async () => {
            first = true;
            const decided = await client.decide(workflowId, action, {
              user: who,
              // The click's own id: Slack delivering it twice, or a retry, counts once.
              requestId:
                `slack-${slackUser}-${(click.action_ts ?? randomUUID()).replace(/[^0-9A-Za-z._:-]/g, '')}`.slice(0, 80),
            });
            if (!decided.accepted) throw new NotCounted(decided);
            return decided;
          });
        } catch (err) {
          if (err instanceof NotCounted) return refuse(who, err.outcome.reason ?? 'refused', environment);
          // The clicker hears that it did not count, and why.
          return refuse(who, `could not ${action}: ${(err as Error).message}`.slice(0, 500), environment);
        }
        if (!first)
          return refuse(
            who,
            action === 'approve' ? `${who} has already approved` : `${who} has already rejected this rollback`,
            environment,
          );
        await helpers.audit({
          ...entry,
          actor: who,
          outcome: 'accepted',
          environment,
          ...(view.status.plan ? { evidence: { plan: planEvidence(view.status.plan) } } : {}),
        });
      })
      .catch((err: unknown) => deps.logger.error({ err, workflowId }, 'a Slack interaction failed'));
    // Slack wants its answer within 3 s, and a burst of clicks on one run waits its turn for
    // the run's Updates: acknowledge the signed click now, decide after; what the clicker
    // needs to know comes as a reply (a refusal) or in the run's message (the decision).
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
    return reply.code(200).send();
  });
}

/** A decision the run refused, as what the clicks that shared it hear. */
class NotCounted extends Error {
  constructor(readonly outcome: DecisionOutcome) {
    super(outcome.reason ?? 'refused');
  }
}

/** Runs tasks a few at a time, each after the current event-loop turn. */
class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

/** The audit record of a request that did not prove who sent it. */
function unauthenticated(door: AuditEntry['door'], reason: string): AuditEntry {
  return { actor: 'unknown', door, action: 'auth.refused', outcome: 'refused', reason };
}

/** Constant-time equality of two strings (of any lengths). */
function sameSecret(given: string, expected: string): boolean {
  // Equal-length digests, so that timingSafeEqual takes them whatever the strings' lengths.
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * `POST /v1/webhooks/alertmanager`: Alertmanager's webhook, authenticated by the bearer token
 * or basic credentials its `http_config` sends. Each matching rule decides by the manifest's
 * policy; a start is keyed by the alert group and its firing episode, so duplicate deliveries
 * (Alertmanager retries, HA pairs, repeat_interval) attach to the same run. Always 200 once
 * authenticated and well-formed, decisions not to roll back included: a retry would decide the same.
 */
function registerAlertmanagerWebhook(
  app: FastifyInstance,
  deps: ApiDeps,
  helpers: { audit: (entry: AuditEntry) => Promise<void>; webUi: (id: string) => string },
): void {
  const { manifest, client } = deps;
  // A burst of deliveries reads the repository once, not once each.
  const releases = new Recent<CrossSection[]>(5_000);
  const crossSections = (environment: string): Promise<CrossSection[]> =>
    releases.get(environment, () =>
      (deps.crossSections?.(environment) ?? Promise.resolve([])).then((all) =>
        all.filter((x) => x.origin !== 'safety' && x.origin !== 'dry-run'),
      ),
    );

  /**
   * The last rollback an alert group started, from the audit log (for the rules' cooldown); a
   * burst asks once. Within the few seconds an answer is kept, deliveries of the same firing
   * episode attach to its run by its key anyway.
   */
  const lastStarts = new Recent<{ at: Date; runId: string } | undefined>(5_000);
  const lastStart = (group: string) => lastStarts.get(group, () => readLastStart(group));
  const readLastStart = async (group: string) => {
    try {
      const [row] = await (
        await deps.projectStore()
      ).query<{ at: Date | string; run_id: string }>(
        `SELECT at, run_id FROM audit_log
          WHERE door = 'alertmanager' AND action = 'rollback.start' AND outcome = 'accepted' AND detail->>'group' = $1
          ORDER BY seq DESC LIMIT 1`,
        [group],
      );
      return row ? { at: new Date(row.at), runId: row.run_id } : undefined;
    } catch (err) {
      // Without the store the episode key alone keeps duplicates to one run.
      deps.logger.warn({ err }, 'the audit log could not be read for the cooldown');
      return undefined;
    }
  };

  // Deliveries of one alert group in this process, racing or within seconds of each other,
  // share one start: the first says `started`, the others `attached` (Temporal starts one run
  // either way; this spares each duplicate its round trips).
  const starts = new Recent<{ workflowId: string; existing: boolean }>(5_000);
  const startOnce = (requestId: string, start: () => Promise<{ workflowId: string; existing: boolean }>) => {
    let first = false;
    const started = starts.get(requestId, () => {
      first = true;
      return start();
    });
    return first ? started : started.then((r) => ({ ...r, existing: true }));
  };

  const credentialsRefusal = (authorization: string | undefined): string | undefined => {
    const auth = manifest.triggers!.auth;
    const env = deps.env ?? process.env;
    if (!authorization) return 'no credentials (Authorization header)';
    if (auth.bearerTokenEnv && authorization.startsWith('Bearer ')) {
      const expected = env[auth.bearerTokenEnv];
      if (!expected) return `the webhook token is not set (${auth.bearerTokenEnv})`;
      return sameSecret(authorization.slice('Bearer '.length), expected) ? undefined : 'wrong bearer token';
    }
    if (auth.basic && authorization.startsWith('Basic ')) {
      const expected = env[auth.basic.passwordEnv];
      if (!expected) return `the webhook password is not set (${auth.basic.passwordEnv})`;
      const decoded = Buffer.from(authorization.slice('Basic '.length), 'base64').toString('utf8');
      return sameSecret(decoded, `${auth.basic.username}:${expected}`) ? undefined : 'wrong basic credentials';
    }
    return `expected ${auth.bearerTokenEnv ? 'Bearer' : 'Basic'} credentials`;
  };

  app.post('/v1/webhooks/alertmanager', async (request) => {
    if (!manifest.triggers)
      throw new ApiError(503, 'not configured', "alert triggers need the manifest's triggers section");
    const refused = credentialsRefusal(request.headers.authorization);
    if (refused) {
      await helpers.audit(unauthenticated('alertmanager', refused));
      throw new ApiError(401, 'unauthorized', refused);
    }
    const payload = parse(alertmanagerPayloadSchema, request.body, 'body');
    const decisions = await decideTriggers(payload, manifest.triggers.rules, {
      environments: Object.keys(manifest.environments),
      crossSections,
      lastStart,
      now: new Date(),
    });
    const answers = [];
    for (const decision of decisions) {
      const entry = {
        actor: 'alertmanager',
        door: 'alertmanager' as const,
        action: 'trigger.decision',
        detail: {
          ...(decision.rule ? { rule: decision.rule } : {}),
          alerts: payload.alerts.length,
          status: payload.status,
        },
      };
      if (decision.outcome !== 'start') {
        await helpers.audit({
          ...entry,
          outcome: 'refused',
          reason: decision.reason,
          ...(decision.environment ? { environment: decision.environment } : {}),
        });
        answers.push(decision);
        continue;
      }
      const { plan } = decision;
      try {
        const started = await startOnce(plan.requestId, () =>
          client.startRollback(
            {
              environment: plan.environment,
              target: plan.target,
              ...(plan.components ? { components: plan.components } : {}),
              reason: plan.reason,
              requester: 'alertmanager',
              trigger: 'alert',
              triggerRule: plan.rule,
            },
            { requestId: plan.requestId },
          ),
        );
        // A duplicate delivery finds the run its group started: nothing new to record.
        if (!started.existing) {
          lastStarts.set(plan.group, Promise.resolve({ at: new Date(), runId: started.workflowId }));
          await helpers.audit({
            ...entry,
            action: 'rollback.start',
            outcome: 'accepted',
            runId: started.workflowId,
            environment: plan.environment,
            reason: plan.reason,
            detail: { ...entry.detail, approval: plan.approval, group: plan.group },
          });
        }
        answers.push({
          rule: decision.rule,
          environment: plan.environment,
          outcome: started.existing ? 'attached' : 'started',
          workflowId: started.workflowId,
          target: plan.target,
          approval: plan.approval,
          webUi: helpers.webUi(started.workflowId),
        });
      } catch (err) {
        if (!(err instanceof RequestError)) throw err;
        await helpers.audit({ ...entry, outcome: 'refused', reason: err.message, environment: plan.environment });
        answers.push({
          rule: decision.rule,
          environment: plan.environment,
          outcome: 'not rolled back',
          reason: err.message,
        });
      }
    }
    return { decisions: answers };
  });
}

/** OpenAPI 3.1, from the same zod schemas that validate the requests. */
export function openApiDocument(): Record<string, unknown> {
  const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
  const error = {
    description: 'refused: `{ error, reason }`',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  };
  const errors = { '400': error, '401': error, '403': error, '404': error, '409': error };
  const json = (s: z.ZodType) => ({ required: false, content: { 'application/json': { schema: schema(s) } } });
  const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
  const keyHeader = {
    name: 'Idempotency-Key',
    in: 'header',
    required: false,
    schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,80}$' },
    description: 'The same key names the same run (start) or counts once (decisions).',
  };
  const ok = (description: string) => ({
    description,
    content: { 'application/json': { schema: { type: 'object' } } },
  });
  const decisionPath = (what: string, body: z.ZodType) => ({
    post: {
      summary: `${what} a rollback; the actor is the token's principal`,
      parameters: [idParam, keyHeader],
      requestBody: json(body),
      responses: { '200': ok('accepted: where the run is now, with its Web UI link'), ...errors },
    },
  });
  return {
    openapi: '3.1.0',
    info: { title: 'rewind API', version: '1' },
    security: [{ bearer: [] }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'rwd_<id>_<secret> (rewind tokens create)' },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['error', 'reason'],
          properties: { error: { type: 'string' }, reason: { type: 'string' } },
        },
      },
    },
    paths: {
      '/healthz': { get: { security: [], summary: 'the server is up', responses: { '200': ok('up') } } },
      '/metrics': {
        get: {
          security: [],
          summary: "Prometheus metrics: the API's requests and the process",
          responses: { '200': { description: 'Prometheus text format' } },
        },
      },
      '/readyz': {
        get: {
          security: [],
          summary: 'Temporal and the project store answer',
          responses: { '200': ok('ready'), '503': ok('not ready') },
        },
      },
      '/v1/rollbacks': {
        post: {
          summary: 'start a rollback (operator); an Idempotency-Key makes repeats find the same run',
          parameters: [keyHeader],
          requestBody: { ...json(startRollbackBody), required: true },
          responses: { '202': ok('started'), '200': ok('the run this key names already exists'), ...errors },
        },
        get: {
          summary: 'recent rollbacks (viewer)',
          parameters: [
            { name: 'environment', in: 'query', required: false, schema: { type: 'string' } },
            { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 200 } },
          ],
          responses: { '200': ok('runs'), ...errors },
        },
      },
      '/v1/rollbacks/{id}': {
        get: {
          summary: "a rollback's status (viewer)",
          parameters: [idParam],
          responses: { '200': ok('status'), ...errors },
        },
      },
      '/v1/rollbacks/{id}/approve': decisionPath('approve (approver)', approveBody),
      '/v1/rollbacks/{id}/reject': decisionPath('reject (approver)', rejectBody),
      '/v1/rollbacks/{id}/cancel': decisionPath('cancel (operator)', cancelBody),
      '/v1/rollbacks/{id}/accept': decisionPath(
        'accept a failed verification that waits (verify.onFailure: ask) (approver)',
        rejectBody,
      ),
      '/v1/rollbacks/{id}/compensate': decisionPath(
        'compensate after a failed verification that waits (verify.onFailure: ask) (approver)',
        rejectBody,
      ),
      '/v1/drift-scans': {
        post: {
          summary: 'scan two environments for drift now (operator of the `to` environment)',
          requestBody: json(driftScanBody),
          responses: {
            '202': ok(
              'started, or attached to the running scan of the pair: `scanId` (what `GET /v1/drift-reports/{id}` takes), `workflowId`, `attached`, `from`, `to`, `webUi`',
            ),
            ...errors,
          },
        },
      },
      '/v1/slack/interactions': {
        post: {
          security: [],
          summary:
            "Slack's interactivity request URL: the Approve and Reject buttons (signed by Slack, not by a token)",
          requestBody: {
            required: true,
            content: {
              'application/x-www-form-urlencoded': {
                schema: { type: 'object', properties: { payload: { type: 'string' } }, required: ['payload'] },
              },
            },
          },
          responses: { '200': ok('acknowledged (a refusal is told to the clicker in Slack)'), '401': error },
        },
      },
      '/v1/drift-reports/{id}': {
        get: {
          summary:
            "a drift scan's report (viewer): `scan` (its status, while `running` too), `findings`, `alert` (what it sent to Slack, or null), `webUi`",
          parameters: [idParam],
          responses: { '200': ok('report'), ...errors },
        },
      },
    },
  };
}
