// Config applied by Ansible (Debian's ansible-core) instead of restored from a snapshot: the
// plan shows `ansible-playbook --check --diff`, execute runs the playbook with the target
// release, compensation runs it with the release the files were at before the rollback.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTestEnv, REPO_ROOT, runCli, writePickle, type TestEnv } from './support/harness';

const PLAYBOOK = path.join(REPO_ROOT, 'test/fixtures/ansible/config.yml');

async function setUp(faults?: string): Promise<TestEnv> {
  return createTestEnv({
    environments: {
      production: {
        config: { format: 'config', ansible: { playbook: PLAYBOOK, timeout: '2m' } },
        models: { format: 'pickle', dependsOn: ['config'] },
      },
    },
    ...(faults ? { faults: { production: faults } } : {}),
  });
}

/** Releases v1 and v2, each snapshotted with the config the playbook writes for it. */
async function releases(env: TestEnv) {
  const config = env.componentPath('production', 'config');
  const models = env.componentPath('production', 'models');
  writeFileSync(path.join(config, 'app.yaml'), 'release: v1\n');
  writePickle(path.join(models, 'm.pkl'), { w: 1 });
  await env.snapshot('production', { version: 'v1' });
  writeFileSync(path.join(config, 'app.yaml'), 'release: v2\n');
  writePickle(path.join(models, 'm.pkl'), { w: 2 });
  await env.snapshot('production', { version: 'v2' });
  return path.join(config, 'app.yaml');
}

describe('ansible-applied config', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await setUp();
  });
  afterAll(() => env?.teardown());

  it('shows --check --diff in the plan, then applies the target release', async () => {
    const appYaml = await releases(env);
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    const waiting = await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    const plan = waiting.status.plan!.components.find((c) => c.component === 'config')!;
    expect(plan.toolCheck!.title).toBe('ansible-playbook --check --diff with release v1');
    expect(plan.toolCheck!.text).toMatch(/-release: v2\n\+release: v1/);
    expect(plan.toolCheck!.text).toMatch(/changed=1/);
    // --check changed nothing.
    expect(readFileSync(appYaml, 'utf8')).toBe('release: v2\n');
    const shown = await runCli(['--manifest', env.manifestFile, 'rollback', 'status', id]);
    expect(shown.stdout).toContain('ansible-playbook --check --diff with release v1:');
    expect(shown.stdout).toMatch(/^ +\+release: v1$/m);

    await env.client.decide(id, 'approve', { user: 'bob' });
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('completed');
    expect(status.steps.config!.outcome!.details).toMatchObject({ method: 'ansible', release: 'v1' });
    expect(status.steps.config!.verify).toBe('passed');
    expect(readFileSync(appYaml, 'utf8')).toBe('release: v1\n');
    expect(status.report).toContain('ansible-playbook applied release v1');
    expect(status.report).toMatch(/```text\n[\s\S]*\+release: v1[\s\S]*```/);
  });
});

describe('ansible-applied config, compensated', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await setUp('before-restore:models=fail');
  });
  afterAll(() => env?.teardown());

  it('runs the playbook with the release before the rollback when a later step fails', async () => {
    const appYaml = await releases(env);
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob' });
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('compensated');
    expect(status.steps.config!.outcome!.details).toMatchObject({ method: 'ansible', release: 'v1' });
    expect(status.steps.config).toMatchObject({
      state: 'compensated',
      compensation: 'ansible-playbook applied release v2, the release before the rollback',
    });
    expect(readFileSync(appYaml, 'utf8')).toBe('release: v2\n');
  });

  it('a playbook that fails its check ends the run before approval, nothing changed', async () => {
    const config = env.componentPath('production', 'config');
    writeFileSync(path.join(config, 'app.yaml'), 'release: broken\n');
    await env.snapshot('production', { version: 'broken' });
    writeFileSync(path.join(config, 'app.yaml'), 'release: v2\n');
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'broken' } });
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('failed');
    expect(status.cause).toMatch(
      /^prepare failed: ansible-playbook --check exited with code 2: .*release broken has no config/,
    );
    expect(readFileSync(path.join(config, 'app.yaml'), 'utf8')).toBe('release: v2\n');
  });
});
