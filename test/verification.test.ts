// Verification that checks the service, not only the bytes: HTTP, command and Prometheus checks
// from the manifest run in verify and after each wave, their measured values land in the
// status and report, and a failure goes to the manifest's policy: compensate, ask (accept,
// compensate, or the deadline's default) or accept-with-warning. Real nginx, Prometheus.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestEnv, eventually, runCli, type TestEnv } from './support/harness';
import { blueGreenComponent, freePort, startAppStack, type AppStack } from '../bench/app-stack';

const PROMETHEUS = '/usr/bin/prometheus';

/** The page through nginx must work: a broken release fails it while its health check passes. */
function pageCheck(stack: AppStack) {
  return { name: 'homepage', http: { url: `${stack.url}/`, status: 200, body: 'hello from', requests: 20, p95: '2s' } };
}

async function setUp(verify: Record<string, unknown> | ((stack: AppStack) => Record<string, unknown>), n: number) {
  const stack = await startAppStack(path.join(os.tmpdir(), `rewind-verify-${process.pid}-${n}`));
  const env = await createTestEnv({
    environments: { production: { app: blueGreenComponent(stack) } },
    verify: { production: typeof verify === 'function' ? verify(stack) : verify },
  });
  return { stack, env };
}

/** Release v1 on blue snapshotted, then v2 deployed on green. */
async function v1ThenV2(env: TestEnv, stack: AppStack) {
  await stack.startRelease('blue', 'v1');
  await stack.activate('blue', 'v1');
  await env.snapshot('production', { version: 'v1' });
  await redeployV2(stack);
}

async function redeployV2(stack: AppStack) {
  await stack.startRelease('green', 'v2');
  await stack.activate('green', 'v2');
}

async function approvedRollback(env: TestEnv): Promise<string> {
  const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
  await env.waitFor(id, (s) => s.state === 'awaiting-approval');
  await env.client.decide(id, 'approve', { user: 'bob' });
  return id;
}

describe('verify.onFailure: compensate', () => {
  let env: TestEnv;
  let stack: AppStack;
  beforeAll(async () => {
    ({ env, stack } = await setUp(
      (s) => ({
        checks: [
          pageCheck(s),
          { name: 'smoke', command: { run: `grep -q 'server ${s.colours.blue};' ${s.upstreamFile}` } },
        ],
        onFailure: 'compensate',
      }),
      1,
    ));
  });
  afterAll(async () => {
    await env?.teardown();
    await stack?.teardown();
  });

  it('runs the checks in verify and records what each measured', async () => {
    await v1ThenV2(env, stack);
    const id = await approvedRollback(env);
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('completed');
    expect(status.checks).toEqual([
      expect.objectContaining({
        name: 'homepage',
        kind: 'http',
        passed: true,
        value: expect.stringMatching(/^p95 \d+ ms over 20 requests$/),
        measured: expect.any(Number),
        expected: 'status 200, body contains "hello from", p95 <= 2s over 20',
      }),
      expect.objectContaining({
        name: 'smoke',
        kind: 'command',
        passed: true,
        value: 'exit 0',
        measured: 0,
        expected: 'exit 0',
      }),
    ]);
    expect(status.report).toMatch(/## Verification[\s\S]*homepage +passed {2}http: p95 \d+ ms over 20 requests/);
    const shown = await runCli(['--manifest', env.manifestFile, 'rollback', 'status', id]);
    expect(shown.stdout).toMatch(
      /Checks:\n {2}homepage +passed {2}http: p95 \d+ ms over 20 requests \(wants status 200, body contains "hello from", p95 <= 2s over 20\)\n {2}smoke +passed {2}command: exit 0 \(wants exit 0\)/,
    );
  });

  it('switches traffic back when a check fails after the switch', async () => {
    await redeployV2(stack);
    stack.setBroken('v1', true);
    const id = await approvedRollback(env);
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('compensated');
    expect(status.cause).toMatch(
      /^verify failed: check homepage failed: request 1: status 500, expected 200 \(measured p95 \d+ ms over 20 requests\)$/,
    );
    expect(status.steps.app).toMatchObject({ state: 'compensated', verify: 'passed' });
    expect(await stack.served()).toBe('v2');
    stack.setBroken('v1', false);
  });
});

describe('verify.onFailure: ask', () => {
  let env: TestEnv;
  let stack: AppStack;
  beforeAll(async () => {
    ({ env, stack } = await setUp(
      (s) => ({ checks: [pageCheck(s)], onFailure: 'ask', ask: { deadline: '25s', default: 'compensate' } }),
      2,
    ));
    await v1ThenV2(env, stack);
    stack.setBroken('v1', true);
  });
  afterAll(async () => {
    await env?.teardown();
    await stack?.teardown();
  });

  it('pauses with the failed checks shown; a non-approver is refused; accept completes with a warning', async () => {
    const id = await approvedRollback(env);
    const waiting = await env.waitFor(id, (s) => s.verification?.awaiting === true);
    expect(waiting.status).toMatchObject({ state: 'running', phase: 'verify' });
    expect(waiting.status.verification!.failure).toMatch(/^check homepage failed: request 1: status 500/);
    const shown = await runCli(['--manifest', env.manifestFile, 'rollback', 'status', id]);
    expect(shown.stdout).toMatch(
      /Verification failed: check homepage failed: .* Waiting for accept or compensate from an approver until \S+; then: compensate\./,
    );
    expect(shown.stdout).toContain(`Next: rewind rollback accept ${id} --as <approver>`);

    const refused = await runCli(['--manifest', env.manifestFile, 'rollback', 'accept', id, '--as', 'mallory']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('mallory is not an approver');

    const accepted = await runCli([
      '--manifest',
      env.manifestFile,
      'rollback',
      'accept',
      id,
      '--as',
      'carol',
      '--json',
    ]);
    expect(accepted.code).toBe(0);
    expect(JSON.parse(accepted.stdout)).toMatchObject({ accepted: true });
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('completed');
    expect(status.verification).toMatchObject({ awaiting: false, decision: { decision: 'accept', user: 'carol' } });
    expect(status.warnings).toEqual([
      expect.stringMatching(/^verify failed and was accepted by carol: check homepage failed/),
    ]);
    expect(await stack.served()).toBe('v1');
  });

  it('compensate from an approver puts traffic back', async () => {
    await redeployV2(stack);
    const id = await approvedRollback(env);
    await env.waitFor(id, (s) => s.verification?.awaiting === true);
    const outcome = await env.client.decide(id, 'compensate', { user: 'bob' });
    expect(outcome.accepted).toBe(true);
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('compensated');
    expect(status.cause).toMatch(/^verify failed and bob chose to compensate: check homepage failed/);
    expect(await stack.served()).toBe('v2');
  });

  it('the deadline applies the default when no one decides', async () => {
    const id = await approvedRollback(env);
    await env.waitFor(id, (s) => s.verification?.awaiting === true);
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('compensated');
    expect(status.verification!.decision).toMatchObject({ decision: 'compensate', user: 'deadline' });
    expect(status.cause).toMatch(/^verify failed and the deadline chose compensate: /);
    expect(await stack.served()).toBe('v2');
  });
});

describe('verify.onFailure: accept-with-warning', () => {
  let env: TestEnv;
  let stack: AppStack;
  beforeAll(async () => {
    ({ env, stack } = await setUp((s) => ({ checks: [pageCheck(s)], onFailure: 'accept-with-warning' }), 3));
  });
  afterAll(async () => {
    await env?.teardown();
    await stack?.teardown();
  });

  it('completes, keeps the new release and says what failed', async () => {
    await v1ThenV2(env, stack);
    stack.setBroken('v1', true);
    const id = await approvedRollback(env);
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('completed');
    expect(status.warnings).toEqual([
      expect.stringMatching(
        /^verify failed and the manifest accepts it \(onFailure: accept-with-warning\): check homepage failed/,
      ),
    ]);
    expect(status.report).toContain('Warning: verify failed and the manifest accepts it');
    expect(await stack.served()).toBe('v1');
  });
});

describe('Prometheus checks', () => {
  let env: TestEnv;
  let stack: AppStack;
  let prometheus: ChildProcess;
  let promDir: string;
  let promUrl: string;
  let deadUrl: string;
  beforeAll(async () => {
    promDir = mkdtempSync(path.join(os.tmpdir(), 'rewind-verify-prom-'));
    const port = await freePort();
    deadUrl = `http://127.0.0.1:${await freePort()}`;
    promUrl = `http://127.0.0.1:${port}`;
    const config = path.join(promDir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global: { scrape_interval: 1s }',
        'scrape_configs:',
        '  - job_name: prometheus',
        `    static_configs: [{ targets: ['127.0.0.1:${port}'] }]`,
      ].join('\n'),
    );
    prometheus = spawn(
      PROMETHEUS,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${path.join(promDir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );
    await eventually(
      async () => {
        const res = await fetch(`${promUrl}/api/v1/query?query=up`).catch(() => undefined);
        const body = (await res?.json().catch(() => undefined)) as { data?: { result?: unknown[] } } | undefined;
        return body?.data?.result?.length ? true : undefined;
      },
      'Prometheus to have scraped itself',
      60_000,
    );
    ({ env, stack } = await setUp(
      {
        checks: [
          { name: 'scraped', prometheus: { url: promUrl, query: 'sum(up{job="prometheus"})', above: 0.5 } },
          { name: 'errors', prometheus: { url: promUrl, query: 'vector(0.004)', below: 0.01 } },
        ],
      },
      4,
    ));
  }, 90_000);
  afterAll(async () => {
    await env?.teardown();
    await stack?.teardown();
    prometheus?.kill('SIGKILL');
    rmSync(promDir, { recursive: true, force: true });
  });

  it('queries Prometheus through its HTTP API and records the values', async () => {
    await v1ThenV2(env, stack);
    const id = await approvedRollback(env);
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('completed');
    expect(status.checks).toEqual([
      expect.objectContaining({
        name: 'scraped',
        kind: 'prometheus',
        passed: true,
        value: '1',
        measured: 1,
        expected: 'above 0.5',
      }),
      expect.objectContaining({
        name: 'errors',
        kind: 'prometheus',
        passed: true,
        value: '0.004',
        measured: 0.004,
        expected: 'below 0.01',
      }),
    ]);
  });

  it('an unreachable Prometheus ends the run before approval, with traffic untouched', async () => {
    // The agent and the control worker read the manifest they were started with: a run with a
    // dead Prometheus URL needs an installation of its own, in front of the same nginx.
    const other = await createTestEnv({
      environments: { production: { app: blueGreenComponent(stack) } },
      verify: {
        production: { checks: [{ name: 'errors', prometheus: { url: deadUrl, query: 'vector(0)', below: 1 } }] },
      },
    });
    try {
      await v1ThenV2(other, stack);
      const upstream = readFileSync(stack.upstreamFile, 'utf8');
      const id = await other.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
      const { status } = await other.finalStatus(id);
      expect(status.state).toBe('failed');
      expect(status.cause).toBe(
        `prepare failed: verification could not judge this rollback, so nothing was changed: check errors: Prometheus at ${deadUrl} is unreachable: ECONNREFUSED`,
      );
      expect(status.approvals).toEqual([]);
      expect(status.steps.app!.state).toBe('not-run');
      expect(readFileSync(stack.upstreamFile, 'utf8')).toBe(upstream);
      expect(await stack.served()).toBe('v2');
    } finally {
      await other.teardown();
    }
  });
});
