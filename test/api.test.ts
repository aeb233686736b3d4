// The HTTP API end to end: a real server on loopback, real Temporal, real restic, the project
// store on the test PostgreSQL. Identity comes from the bearer token, never from the body; every
// refusal is a JSON error that says why; generated junk starts nothing.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { auditKey, listAudit } from '../src/audit/audit-log';
import { createLogger } from '../src/platform/logger';
import {
  approveBody,
  cancelBody,
  createApiServer,
  driftScanBody,
  rejectBody,
  startRollbackBody,
} from '../src/api/server';
import { createToken, revokeToken } from '../src/api/tokens';
import { createRewindClient, RewindApiError } from '../src';
import { startTestApi, type TestApi } from './support/api-server';
import { createTestEnv, eventually, runCli, type TestEnv } from './support/harness';

let env: TestEnv;
let api: TestApi;
let base: string;
const tokens: Record<string, string> = {};
let tokensFile: string;

beforeAll(async () => {
  env = await createTestEnv({
    environments: { production: { config: { format: 'config' } }, staging: { config: { format: 'config' } } },
    api: {
      principals: {
        alice: { roles: ['approver', 'operator'] },
        bob: { roles: ['approver'] },
        'ops-bot': { roles: ['operator'] },
        vic: { roles: ['viewer'] },
        sam: { roles: ['viewer'], environments: { staging: ['approver'] } },
        stan: { environments: { staging: ['operator'] } },
      },
    },
  });
  tokensFile = env.loaded.manifest.api.tokensFile!;
  for (const who of ['alice', 'bob', 'ops-bot', 'vic', 'sam', 'stan'])
    tokens[who] = createToken({ file: tokensFile }, who, { name: 'test' }).token;
  // Every rollback below goes back to v1.
  writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'release: v1\n');
  await env.snapshot('production', { version: 'v1' });
  api = await startTestApi(env);
  base = api.base;
});

afterAll(async () => {
  await api?.close();
  await env?.teardown();
});

async function call(
  method: string,
  url: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string>; raw?: string } = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${base}${url}`, {
    method,
    headers: {
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(options.body !== undefined || options.raw !== undefined ? { 'content-type': 'application/json' } : {}),
      ...options.headers,
    },
    ...(options.raw !== undefined
      ? { body: options.raw }
      : options.body !== undefined
        ? { body: JSON.stringify(options.body) }
        : {}),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

async function auditRows() {
  return listAudit(await env.projectStore(), { limit: 10_000 });
}

async function rollbackCount(): Promise<number> {
  const { count } = await env.temporal.workflow.count(
    `WorkflowType = 'rollbackWorkflow' AND TaskQueue = '${env.loaded.manifest.temporal.taskQueue}'`,
  );
  return count;
}

describe('the HTTP API', () => {
  test('health, readiness (Temporal and the store) and an OpenAPI document made from the request schemas', async () => {
    expect(await call('GET', '/healthz')).toEqual({ status: 200, json: { ok: true } });
    const ready = await call('GET', '/readyz');
    expect(ready).toEqual({ status: 200, json: { ok: true, temporal: { ok: true }, store: { ok: true } } });
    const doc = (await call('GET', '/openapi.json')).json as {
      openapi: string;
      paths: Record<
        string,
        { post?: { requestBody?: { content: Record<string, { schema: { properties?: object } }> } } }
      >;
    };
    expect(doc.openapi).toBe('3.1.0');
    const start = doc.paths['/v1/rollbacks']!.post!.requestBody!.content['application/json']!.schema;
    expect(Object.keys(start.properties ?? {})).toEqual(expect.arrayContaining(['environment', 'target', 'dryRun']));
    for (const p of [
      '/v1/rollbacks/{id}/approve',
      '/v1/rollbacks/{id}/reject',
      '/v1/rollbacks/{id}/cancel',
      '/v1/drift-scans',
    ])
      expect(doc.paths[p]).toBeDefined();
  });

  test("readiness says what does not answer, and keeps the reason (hosts, the server's own words) for its log", async () => {
    const broken = await createApiServer({
      manifest: env.loaded.manifest,
      client: env.client,
      projectStore: () => Promise.reject(new Error('connect ECONNREFUSED 10.1.2.3:5432')),
      auditKey: auditKey('unused'),
      tokens: () => [],
      logger: createLogger('rewind-api-test', 'silent'),
    });
    try {
      const response = await broken.inject({ method: 'GET', url: '/readyz' });
      expect(response.statusCode).toBe(503);
      expect(response.json()).toEqual({
        ok: false,
        temporal: { ok: true },
        store: { ok: false, reason: 'the project store does not answer (see the API log)' },
      });
      expect(response.body).not.toContain('10.1.2.3');
    } finally {
      await broken.close();
    }
  });

  test('no token is 401, a wrong or revoked token is 401, a role the action does not take is 403, each saying why', async () => {
    const none = await call('POST', '/v1/rollbacks', { body: {} });
    // A refused login on a write is audited too (one on a read is not).
    const unknownRows = (await auditRows()).filter((r) => r.action === 'auth.refused' && r.actor === 'unknown');
    expect(unknownRows.map((r) => r.reason)).toEqual([expect.stringMatching(/no bearer token/)]);
    expect(none).toEqual({
      status: 401,
      json: { error: 'unauthorized', reason: expect.stringMatching(/no bearer token/) },
    });
    const junk = await call('GET', '/v1/rollbacks', { token: 'not-a-token' });
    expect(junk.status).toBe(401);
    expect(junk.json.reason).toMatch(/not a rewind token/);
    const forged = await call('GET', '/v1/rollbacks', {
      token: tokens.vic!.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')),
    });
    expect(forged.status).toBe(401);
    expect(forged.json.reason).toMatch(/unknown token/);

    const before = await rollbackCount();
    const body = { environment: 'production', target: { kind: 'version', version: 'v1' } };
    const viewer = await call('POST', '/v1/rollbacks', { token: tokens.vic, body });
    expect(viewer.status).toBe(403);
    expect(viewer.json).toEqual({
      error: 'forbidden',
      reason: 'vic may not start in production: it takes operator (or admin), and vic has viewer in production',
    });
    expect(await rollbackCount()).toBe(before);
    const refused = (await auditRows()).filter((r) => r.action === 'auth.refused' && r.actor === 'vic');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ outcome: 'refused', door: 'api', environment: 'production' });

    const temporary = createToken({ file: tokensFile }, 'vic').token;
    expect((await call('GET', '/v1/rollbacks', { token: temporary })).status).toBe(200);
    revokeToken({ file: tokensFile }, temporary.split('_')[1]!);
    const revoked = await call('GET', '/v1/rollbacks', { token: temporary });
    expect(revoked.status).toBe(401);
    expect(revoked.json.reason).toMatch(/was revoked/);
  });

  test('an invalid body is 400 naming the field, and malformed JSON is 400 too', async () => {
    const bad = await call('POST', '/v1/rollbacks', {
      token: tokens['ops-bot'],
      body: { environment: 'production', target: { kind: 'yesterday' } },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe('invalid request');
    expect(bad.json.reason).toMatch(/^body\.target/);
    const unknownKey = await call('POST', '/v1/rollbacks/some-run/approve', {
      token: tokens.alice,
      body: { sudo: true },
    });
    expect(unknownKey.status).toBe(400);
    expect(unknownKey.json.reason).toMatch(/sudo/);
    // Only the Alertmanager webhook names a trigger rule (a rule may approve its own run).
    const ruled = await call('POST', '/v1/rollbacks', {
      token: tokens['ops-bot'],
      body: { environment: 'production', target: { kind: 'version', version: 'v1' }, triggerRule: 'canary' },
    });
    expect(ruled.status).toBe(400);
    expect(ruled.json.reason).toMatch(/triggerRule/);
    const broken = await call('POST', '/v1/rollbacks', { token: tokens['ops-bot'], raw: '{"environment": ' });
    expect(broken.status).toBe(400);
    expect(broken.json.error).toBe('invalid request');
    const key = await call('POST', '/v1/rollbacks', {
      token: tokens['ops-bot'],
      body: { environment: 'production', target: { kind: 'version', version: 'v1' } },
      headers: { 'idempotency-key': 'spaces are not allowed' },
    });
    expect(key.status).toBe(400);
    expect(key.json.reason).toMatch(/^Idempotency-Key header/);
  });

  test("the actor is the token's principal even when the body claims another; the run completes after an approval through the API", async () => {
    const config = env.componentPath('production', 'config');
    writeFileSync(path.join(config, 'app.yaml'), 'release: v2\n');

    const started = await call('POST', '/v1/rollbacks', {
      token: tokens['ops-bot'],
      body: { environment: 'production', target: { kind: 'version', version: 'v1' }, requester: 'mallory' },
      headers: { 'idempotency-key': 'incident-4711' },
    });
    expect(started.status).toBe(202);
    const id = started.json.workflowId as string;
    expect(started.json).toMatchObject({ requester: 'ops-bot', existing: false });
    expect(started.json.webUi).toBe(`http://localhost:8233/namespaces/default/workflows/${id}`);
    // The same key again names the same run.
    const again = await call('POST', '/v1/rollbacks', {
      token: tokens['ops-bot'],
      body: { environment: 'production', target: { kind: 'version', version: 'v1' } },
      headers: { 'idempotency-key': 'incident-4711' },
    });
    expect(again).toMatchObject({ status: 200, json: { workflowId: id, existing: true } });
    // A key is the caller's own: alice's request with ops-bot's key is a request of its own (and
    // production is busy), not a way into ops-bot's run.
    const borrowed = await call('POST', '/v1/rollbacks', {
      token: tokens.alice,
      body: { environment: 'production', target: { kind: 'version', version: 'v1' } },
      headers: { 'idempotency-key': 'incident-4711' },
    });
    expect(borrowed).toMatchObject({ status: 409, json: { reason: expect.stringMatching(/already running/) } });

    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    // bob may approve, but not as alice: the body's user is ignored.
    const approved = await call('POST', `/v1/rollbacks/${id}/approve`, {
      token: tokens.bob,
      body: { user: 'alice', comment: 'checked the plan' },
    });
    expect(approved.status).toBe(200);
    expect(approved.json).toMatchObject({ accepted: true, webUi: expect.stringContaining(id) });
    const final = await env.finalStatus(id);
    expect(final.status.state).toBe('completed');
    expect(final.status.requester).toBe('ops-bot');
    expect(final.status.approvals.map((a) => a.user)).toEqual(['bob']);
    expect(readFileSync(path.join(config, 'app.yaml'), 'utf8')).toBe('release: v1\n');

    const view = await call('GET', `/v1/rollbacks/${id}`, { token: tokens.vic });
    expect(view.status).toBe(200);
    expect((view.json.status as { state: string }).state).toBe('completed');

    const rows = (await auditRows()).filter((r) => r.runId === id);
    expect(rows.map((r) => [r.action, r.actor, r.outcome])).toEqual([
      ['rollback.start', 'ops-bot', 'accepted'],
      ['rollback.start', 'ops-bot', 'accepted'],
      ['rollback.approve', 'bob', 'accepted'],
      // The run records its own end.
      ['rollback.completed', 'rewind', 'recorded'],
    ]);
    expect(rows[0]!.detail).toMatchObject({ claimedRequester: 'mallory' });
    expect(rows[2]!.detail).toMatchObject({ claimedUser: 'alice' });
    expect(rows[2]!.evidence?.plan).toMatch(/^[0-9a-f]{64}$/);
  });

  test('a decision the run refuses (self-approval in production) is 409 with the reason, and audited', async () => {
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'release: v3\n');
    const id = (
      await call('POST', '/v1/rollbacks', {
        token: tokens.alice,
        body: { environment: 'production', target: { kind: 'version', version: 'v1' } },
      })
    ).json.workflowId as string;
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    const self = await call('POST', `/v1/rollbacks/${id}/approve`, { token: tokens.alice, body: {} });
    expect(self.status).toBe(409);
    expect(self.json).toMatchObject({
      error: 'refused',
      reason: 'alice requested this rollback and cannot approve it in production',
    });
    const sam = await call('POST', `/v1/rollbacks/${id}/reject`, { token: tokens.sam, body: {} });
    expect(sam.status).toBe(403);
    expect(sam.json.reason).toMatch(/sam may not reject in production/);
    // Stan may not even read production: its runs are answered as if they did not exist.
    const missing = await call('GET', '/v1/rollbacks/rollback-production-20260101-000000-0000', { token: tokens.stan });
    const hidden = await call('GET', `/v1/rollbacks/${id}`, { token: tokens.stan });
    expect(missing).toMatchObject({ status: 404, json: { error: 'not found' } });
    expect(hidden.status).toBe(404);
    expect(hidden.json).toEqual({ error: 'not found', reason: `no rollback ${id}` });
    const probe = await call('POST', `/v1/rollbacks/${id}/cancel`, { token: tokens.stan, body: {} });
    expect(probe.status).toBe(404);
    expect(probe.json).toEqual(hidden.json);
    expect((await env.client.rollbackView(id)).status.state).toBe('awaiting-approval');
    const cancelled = await call('POST', `/v1/rollbacks/${id}/cancel`, {
      token: tokens['ops-bot'],
      body: { reason: 'test' },
    });
    expect(cancelled.status).toBe(200);
    expect((await env.finalStatus(id)).status.state).toBe('cancelled');
    const rows = (await auditRows()).filter((r) => r.runId === id).map((r) => [r.action, r.actor, r.outcome]);
    expect(rows).toEqual([
      ['rollback.start', 'alice', 'accepted'],
      ['rollback.approve', 'alice', 'refused'],
      ['auth.refused', 'sam', 'refused'],
      ['auth.refused', 'stan', 'refused'],
      ['rollback.cancel', 'ops-bot', 'accepted'],
      ['rollback.cancelled', 'rewind', 'recorded'],
    ]);
  });

  test('the TypeScript client: start, watch each change until the end, approve, and refusals as RewindApiError', async () => {
    const config = env.componentPath('production', 'config');
    writeFileSync(path.join(config, 'app.yaml'), 'release: v4\n');
    const bot = createRewindClient({ url: base, token: tokens['ops-bot']! });
    const approver = createRewindClient({ url: base, token: tokens.bob! });
    // The run cancelled just before may still show as running for a moment (visibility lags).
    const run = await eventually(
      () =>
        bot
          .startRollback(
            {
              environment: 'production',
              target: { kind: 'version', version: 'v1' },
              trigger: 'alert',
              reason: 'INC-1',
            },
            { idempotencyKey: 'INC-1' },
          )
          .catch((err: unknown) => {
            if (err instanceof RewindApiError && /already running/.test(err.reason)) return undefined;
            throw err;
          }),
      'production free of the cancelled run',
    );
    expect(run).toMatchObject({ existing: false, requester: 'ops-bot' });
    const seen: string[] = [];
    for await (const status of bot.watch(run.workflowId, { intervalMs: 200 })) {
      seen.push(status.state === 'failed' ? `failed: ${status.cause}` : status.state);
      if (status.state === 'awaiting-approval') await approver.approve(run.workflowId, { comment: 'go' });
    }
    expect(seen).toContain('awaiting-approval');
    expect(seen.at(-1)).toBe('completed');
    expect(readFileSync(path.join(config, 'app.yaml'), 'utf8')).toBe('release: v1\n');

    const refused = await bot.approve(run.workflowId).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(RewindApiError);
    expect(refused).toMatchObject({ status: 403, error: 'forbidden' });
  });

  test("the CLI through the API (--api, REWIND_API_TOKEN): the actor is the token's, whatever --as says; tokens and refusals", async () => {
    const config = env.componentPath('production', 'config');
    writeFileSync(path.join(config, 'app.yaml'), 'release: v5\n');
    const cli = (args: string[], token?: string) =>
      runCli(['--manifest', env.manifestFile, '--api', base, ...args], {
        env: { REWIND_API_TOKEN: token ?? '', TEMPORAL_ADDRESS: '127.0.0.1:1' },
      });
    // Temporal is pointed nowhere: everything goes through the API.
    const start = await eventually(async () => {
      const r = await cli(
        ['--json', 'rollback', 'start', '--env', 'production', '--to-version', 'v1', '--as', 'mallory', '--no-wait'],
        tokens['ops-bot'],
      );
      return /already running/.test(r.stderr) ? undefined : r;
    }, 'production free');
    expect(start.stderr).toBe('');
    const id = (JSON.parse(start.stdout) as { workflowId: string }).workflowId;
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    const approve = await cli(['--json', 'rollback', 'approve', id, '--as', 'alice'], tokens.bob);
    expect(approve.code).toBe(0);
    const final = await env.finalStatus(id);
    expect(final.status).toMatchObject({ state: 'completed', requester: 'ops-bot' });
    expect(final.status.approvals.map((a) => a.user)).toEqual(['bob']);

    const status = await cli(['--json', 'rollback', 'status', id], tokens.vic);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'completed', requester: 'ops-bot' });
    const list = await cli(['--json', 'rollback', 'list', '--env', 'production'], tokens.vic);
    expect((JSON.parse(list.stdout) as { workflowId: string }[]).map((r) => r.workflowId)).toContain(id);

    const forbidden = await cli(['rollback', 'cancel', id], tokens.vic);
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toMatch(/^error: vic may not cancel in production: .* \(API 403\)\n$/);
    const noToken = await cli(['rollback', 'list']);
    expect(noToken.stderr).toMatch(/--api needs a token in REWIND_API_TOKEN/);
  });

  test('a drift scan started through the API names its scan, whose report the API then serves', async () => {
    writeFileSync(path.join(env.componentPath('staging', 'config'), 'drift.yaml'), 'pool: 20\n');
    writeFileSync(path.join(env.componentPath('production', 'config'), 'drift.yaml'), 'pool: 10\n');
    const started = await call('POST', '/v1/drift-scans', {
      token: tokens['ops-bot'],
      body: { from: 'production', to: 'staging', components: ['config'] },
    });
    expect(started.status).toBe(202);
    expect(started.json).toMatchObject({ attached: false, from: 'production', to: 'staging' });
    const scanId = String(started.json.scanId);
    expect(scanId).toMatch(/^\d{8}-\d{6}-[0-9a-f]{6}$/);
    await env.client.driftScanResult(String(started.json.workflowId));
    const report = await call('GET', `/v1/drift-reports/${scanId}`, { token: tokens.vic });
    expect(report.status).toBe(200);
    expect((report.json.scan as { id: string }).id).toBe(scanId);
    expect(
      (report.json.findings as { subject: string; detail: string }[]).find((f) => f.subject === 'drift.yaml:pool'),
    ).toMatchObject({ detail: '10 → 20' });
    expect(report.json).toHaveProperty('alert');

    // The CLI's drift scan and report through the API: Temporal pointed nowhere, the store too.
    writeFileSync(path.join(env.componentPath('staging', 'config'), 'drift-cli.yaml'), 'pool: 3\n');
    writeFileSync(path.join(env.componentPath('production', 'config'), 'drift-cli.yaml'), 'pool: 4\n');
    const cli = (args: string[], token: string | undefined) =>
      runCli(['--manifest', env.manifestFile, '--api', base, ...args], {
        env: {
          REWIND_API_TOKEN: token ?? '',
          TEMPORAL_ADDRESS: '127.0.0.1:1',
          DATABASE_URL: 'postgres://127.0.0.1:1/none',
        },
        timeoutMs: 120_000,
      });
    const scan = await cli(
      ['--json', 'drift', 'scan', '--from', 'production', '--to', 'staging', '--components', 'config', '--wait'],
      tokens['ops-bot'],
    );
    expect(scan.stderr).toBe('');
    const summary = JSON.parse(scan.stdout) as { scanId: string; status: string; counts: Record<string, number> };
    expect(summary).toMatchObject({ status: 'completed', from: 'production', to: 'staging' });
    expect(scan.code).toBe(summary.counts.critical! > 0 ? 3 : 0);
    const text = await cli(['drift', 'report', summary.scanId], tokens.vic);
    expect(text.stdout).toContain('`drift-cli.yaml:pool`: 4 → 3');
    const stored = JSON.parse((await cli(['drift', 'report', summary.scanId, '--format', 'json'], tokens.vic)).stdout);
    expect(stored.scan).toMatchObject({ id: summary.scanId, requestedBy: 'ops-bot' });
    // A command the API does not serve is refused with --api, not sent to Temporal unasked.
    for (const args of [
      ['drift', 'list'],
      ['sync', 'list'],
      ['schedules', 'list'],
    ]) {
      const refused = await cli(args, tokens.vic);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toBe(
        `error: rewind ${args.join(' ')} does not go through the HTTP API (--api serves the rollback commands, drift scan and drift report); run it without --api, where Temporal is reachable\n`,
      );
    }
  });

  test('200 generated invalid bodies per endpoint are each refused with a 4xx and start nothing', async () => {
    const before = await rollbackCount();
    const run = 'rollback-production-20261129-000000-0000';
    const endpoints: [string, { safeParse(v: unknown): { success: boolean } }][] = [
      ['/v1/rollbacks', startRollbackBody],
      [`/v1/rollbacks/${run}/approve`, approveBody],
      [`/v1/rollbacks/${run}/reject`, rejectBody],
      [`/v1/rollbacks/${run}/cancel`, cancelBody],
      ['/v1/drift-scans', driftScanBody],
    ];
    for (const [url, schema] of endpoints) {
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(
          fc
            .oneof(
              fc.jsonValue(),
              fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 })),
              fc.record({ environment: fc.jsonValue(), target: fc.jsonValue(), to: fc.jsonValue() }),
            )
            .filter((v) => !schema.safeParse(v).success),
          async (body) => {
            const { status } = await call('POST', url, { token: tokens.alice, raw: JSON.stringify(body) });
            statuses.set(status, (statuses.get(status) ?? 0) + 1);
            return status >= 400 && status < 500;
          },
        ),
        { numRuns: 200 },
      );
      expect([...statuses.keys()].every((s) => s === 400)).toBe(true);
    }
    expect(await rollbackCount()).toBe(before);
  });
});
