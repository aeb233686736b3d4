// A files component whose directory is replaced by a symbolic link after the agent started: rewind
// writes the directory at the component's path, so it refuses to work through a link (it would
// replace the link with a new directory and leave the linked data as it was) and changes nothing.
import { mkdirSync, readlinkSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createAgentActivities, type VerifyOutcome } from '../src/activities/agent';
import { createLogger } from '../src/platform/logger';
import { createTestEnv, readTree, type TestEnv } from './support/harness';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv({ environments: { production: { config: { format: 'config' } } } });
});
afterAll(() => env.teardown());

it('refuses to roll back a component whose path became a symbolic link, and changes nothing', async () => {
  const config = env.componentPath('production', 'config');
  writeFileSync(path.join(config, 'app.yaml'), 'release: v1\n');
  await env.snapshot('production', { version: 'v1' });

  // The directory moves elsewhere, holding bad data, and the component path becomes a link to it.
  const real = path.join(env.dir, 'real-config');
  renameSync(config, real);
  writeFileSync(path.join(real, 'app.yaml'), 'release: bad\n');
  mkdirSync(path.join(real, 'extra.d'));
  symlinkSync(real, config);
  const before = readTree(real);

  const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
  const { status } = await env.finalStatus(id);
  expect(status.state).toBe('failed');
  expect(status.cause).toContain(
    `${config} is a symbolic link (to ${real}); rewind writes the directory at this path and would replace the link with a directory: name the directory itself`,
  );
  expect(readlinkSync(config)).toBe(real);
  expect(readTree(real)).toEqual(before);
});

it('never verifies a symbolic link as the directory that was snapshotted, even to identical files', async () => {
  const config = env.componentPath('production', 'config');
  const identical = path.join(env.dir, 'identical-config');
  mkdirSync(identical);
  writeFileSync(path.join(identical, 'app.yaml'), 'release: v1\n');
  unlinkSync(config);
  symlinkSync(identical, config);
  const section = (await env.store.crossSections('production')).find((s) => s.version === 'v1')!;
  const snap = section.components.config!;
  const agent = createAgentActivities({
    environment: 'production',
    manifest: env.loaded.manifest,
    store: env.store,
    logger: createLogger('test', 'warn'),
  });
  const outcome: VerifyOutcome = await new MockActivityEnvironment().run(agent.verifyComponent, {
    environment: 'production',
    component: 'config',
    expected: snap.fingerprint,
    listingSnapshotId: snap.listingSnapshotId,
  });
  expect(outcome.matches).toBe(false);
  expect(outcome.differences).toEqual([
    { op: 'change', subject: config, detail: `a symbolic link to ${readlinkSync(config)}, not a directory` },
  ]);
});
