// REWIND_FAULTS is a test hook, not part of the shipped agent: the real `rewind agent` process
// ignores it, and only the test preload (test/support/faults-preload.ts) makes it inject faults.
// Both agents here are real separate processes, started from the CLI sources.
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { copyTree, createTestEnv, readTree, writePickle, type TestEnv, type TreeEntry } from './support/harness';

const FAULT = 'before-restore:config=fail';

/** Collects what an agent writes to stderr (and drains stdout, so the pipe never fills). */
function collectStderr(child: ChildProcess): () => string {
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout?.resume();
  return () => stderr;
}

/** Takes v1, then changes both components: returns v1's tree and the tree before the rollback. */
async function prepareV1AndChange(
  env: TestEnv,
): Promise<{ v1: Record<string, TreeEntry>; before: Record<string, TreeEntry> }> {
  const config = env.componentPath('production', 'config');
  const models = env.componentPath('production', 'models');
  const root = path.join(env.dir, 'envs', 'production');
  writeFileSync(path.join(config, 'app.yaml'), 'release: v1\n');
  writePickle(path.join(models, 'classifier.pkl'), { weights: [1, 2, 3] });
  const v1Copy = path.join(env.dir, 'v1');
  copyTree(root, v1Copy);
  await env.snapshot('production', { version: 'v1' });
  writeFileSync(path.join(config, 'app.yaml'), 'release: v2\n');
  writeFileSync(path.join(config, 'extra.yaml'), 'added in v2\n');
  writePickle(path.join(models, 'classifier.pkl'), { weights: [4, 5, 6] });
  return { v1: readTree(v1Copy), before: readTree(root) };
}

async function rollBackToV1(env: TestEnv) {
  const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
  await env.waitFor(id, (s) => s.state === 'awaiting-approval');
  await env.client.decide(id, 'approve', { user: 'bob' });
  return env.finalStatus(id);
}

describe('the shipped agent with REWIND_FAULTS set', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ externalAgents: ['production'] });
  });
  afterAll(() => env.teardown());

  it('ignores it: the rollback completes and the files are the target, byte for byte', async () => {
    const stderr = collectStderr(env.spawnAgent('production', { REWIND_FAULTS: FAULT }, { preload: false }));
    const { v1, before } = await prepareV1AndChange(env);
    expect(before).not.toEqual(v1);

    const { status, execution } = await rollBackToV1(env);
    expect(execution).toBe('COMPLETED');
    expect(status.state).toBe('completed');
    expect(status.steps.config!.error).toBeUndefined();
    expect(status.steps.config!.outcome!.alreadyAtTarget).toBe(false);
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(v1);
    expect(stderr()).not.toContain('REWIND_FAULTS');
  });
});

describe('an agent started with the test fault preload and REWIND_FAULTS set', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ externalAgents: ['production'] });
  });
  afterAll(() => env.teardown());

  it('fires the fault, says so loudly, and the rollback is compensated', async () => {
    const stderr = collectStderr(env.spawnAgent('production', { REWIND_FAULTS: FAULT }));
    const { before } = await prepareV1AndChange(env);

    const { status, execution } = await rollBackToV1(env);
    expect(execution).toBe('FAILED');
    expect(status.state).toBe('compensated');
    expect(status.cause).toBe('execute failed: injected fault at before-restore of config');
    expect(status.steps.config).toMatchObject({
      state: 'compensated',
      error: 'injected fault at before-restore of config',
    });
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(before);
    expect(stderr()).toContain(
      `WARNING: REWIND_FAULTS is set and the test fault preload is loaded: workers in this process inject faults (before-restore:config=fail)`,
    );
  });
});
