// Reading the target back before approval (defect 4), against real restic and real files: the
// changed files are staged and checked against the target's listing, execute moves them into
// place, anything touched since is restored from the repository instead, and a target whose
// data cannot be read is reported as not possible, with nothing changed. A component already at
// its target needs no new safety snapshot.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { FilesRestoreDetails } from '../src/components/files/kind';
import type { StageOutcome } from '../src/components/driver';
import type { RestoreOutcome } from '../src/components/core';
import type { ComponentSnapshot } from '../src/domain/cross-section';
import { ResticRepository } from '../src/snapshots/restic';
import { SnapshotStore } from '../src/snapshots/store';
import { damageLargestPack, filesAgent } from './support/agent';
import { readTree } from './support/harness';
import { tempDir } from './support/temp';

const root = tempDir('rewind-staging-');
let counter = 0;

/** A component with two config files and a model, its agent, and snapshot v1 of it. */
async function setUp() {
  const dir = path.join(root, `case-${++counter}`);
  const component = path.join(dir, 'config');
  mkdirSync(component, { recursive: true });
  writeFileSync(path.join(component, 'app.yaml'), 'replicas: 3\n');
  writeFileSync(path.join(component, 'features.ini'), '[flags]\nnew_pricing = false\n');
  writeFileSync(path.join(component, 'model.bin'), randomBytes(256 << 10));
  const repository = path.join(dir, 'repo');
  const store = new SnapshotStore(
    new ResticRepository({ repository, password: 'pw', indexFile: path.join(dir, 'index.json') }),
  );
  await store.restic.ensureInitialized();
  const agent = filesAgent({
    dir,
    repository,
    store,
    components: { config: component },
    dataDir: path.join(dir, 'state'),
  });
  const snapshot = (crossSectionId: string, unlessAt?: ComponentSnapshot): Promise<ComponentSnapshot> =>
    new MockActivityEnvironment().run(agent.snapshotComponent, {
      environment: 'production',
      component: 'config',
      crossSectionId,
      members: ['config'],
      origin: unlessAt ? ('safety' as const) : ('manual' as const),
      ...(unlessAt ? { unlessAt } : {}),
    });
  const v1 = await snapshot('xs-20261129-000000-v1v1');
  const v1Tree = readTree(component);
  const stagingRoot = path.join(dir, 'state', 'agent', 'production', 'staging');
  const stage = (workflowId: string): Promise<StageOutcome> =>
    new MockActivityEnvironment().run(agent.stageComponent, {
      environment: 'production',
      component: 'config',
      workflowId,
      target: { snapshotId: v1.snapshotId, listingSnapshotId: v1.listingSnapshotId, fingerprint: v1.fingerprint },
    });
  const restore = (workflowId: string): Promise<RestoreOutcome> =>
    new MockActivityEnvironment().run(agent.restoreComponent, {
      environment: 'production',
      component: 'config',
      snapshotId: v1.snapshotId,
      listingSnapshotId: v1.listingSnapshotId,
      fingerprint: v1.fingerprint,
      purpose: 'rollback' as const,
      idempotencyKey: `${workflowId}/rollback/config`,
      stagedFor: workflowId,
    });
  return { dir, component, repository, store, agent, snapshot, v1, v1Tree, stagingRoot, stage, restore };
}

describe('reading the target back before approval', () => {
  it('stages the changed files, checked against the listing, and execute moves them into place', async () => {
    const t = await setUp();
    writeFileSync(path.join(t.component, 'app.yaml'), 'replicas: 5\n');
    writeFileSync(path.join(t.component, 'extra.yaml'), 'added: after v1\n');

    const outcome = await t.stage('rollback-1');
    expect(outcome).toEqual({ readable: true, note: '1 file (12 B) read back, checked and staged', bytes: 12 });
    // Staging changes nothing in the component.
    expect(readFileSync(path.join(t.component, 'app.yaml'), 'utf8')).toBe('replicas: 5\n');
    const staged = path.join(t.stagingRoot, 'rollback-1', 'config', 'app.yaml');
    expect(existsSync(staged)).toBe(true);
    const stagedInode = statSync(staged).ino;

    const restored = await t.restore('rollback-1');
    expect(readTree(t.component)).toEqual(t.v1Tree);
    expect(restored.details as FilesRestoreDetails).toMatchObject({ staged: 1, filesRestored: 1, filesDeleted: 1 });
    expect(restored.bytesWritten).toBe(12);
    // The very file that was staged, moved (one rename), not written again.
    expect(statSync(path.join(t.component, 'app.yaml')).ino).toBe(stagedInode);
    expect(existsSync(path.join(t.stagingRoot, 'rollback-1', 'config'))).toBe(false);
  });

  it('restores from the repository what was touched after it was staged', async () => {
    const t = await setUp();
    writeFileSync(path.join(t.component, 'app.yaml'), 'replicas: 5\n');
    await t.stage('rollback-2');
    // Someone (or something) writes to the staged copy while the approval waits.
    writeFileSync(path.join(t.stagingRoot, 'rollback-2', 'config', 'app.yaml'), 'replicas: 666\n');

    const restored = await t.restore('rollback-2');
    expect(readTree(t.component)).toEqual(t.v1Tree);
    expect((restored.details as FilesRestoreDetails).staged).toBeUndefined();
  });

  it('reports a target whose data cannot be read as not possible, staging and changing nothing', async () => {
    const t = await setUp();
    // The model's 256 KiB are in the largest pack: damage it, then change the model.
    damageLargestPack(t.repository);
    writeFileSync(path.join(t.component, 'model.bin'), randomBytes(256 << 10));
    const before = readTree(t.component);

    const outcome = await t.stage('rollback-3');
    expect(outcome.readable).toBe(false);
    expect(outcome.note).toMatch(/^the target snapshot cannot be read: /);
    expect(existsSync(path.join(t.stagingRoot, 'rollback-3', 'config'))).toBe(false);
    expect(readTree(t.component)).toEqual(before);
  });

  it('needs no new safety snapshot for a component already at its target', async () => {
    const t = await setUp();
    const count = async () => (await t.store.restic.snapshots(['rewind'])).length;
    const before = await count();
    expect(await t.snapshot('xs-20261129-000000-safe', t.v1)).toEqual(t.v1);
    expect(await count()).toBe(before);
    // Once it differs, the safety snapshot is taken.
    writeFileSync(path.join(t.component, 'app.yaml'), 'replicas: 7\n');
    const taken = await t.snapshot('xs-20261129-000001-safe', t.v1);
    expect(taken.snapshotId).not.toBe(t.v1.snapshotId);
    expect(await count()).toBe(before + 1);
  });
});
