// The snapshot index against real restic: it answers exactly what `restic snapshots` answers,
// costs no restic run while it matches the repository, and notices every change made behind
// its back (another process, restic by hand) by the repository's own snapshot files.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodeTags, type SnapshotLabels } from '../src/domain/cross-section';
import { resolveTool } from '../src/platform/tools';
import { ResticRepository } from '../src/snapshots/restic';
import { localSnapshotsFolder } from '../src/snapshots/snapshot-index';
import { tempDir } from './support/temp';

const dir = tempDir('rewind-index-');
const restic = resolveTool('restic');

/** restic behind a script that counts its runs, by command. */
function countingRestic(): { binary: string; runs: () => string[] } {
  const log = path.join(dir, `runs-${Math.random().toString(36).slice(2)}.log`);
  writeFileSync(log, '');
  const binary = path.join(dir, `restic-${path.basename(log, '.log')}`);
  writeFileSync(
    binary,
    `#!/bin/sh\nfor a in "$@"; do case "$a" in -*) ;; *) echo "$a" >> '${log}'; break;; esac; done\nexec '${restic}' "$@"\n`,
  );
  chmodSync(binary, 0o755);
  return {
    binary,
    runs: () => readFileSync(log, 'utf8').split('\n').filter(Boolean),
  };
}

const labels = (component: string, xs: string): SnapshotLabels => ({
  environment: 'production',
  component,
  crossSectionId: xs,
  role: 'data',
  origin: 'manual',
  members: [component],
  version: 'v1, with a comma',
  reason: 'a reason with spaces, commas and = signs',
});

/** What restic itself says, for comparison. */
function resticSays(repository: string): { id: string; time: string; tags: string[] }[] {
  const out = spawnSync(restic, ['snapshots', '--json', '--no-lock'], {
    env: { ...process.env, RESTIC_REPOSITORY: repository, RESTIC_PASSWORD: 'pw' },
  });
  return (JSON.parse(out.stdout.toString()) as { id: string; time: string; tags: string[] }[])
    .map((s) => ({ id: s.id, time: s.time, tags: s.tags }))
    .sort((a, b) => a.id.localeCompare(b.id));
}

async function setUp(name: string) {
  const repository = path.join(dir, name, 'repo');
  const counting = countingRestic();
  const open = () =>
    new ResticRepository({
      repository,
      password: 'pw',
      binary: counting.binary,
      indexFile: path.join(dir, name, 'index.json'),
    });
  const repo = open();
  await repo.ensureInitialized();
  const data = path.join(dir, name, 'data');
  mkdirSync(data, { recursive: true });
  writeFileSync(path.join(data, 'app.yaml'), 'replicas: 3\n');
  return { repository, repo, open, data, counting };
}

describe('the snapshot index', () => {
  it('answers what restic answers, without running restic, after rewind’s own backups', async () => {
    const { repository, repo, data, counting } = await setUp('own');
    expect(await repo.snapshots(['rewind'])).toEqual([]);
    await repo.backup({ directory: data, host: 'production', tags: encodeTags(labels('config', 'xs-1')) });
    await repo.backupStdin({
      data: 'listing',
      filename: 'listing.json',
      host: 'production',
      tags: encodeTags({ ...labels('config', 'xs-1'), role: 'listing' }),
    });
    const before = counting.runs().length;
    const listed = await repo.snapshots(['rewind', 'env=production']);
    expect(counting.runs().length).toBe(before);

    const truth = resticSays(repository);
    expect(truth).toHaveLength(2);
    expect(listed.map((s) => ({ id: s.id, time: s.time })).sort((a, b) => a.id.localeCompare(b.id))).toEqual(
      truth.map((s) => ({ id: s.id, time: s.time })),
    );
    // The labels decode the same from the index as from restic's own tags.
    const fresh = await new ResticRepository({ repository, password: 'pw' }).snapshots(['rewind']);
    expect(listed.sort((a, b) => a.id.localeCompare(b.id))).toEqual(fresh.sort((a, b) => a.id.localeCompare(b.id)));
    // Filtering by tags works as restic's --tag does.
    expect(await repo.snapshots(['rewind', 'role=listing'])).toHaveLength(1);
    expect(await repo.snapshots(['rewind', 'env=regression'])).toEqual([]);
  });

  it('notices a snapshot taken behind its back, and one forgotten, by the repository’s files', async () => {
    const { repository, repo, data, counting } = await setUp('behind');
    await repo.backup({ directory: data, host: 'production', tags: encodeTags(labels('config', 'xs-1')) });
    expect(await repo.snapshots(['rewind'])).toHaveLength(1);

    // Another process (here restic by hand) adds a snapshot: the next answer includes it.
    const other = spawnSync(restic, ['backup', '.', '--tag', encodeTags(labels('config', 'xs-2')).join(',')], {
      cwd: data,
      env: { ...process.env, RESTIC_REPOSITORY: repository, RESTIC_PASSWORD: 'pw' },
    });
    expect(other.status).toBe(0);
    const runs = counting.runs().length;
    expect((await repo.snapshots(['rewind'])).map((s) => s.labels.crossSectionId).sort()).toEqual(['xs-1', 'xs-2']);
    expect(counting.runs().slice(runs)).toEqual(['snapshots']);

    // A forget through rewind keeps the index true without another listing.
    const [first] = await repo.snapshots(['rewind', 'xs=xs-1']);
    await repo.forget([first!.id]);
    const afterForget = counting.runs().length;
    expect((await repo.snapshots(['rewind'])).map((s) => s.labels.crossSectionId)).toEqual(['xs-2']);
    expect(counting.runs().length).toBe(afterForget);
    expect(resticSays(repository).map((s) => s.id)).toEqual((await repo.snapshots(['rewind'])).map((s) => s.id));
  });

  it('shares what one process learnt with the next, and falls back to restic when its file is damaged', async () => {
    const { repo, open, data, counting } = await setUp('shared');
    await repo.backup({ directory: data, host: 'production', tags: encodeTags(labels('config', 'xs-1')) });
    const runs = counting.runs().length;
    expect(await open().snapshots(['rewind'])).toHaveLength(1);
    expect(counting.runs().length).toBe(runs);

    writeFileSync(path.join(dir, 'shared', 'index.json'), '{"version": 1, "snapshots": [{"id": "not');
    expect(await open().snapshots(['rewind'])).toHaveLength(1);
    expect(counting.runs().slice(runs)).toEqual(['snapshots']);
  });

  it('is kept only for repositories on a local file system', () => {
    expect(localSnapshotsFolder('/srv/rewind/repo')).toBe('/srv/rewind/repo/snapshots');
    expect(localSnapshotsFolder('local:/srv/rewind/repo')).toBe('/srv/rewind/repo/snapshots');
    for (const remote of ['s3:s3.amazonaws.com/bucket', 'sftp:user@host:/srv/repo', 'rest:https://host/', 'rclone:x:y'])
      expect(localSnapshotsFolder(remote)).toBeUndefined();
  });
});
