// Snapshots through real restic: what survives a round trip, what a restore writes, how
// fingerprints react, and that a retried snapshot step does not take a second snapshot.
import { chmodSync, mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createAgentActivities } from '../src/activities/agent';
import { groupCrossSections, type ComponentSnapshot } from '../src/domain/cross-section';
import { diffListings, fingerprintOf, listDirectory, parseListing } from '../src/components/files/listing';
import { parseManifest } from '../src/manifest/load';
import { createLogger } from '../src/platform/logger';
import { ResticError, ResticRepository } from '../src/snapshots/restic';
import { SnapshotStore } from '../src/snapshots/store';
import { filesAgent } from './support/agent';
import { readTree } from './support/harness';
import { tempDir } from './support/temp';

const dir = tempDir('rewind-store-');
const store = new SnapshotStore(new ResticRepository({ repository: path.join(dir, 'repo'), password: 'pw' }));

function makeTree(root: string): void {
  mkdirSync(path.join(root, 'sub', 'deeper'), { recursive: true });
  mkdirSync(path.join(root, 'empty'));
  writeFileSync(path.join(root, 'a.yaml'), 'a: 1\n');
  writeFileSync(path.join(root, 'sub', 'deeper', 'b.pkl'), Buffer.from([0x80, 0x04, 0x95, 0x00, 0xff, 0x2e]));
  writeFileSync(path.join(root, 'secret.env'), 'TOKEN=x\n');
  chmodSync(path.join(root, 'secret.env'), 0o600);
  writeFileSync(path.join(root, 'run.sh'), '#!/bin/sh\n');
  chmodSync(path.join(root, 'run.sh'), 0o750);
  symlinkSync('a.yaml', path.join(root, 'link.yaml'));
  symlinkSync('missing-target', path.join(root, 'dangling'));
}

describe('restic snapshots', () => {
  it('keeps contents, modes, symlinks and empty directories through a round trip', async () => {
    const src = path.join(dir, 'roundtrip');
    makeTree(src);
    await store.restic.ensureInitialized();
    const backup = await store.restic.backup({ directory: src, host: 'production', tags: ['t'] });
    const target = path.join(dir, 'roundtrip-restored');
    await store.restic.restore({ snapshotId: backup.snapshotId, target });
    expect(readTree(target)).toEqual(readTree(src));
  });

  it('restores in place writing only what changed, and deletes what the snapshot lacks', async () => {
    const src = path.join(dir, 'inplace');
    mkdirSync(src);
    for (let i = 0; i < 20; i++) writeFileSync(path.join(src, `f${i}.bin`), Buffer.alloc(1 << 20, i));
    const backup = await store.restic.backup({ directory: src, host: 'production', tags: ['t'] });
    writeFileSync(path.join(src, 'f3.bin'), Buffer.alloc(1 << 20, 99));
    writeFileSync(path.join(src, 'new.bin'), 'new');
    const summary = await store.restic.restore({ snapshotId: backup.snapshotId, target: src });
    expect(summary.bytesRestored).toBe(1 << 20);
    expect(summary.filesSkipped).toBe(19);
    expect(summary.filesDeleted).toBe(1);
    expect(readTree(src)['f3.bin']?.content).toBe(Buffer.alloc(1 << 20, 3).toString('base64'));
    expect(readTree(src)['new.bin']).toBeUndefined();
  });

  it('survives agents racing to create the repository', async () => {
    const repository = path.join(dir, 'raced-repo');
    const make = () =>
      new ResticRepository({ repository, password: 'pw', initLockFile: path.join(dir, 'locks', 'init.lock') });
    await Promise.all([make(), make(), make()].map((r) => r.ensureInitialized()));
    // Without the lock, two of these inits each write a key and a config, and this read fails
    // with "config or key ... is damaged".
    await expect(make().snapshots()).resolves.toEqual([]);
  });

  it('says clearly when the password is wrong', async () => {
    const wrong = new ResticRepository({ repository: path.join(dir, 'repo'), password: 'not-it' });
    await expect(wrong.snapshots()).rejects.toThrow(
      new ResticError('restic snapshots: wrong repository password', 12, 'wrong-password'),
    );
  });
});

describe('fingerprints', () => {
  const root = path.join(dir, 'fp');
  beforeAll(() => makeTree(root));
  const digest = async () => fingerprintOf(await listDirectory(root)).digest;

  it('ignores timestamps but sees content, modes, link targets and empty directories', async () => {
    const base = await digest();
    utimesSync(path.join(root, 'a.yaml'), new Date(2000, 1, 1), new Date(2000, 1, 1));
    expect(await digest()).toBe(base);

    chmodSync(path.join(root, 'run.sh'), 0o755);
    const afterMode = await digest();
    expect(afterMode).not.toBe(base);
    chmodSync(path.join(root, 'run.sh'), 0o750);
    expect(await digest()).toBe(base);

    rmSync(path.join(root, 'link.yaml'));
    symlinkSync('run.sh', path.join(root, 'link.yaml'));
    expect(await digest()).not.toBe(base);
    rmSync(path.join(root, 'link.yaml'));
    symlinkSync('a.yaml', path.join(root, 'link.yaml'));
    expect(await digest()).toBe(base);

    mkdirSync(path.join(root, 'empty2'));
    expect(await digest()).not.toBe(base);
    rmSync(path.join(root, 'empty2'), { recursive: true });

    writeFileSync(path.join(root, 'a.yaml'), 'a: 2\n');
    expect(await digest()).not.toBe(base);
    writeFileSync(path.join(root, 'a.yaml'), 'a: 1\n');
    expect(await digest()).toBe(base);
  });

  it('diffs two listings into adds, changes, removals and mode changes', async () => {
    const before = await listDirectory(root);
    writeFileSync(path.join(root, 'a.yaml'), 'a: 3\n');
    writeFileSync(path.join(root, 'added.txt'), 'x');
    rmSync(path.join(root, 'secret.env'));
    chmodSync(path.join(root, 'run.sh'), 0o700);
    const after = await listDirectory(root);
    // Restoring `before` over `after`:
    expect(diffListings(after, before).map((c) => `${c.op} ${c.path} ${c.bytes}`)).toEqual([
      'change a.yaml 5',
      'remove added.txt 0',
      'mode run.sh 0',
      'add secret.env 8',
    ]);
  });
});

describe('the snapshot step', () => {
  it('returns the same snapshot when retried, instead of taking a second one', async () => {
    const componentDir = path.join(dir, 'component');
    makeTree(componentDir);
    const activities = filesAgent({
      dir,
      repository: path.join(dir, 'repo'),
      store,
      components: { config: componentDir },
    });
    const request = {
      environment: 'production',
      component: 'config',
      crossSectionId: 'xs-20261128-000000-abcd',
      members: ['config'],
      origin: 'manual' as const,
      version: 'v1, "quoted" & spaced',
      reason: 'before deploy: 50% traffic, ünïcode',
    };
    const first: ComponentSnapshot = await new MockActivityEnvironment().run(activities.snapshotComponent, request);
    const second = await new MockActivityEnvironment({ attempt: 2 }).run(activities.snapshotComponent, request);
    expect(second).toEqual(first);

    const snapshots = await store.restic.snapshots(['rewind', 'xs=xs-20261128-000000-abcd']);
    // A listing this small rides in the data snapshot's tags: one restic snapshot, not two.
    expect(snapshots.map((s) => s.labels.role)).toEqual(['data']);
    expect(first.listingSnapshotId).toBe(first.snapshotId);
    expect(parseListing(await store.readListingText(first.listingSnapshotId))).toEqual(
      await listDirectory(componentDir),
    );
    const [section] = groupCrossSections(snapshots);
    expect(section).toMatchObject({
      complete: true,
      version: 'v1, "quoted" & spaced',
      reason: 'before deploy: 50% traffic, ünïcode',
    });
    expect(section!.components.config!.fingerprint).toEqual(fingerprintOf(await listDirectory(componentDir)));
    expect(section!.components.config!.fingerprint).toMatchObject({
      entries: 9,
      details: { kind: 'files', files: 4, dirs: 3, symlinks: 2 },
    });
  });

  it('stores a listing too large for a tag as a listing snapshot of its own', async () => {
    const componentDir = path.join(dir, 'many-files');
    mkdirSync(componentDir);
    for (let i = 0; i < 200; i++) writeFileSync(path.join(componentDir, `model-${i}.pkl`), `weights ${i}\n`);
    const activities = filesAgent({
      dir,
      repository: path.join(dir, 'repo'),
      store,
      components: { models: componentDir },
    });
    const taken: ComponentSnapshot = await new MockActivityEnvironment().run(activities.snapshotComponent, {
      environment: 'production',
      component: 'models',
      crossSectionId: 'xs-20261128-000000-bbbb',
      members: ['models'],
      origin: 'manual' as const,
    });
    const snapshots = await store.restic.snapshots(['rewind', 'xs=xs-20261128-000000-bbbb']);
    expect(snapshots.map((s) => s.labels.role).sort()).toEqual(['data', 'listing']);
    expect(taken.listingSnapshotId).not.toBe(taken.snapshotId);
    expect(snapshots.find((s) => s.labels.role === 'data')!.labels.inlineListing).toBeUndefined();
    expect(parseListing(await store.readListingText(taken.listingSnapshotId))).toHaveLength(200);
  });

  it('refuses a request meant for another environment', async () => {
    const { manifest } = parseManifest(
      `repository: { path: ${path.join(dir, 'repo')} }\napprovers: [a]\nenvironments:\n  production:\n    components:\n      config: { kind: files, path: ${path.join(dir, 'component')} }\n`,
      path.join(dir, 'rewind.yaml'),
    );
    const activities = createAgentActivities({
      environment: 'production',
      manifest,
      store,
      logger: createLogger('test', 'silent'),
    });
    await expect(
      new MockActivityEnvironment().run(activities.snapshotComponent, {
        environment: 'regression',
        component: 'config',
        crossSectionId: 'xs-20261128-000000-ffff',
        members: ['config'],
        origin: 'manual' as const,
      }),
    ).rejects.toMatchObject({ type: 'WrongAgent', nonRetryable: true });
  });
});
