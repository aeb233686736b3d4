// A manifest edited while the workers run: a request made with the new manifest is refused with
// "restart the workers", never served from the old one (a component added to rewind.yaml would
// otherwise be silently left out of the cross-section).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { failureMessage, RewindClient } from '../src/client/client';
import { loadManifest } from '../src/manifest/load';
import { createTestEnv, type TestEnv } from './support/harness';

let env: TestEnv;
let edited: RewindClient;
beforeAll(async () => {
  env = await createTestEnv();
  writeFileSync(path.join(env.componentPath('production', 'config'), 'app.yaml'), 'release: v1\n');
  // The operator adds a component to rewind.yaml and does not restart the workers.
  const manifest = parse(readFileSync(env.manifestFile, 'utf8')) as {
    environments: { production: { components: Record<string, unknown> } };
  };
  const extra = path.join(env.dir, 'envs', 'production', 'extra');
  mkdirSync(extra, { recursive: true });
  writeFileSync(path.join(extra, 'feature.yaml'), 'on: true\n');
  manifest.environments.production.components.extra = { kind: 'files', path: extra };
  const file = path.join(env.dir, 'rewind-edited.yaml');
  writeFileSync(file, stringify(manifest));
  edited = new RewindClient(env.temporal, loadManifest(file).manifest);
});
afterAll(() => env.teardown());

it('refuses a snapshot asked with an edited manifest, and stores no partial cross-section', async () => {
  const handle = await edited.startSnapshot({ environment: 'production', requester: 'test' });
  const error = await edited.snapshotResult(handle.workflowId).then(
    () => undefined,
    (err: unknown) => failureMessage(err),
  );
  expect(error).toMatch(
    /^the manifest changed since the workers started \(they run [0-9a-f]{12}, this request was made with [0-9a-f]{12}\); restart the control worker and the agents/,
  );
  expect(await env.store.crossSections('production')).toEqual([]);
});

it('refuses a rollback asked with an edited manifest in decide, changing nothing', async () => {
  await env.snapshot('production', { version: 'v1' });
  const { workflowId } = await edited.startRollback({
    environment: 'production',
    target: { kind: 'version', version: 'v1' },
    requester: 'alice',
  });
  const { status } = await env.finalStatus(workflowId);
  expect(status.state).toBe('failed');
  expect(status.cause).toContain('decide failed: the manifest changed since the workers started');
  expect(status.phases.prepare).toBeUndefined();
});
