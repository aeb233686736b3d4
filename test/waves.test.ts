// Staged rollback: components in waves, each wave verified (its components and its checks)
// before the next; a failed wave stops the rollout and compensates the waves already done.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestEnv, runCli, type TestEnv } from './support/harness';
import { renderPlan } from '../src/client/render';
import { blueGreenComponent, startAppStack, type AppStack } from '../bench/app-stack';

describe('waves', () => {
  let env: TestEnv;
  let stack: AppStack;
  beforeAll(async () => {
    stack = await startAppStack(path.join(os.tmpdir(), `rewind-waves-${process.pid}`));
    env = await createTestEnv({
      environments: { production: { config: { format: 'config' }, app: blueGreenComponent(stack) } },
      verify: {
        production: {
          waves: [
            { name: 'config-first', components: ['config'] },
            { name: 'traffic', components: ['app'] },
          ],
          checks: [
            { name: 'reachable', after: ['config'], http: { url: `${stack.url}/version`, status: 200 } },
            { name: 'homepage', after: ['app'], http: { url: `${stack.url}/`, status: 200, body: 'hello from' } },
          ],
        },
      },
    });
  });
  afterAll(async () => {
    await env?.teardown();
    await stack?.teardown();
  });

  const configFile = () => path.join(env.componentPath('production', 'config'), 'app.yaml');

  async function v1ThenV2() {
    writeFileSync(configFile(), 'release: v1\n');
    await stack.startRelease('blue', 'v1');
    await stack.activate('blue', 'v1');
    await env.snapshot('production', { version: 'v1' });
    writeFileSync(configFile(), 'release: v2\n');
    await stack.startRelease('green', 'v2');
    await stack.activate('green', 'v2');
  }

  let plan: string | undefined;
  async function rollBack() {
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    const waiting = await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    plan = renderPlan(waiting.status.plan!);
    await env.client.decide(id, 'approve', { user: 'bob' });
    return (await env.finalStatus(id)).status;
  }

  it('rolls out wave by wave, checking after each', async () => {
    await v1ThenV2();
    const status = await rollBack();
    // The plan shown for approval says what will run, wave by wave, and what is checked when.
    expect(plan).toMatch(
      /^Plan \(safety cross-section xs-[\w-]+; waves: config-first \(config\) → traffic \(app\)\):\n/,
    );
    expect(plan).toContain('\n  after wave config-first: its components are verified, then checks reachable\n');
    expect(plan).toContain(
      '\n  in verify: every component, then checks reachable, homepage; if verification fails: compensate\n',
    );
    expect(status.plan!.waves).toEqual([
      { name: 'config-first', order: [['config']], checks: ['reachable'] },
      { name: 'traffic', order: [['app']], checks: [] },
    ]);
    expect(status.state).toBe('completed');
    expect(status.checks!.map((c) => [c.name, c.wave ?? 'verify', c.passed])).toEqual([
      ['reachable', 'config-first', true],
      ['reachable', 'verify', true],
      ['homepage', 'verify', true],
    ]);
    // The first wave ended before the second started.
    expect(Date.parse(status.steps.config!.endedAt!)).toBeLessThanOrEqual(Date.parse(status.steps.app!.startedAt!));
    expect(readFileSync(configFile(), 'utf8')).toBe('release: v1\n');
    expect(await stack.served()).toBe('v1');
  });

  it("compensates the first wave when the second wave's check fails", async () => {
    writeFileSync(configFile(), 'release: v2\n');
    await stack.startRelease('green', 'v2');
    await stack.activate('green', 'v2');
    stack.setBroken('v1', true);
    const status = await rollBack();
    expect(status.state).toBe('compensated');
    expect(status.cause).toMatch(/^verify failed: check homepage failed: request 1: status 500, expected 200/);
    expect(status.steps.config).toMatchObject({ state: 'compensated', verify: 'passed' });
    expect(status.steps.app).toMatchObject({ state: 'compensated' });
    expect(readFileSync(configFile(), 'utf8')).toBe('release: v2\n');
    expect(await stack.served()).toBe('v2');
  });
});

describe('a failed wave under onFailure: ask', () => {
  let env: TestEnv;
  const broken = path.join(os.tmpdir(), `rewind-waves-ask-${process.pid}-broken`);
  beforeAll(async () => {
    env = await createTestEnv({
      environments: { production: { config: { format: 'config' }, models: { format: 'any' } } },
      verify: {
        production: {
          waves: [
            { name: 'first', components: ['config'] },
            { name: 'second', components: ['models'] },
          ],
          checks: [{ name: 'smoke', after: ['config'], command: { run: `test ! -e ${broken}` } }],
          onFailure: 'ask',
          ask: { deadline: '5m', default: 'compensate' },
        },
      },
    });
  });
  afterAll(() => env?.teardown());

  it('pauses after the wave; accept lets the next wave start, and the run completes with a warning', async () => {
    const file = (component: string) => path.join(env.componentPath('production', component), 'a.txt');
    writeFileSync(file('config'), 'v1\n');
    writeFileSync(file('models'), 'v1\n');
    await env.snapshot('production', { version: 'v1' });
    writeFileSync(file('config'), 'v2\n');
    writeFileSync(file('models'), 'v2\n');
    writeFileSync(broken, '');
    try {
      const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
      await env.waitFor(id, (s) => s.state === 'awaiting-approval');
      await env.client.decide(id, 'approve', { user: 'bob' });
      const paused = await env.waitFor(id, (s) => s.verification?.awaiting === true);
      expect(paused.status).toMatchObject({ phase: 'execute', verification: { wave: 'first' } });
      expect(paused.status.steps.models!.state).toBe('pending');
      const shown = await runCli(['--manifest', env.manifestFile, 'rollback', 'status', id]);
      expect(shown.stdout).toContain('Verification failed: after wave first: check smoke failed');
      // Mended while the run waits: verify, which runs every check, then passes.
      rmSync(broken);
      const accepted = await runCli(['--manifest', env.manifestFile, 'rollback', 'accept', id, '--as', 'carol']);
      expect(accepted.stdout).toMatch(
        /^verification failure accepted by carol; the next wave starts, with a warning \(state: running, phase: execute\)\n$/,
      );
      const { status } = await env.finalStatus(id);
      expect(status.state).toBe('completed');
      expect(status.warnings).toEqual([
        expect.stringMatching(/^verify failed and was accepted by carol: after wave first: /),
      ]);
    } finally {
      rmSync(broken, { force: true });
    }
    expect(readFileSync(file('models'), 'utf8')).toBe('v1\n');
  });
});
