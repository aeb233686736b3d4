// The app kind's nginx-blue-green strategy against a real nginx and two colours of a tiny app:
// a rollback switches traffic under load with no failed request, a sick idle colour or a bad
// nginx config never moves traffic, and compensation switches back.
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { createTestEnv, eventually, type TestEnv } from './support/harness';
import { blueGreenComponent, startAppStack, type AppStack } from '../bench/app-stack';

/** v1 serves on blue and is snapshotted as release v1; then v2 is deployed on green and takes traffic. */
async function releaseV1ThenV2(env: TestEnv, stack: AppStack) {
  await stack.startRelease('blue', 'v1');
  await stack.activate('blue', 'v1');
  const section = await env.snapshot('production', { version: 'v1' });
  // The fingerprint: the active colour plus the version it serves.
  expect(section.components.app!.fingerprint.details).toMatchObject({ version: 'v1', colour: 'blue' });
  await stack.startRelease('green', 'v2');
  await stack.activate('green', 'v2');
}

async function rollBackToV1(env: TestEnv) {
  const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
  await env.waitFor(id, (s) => s.state === 'awaiting-approval');
  await env.client.decide(id, 'approve', { user: 'bob' });
  return { id, ...(await env.finalStatus(id)) };
}

// nginx tests a marker file per request (switch without reload): a reload would close idle
// keep-alive connections, and a client that sends on one at that instant gets a reset
// (docs/benchmarks.md measures it).
describe('nginx blue/green under load', () => {
  let env: TestEnv;
  let stack: AppStack;
  beforeAll(async () => {
    const dir = path.join(os.tmpdir(), `rewind-bg-${process.pid}-1`);
    stack = await startAppStack(dir, 'marker');
    env = await createTestEnv({ environments: { production: { app: blueGreenComponent(stack) } } });
  });
  afterAll(async () => {
    await env?.teardown();
    await stack?.teardown();
  });

  it('switches colours while 10,000+ keep-alive requests flow, with none failed and only v1 after the switch', async () => {
    await releaseV1ThenV2(env, stack);
    const responses: { at: number; version: string }[] = [];
    const load = autocannon({
      url: `${stack.url}/`,
      connections: 16,
      pipelining: 1,
      amount: 60_000,
      timeout: 10,
      requests: [
        {
          onResponse: (_status, _body, _ctx, headers) => {
            responses.push({ at: Date.now(), version: String(headers?.['x-app-version'] ?? '?') });
          },
        },
      ],
    });
    // The switch happens in the middle of the load.
    while (responses.length < 3_000) await new Promise((r) => setTimeout(r, 20));
    const { status } = await rollBackToV1(env);
    const switched = Date.parse(status.steps.app!.endedAt!);
    const result = await load;

    expect(status.state).toBe('completed');
    expect(status.steps.app!.outcome!.details).toMatchObject({
      kind: 'app',
      from: { version: 'v2', colour: 'green' },
      to: { version: 'v1', colour: 'blue' },
      started: false,
    });
    expect(result.requests.total).toBeGreaterThanOrEqual(10_000);
    expect(result.errors).toBe(0);
    expect(result.timeouts).toBe(0);
    expect(result.non2xx).toBe(0);
    expect(responses.length).toBe(result.requests.total);
    const before = responses.filter((r) => r.at < switched - 2_000);
    const after = responses.filter((r) => r.at > switched);
    expect(before.length).toBeGreaterThan(0);
    expect(new Set(before.map((r) => r.version))).toEqual(new Set(['v2']));
    expect(after.length).toBeGreaterThan(1_000);
    expect(after.filter((r) => r.version !== 'v1')).toEqual([]);
    expect(await stack.served()).toBe('v1');
    expect(readdirSync(stack.markerDir)).toEqual(['blue']);
    // The previous colour keeps running, so that switching back is instant.
    expect((await fetch(`http://${stack.colours.green}/version`)).ok).toBe(true);
  });
});

describe('nginx blue/green when the idle colour is not ready', () => {
  let env: TestEnv;
  let stack: AppStack;
  beforeAll(async () => {
    const dir = path.join(os.tmpdir(), `rewind-bg-${process.pid}-2`);
    stack = await startAppStack(dir);
    env = await createTestEnv({ environments: { production: { app: blueGreenComponent(stack) } } });
  });
  afterAll(async () => {
    await env?.teardown();
    await stack?.teardown();
  });

  it('never switches when the idle colour fails its health check: traffic stays on v2', async () => {
    await releaseV1ThenV2(env, stack);
    stack.setUnhealthy('v1', true);
    const upstream = readFileSync(stack.upstreamFile, 'utf8');
    const { status } = await rollBackToV1(env);
    expect(status.state).toBe('compensated');
    expect(status.steps.app!.error).toMatch(
      /the idle colour blue is not ready: http:\/\/127\.0\.0\.1:\d+\/healthz did not answer status 200 3 times in a row .*last: status 503 "unhealthy".*traffic was not switched and stays on green/,
    );
    expect(readFileSync(stack.upstreamFile, 'utf8')).toBe(upstream);
    expect(await stack.served()).toBe('v2');
    stack.setUnhealthy('v1', false);
  });

  it('starts the target release on the idle colour when it is not running there', async () => {
    await stack.stopColour('blue');
    const { status } = await rollBackToV1(env);
    expect(status.state).toBe('completed');
    expect(status.plan!.components[0]!.targetCheck).toEqual({
      readable: true,
      note: 'v1 will be started on the idle colour blue (it runs nothing)',
    });
    expect(status.steps.app!.outcome!.details).toMatchObject({ started: true, to: { version: 'v1', colour: 'blue' } });
    expect(await stack.served()).toBe('v1');
  });

  it('plans nothing to switch when the target already serves', async () => {
    const { status } = await rollBackToV1(env);
    expect(status.plan!.components[0]!.targetCheck).toEqual({
      readable: true,
      note: 'v1 already serves, on blue: nothing to switch',
    });
    expect(status.state).toBe('completed');
    expect(status.steps.app!.outcome!.alreadyAtTarget).toBe(true);
    expect(await stack.served()).toBe('v1');
  });
});

describe('nginx blue/green given bad input', () => {
  let env: TestEnv;
  let stack: AppStack;
  beforeAll(async () => {
    const dir = path.join(os.tmpdir(), `rewind-bg-${process.pid}-4`);
    stack = await startAppStack(dir);
    const app = blueGreenComponent(stack);
    app.blueGreen.start = 'echo "no such release: {{version}}" >&2; exit 3';
    env = await createTestEnv({ environments: { production: { app } } });
  });
  afterAll(async () => {
    await env?.teardown();
    await stack?.teardown();
  });

  it('a failing start command gives a clear error and leaves traffic untouched', async () => {
    await releaseV1ThenV2(env, stack);
    await stack.stopColour('blue');
    const upstream = readFileSync(stack.upstreamFile, 'utf8');
    const { status } = await rollBackToV1(env);
    expect(status.state).toBe('compensated');
    expect(status.steps.app!.error).toMatch(
      /start command for blue \(echo .*exit 3\) exited with code 3: no such release: v1; traffic is untouched \(still on green\)/,
    );
    expect(readFileSync(stack.upstreamFile, 'utf8')).toBe(upstream);
    expect(await stack.served()).toBe('v2');
  });

  it('a configuration nginx -t refuses is put back and traffic stays where it was', async () => {
    await stack.startRelease('blue', 'v1');
    const conf = readFileSync(stack.nginxConf, 'utf8');
    const upstream = readFileSync(stack.upstreamFile, 'utf8');
    appendFileSync(stack.nginxConf, '\nthis is not nginx;\n');
    try {
      const { status } = await rollBackToV1(env);
      expect(status.state).toBe('compensated');
      expect(status.steps.app!.error).toMatch(
        /nginx -t \(.*-t\) exited with code 1: .*unknown directive "this".*; the upstream file is put back and traffic is untouched/,
      );
      expect(readFileSync(stack.upstreamFile, 'utf8')).toBe(upstream);
      expect(await stack.served()).toBe('v2');
    } finally {
      writeFileSync(stack.nginxConf, conf);
    }
  });
});

describe('nginx blue/green compensation', () => {
  let env: TestEnv;
  let stack: AppStack;
  beforeAll(async () => {
    const dir = path.join(os.tmpdir(), `rewind-bg-${process.pid}-3`);
    stack = await startAppStack(dir);
    env = await createTestEnv({
      environments: {
        production: { app: blueGreenComponent(stack), config: { format: 'config', dependsOn: ['app'] } },
      },
      faults: { production: 'before-restore:config=fail' },
    });
  });
  afterAll(async () => {
    await env?.teardown();
    await stack?.teardown();
  });

  it('switches traffic back to the previous colour when a later step fails', async () => {
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'release: v1\n');
    await releaseV1ThenV2(env, stack);
    writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'release: v2\n');
    const { status } = await rollBackToV1(env);
    expect(status.state).toBe('compensated');
    expect(status.steps.app).toMatchObject({ state: 'compensated' });
    expect(status.steps.app!.outcome!.details).toMatchObject({ to: { version: 'v1', colour: 'blue' } });
    expect(await stack.served()).toBe('v2');
    expect(readFileSync(stack.upstreamFile, 'utf8')).toContain(`server ${stack.colours.green};`);
  });
});

describe('nginx blue/green: the previous colour after keepPrevious', () => {
  let env: TestEnv;
  let stack: AppStack;
  beforeAll(async () => {
    stack = await startAppStack(path.join(os.tmpdir(), `rewind-bg-${process.pid}-5`), 'marker');
    const app = blueGreenComponent(stack);
    app.blueGreen.keepPrevious = '5s';
    Object.assign(app.blueGreen, {
      stop: `kill "$(cat ${path.join(stack.dir, 'app-state')}/app-{{port}}.pid)"; echo "stopped {{colour}} {{version}}" >> ${path.join(stack.dir, 'stops.log')}`,
    });
    env = await createTestEnv({ environments: { production: { app } } });
  });
  afterAll(async () => {
    await env?.teardown();
    await stack?.teardown();
  });

  it('is stopped by the stop command once keepPrevious has passed, by a follow-up workflow', async () => {
    await releaseV1ThenV2(env, stack);
    const { id, status } = await rollBackToV1(env);
    expect(status.state).toBe('completed');
    expect(status.steps.app!.followUp).toMatchObject({
      what: 'stop green (v2)',
      workflowId: `${id}-later-app`,
    });
    expect(status.report).toContain('## Later');
    // Still running right after the switch: switching back would be instant.
    expect((await fetch(`http://${stack.colours.green}/version`)).ok).toBe(true);
    const note = await env.temporal.workflow.getHandle(`${id}-later-app`).result();
    expect(note).toBe('stopped green (v2)');
    expect(readFileSync(path.join(stack.dir, 'stops.log'), 'utf8')).toBe('stopped green v2\n');
    await eventually(
      () =>
        fetch(`http://${stack.colours.green}/version`).then(
          () => undefined,
          () => true,
        ),
      'green to stop answering',
      10_000,
    );
    expect(await stack.served()).toBe('v1');
  });

  it('waits while another rollback holds the environment, and stops the colour only once it is free', async () => {
    await stack.startRelease('green', 'v2');
    await stack.activate('green', 'v2');
    const { id, status } = await rollBackToV1(env);
    expect(status.state).toBe('completed');
    const ended = Date.now();
    // A second rollback holds the environment (awaiting approval) when the follow-up is due.
    const second = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    await env.waitFor(second, (s) => s.state === 'awaiting-approval');
    await new Promise((r) => setTimeout(r, Math.max(0, ended + 8_000 - Date.now())));
    const followUp = env.temporal.workflow.getHandle(`${id}-later-app`);
    expect((await followUp.describe()).status.name).toBe('RUNNING');
    expect((await fetch(`http://${stack.colours.green}/version`)).ok).toBe(true);
    await env.client.decide(second, 'reject', { user: 'bob' });
    expect(await followUp.result()).toBe('stopped green (v2)');
    expect(await stack.served()).toBe('v1');
  });
});
