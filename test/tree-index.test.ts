// The files kind's tree index: Merkle digests that tell identical trees apart in one comparison,
// and refreshes that hash only what changed, also after the agent restarts (a new index loaded
// from disk, new worker threads).
import { chmodSync, cpSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { filesDrift, type FilesDriftAnswer } from '../src/components/files/drift';
import { filesComponentSchema } from '../src/components/files/kind';
import { TreeIndex, MAX_NODE_CHILDREN, BUCKETS } from '../src/components/files/tree-index';
import { blake3Module, TreeWalkers } from '../src/components/files/tree-walker';
import { tempDir } from './support/temp';

const root = tempDir('rewind-tree-index-');
let walkers: TreeWalkers;
beforeAll(() => (walkers = new TreeWalkers(2)));
afterAll(() => walkers.close());

/** Files written by the test are "old" from the index's point of view: not racily clean. */
const copyTree = (from: string, to: string) =>
  cpSync(from, to, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
const later = () => ({ now: Date.now() + 60_000 });

function makeTree(dir: string): void {
  mkdirSync(path.join(dir, 'conf/sub'), { recursive: true });
  mkdirSync(path.join(dir, 'models'), { recursive: true });
  writeFileSync(path.join(dir, 'conf/app.yaml'), 'a: 1\n');
  writeFileSync(path.join(dir, 'conf/sub/db.yaml'), 'pool: 10\n');
  writeFileSync(path.join(dir, 'models/m.pkl'), Buffer.from([0x80, 4, 0x4e, 0x2e]));
  symlinkSync('conf/app.yaml', path.join(dir, 'current'));
}

async function fresh(dir: string): Promise<TreeIndex> {
  const index = TreeIndex.empty(dir);
  await index.refresh(walkers, later());
  return index;
}

describe('tree index', () => {
  test('equal trees have equal root digests; a change moves only the digests on its path', async () => {
    const a = path.join(root, 'a');
    const b = path.join(root, 'b');
    makeTree(a);
    copyTree(a, b);
    const ia = await fresh(a);
    let ib = await fresh(b);
    expect(ib.rootDigest).toBe(ia.rootDigest);
    expect(ia.fileCount).toBe(3);

    writeFileSync(path.join(b, 'conf/sub/db.yaml'), 'pool: 20\n');
    ib = await fresh(b);
    expect(ib.rootDigest).not.toBe(ia.rootDigest);
    expect(ib.node('conf')!.digest).not.toBe(ia.node('conf')!.digest);
    expect(ib.node('conf/sub')!.digest).not.toBe(ia.node('conf/sub')!.digest);
    expect(ib.node('models')!.digest).toBe(ia.node('models')!.digest);

    // Mode bits and link targets count too.
    copyTree(a, path.join(root, 'c'));
    chmodSync(path.join(root, 'c', 'conf/app.yaml'), 0o600);
    expect((await fresh(path.join(root, 'c'))).rootDigest).not.toBe(ia.rootDigest);
  });

  test('an agent restarted between two refreshes re-hashes nothing that did not change', async () => {
    const dir = path.join(root, 'restart');
    makeTree(dir);
    for (let i = 0; i < 50; i++) writeFileSync(path.join(dir, 'conf', `f${i}.txt`), `file ${i}\n`);
    const file = path.join(root, 'restart-index.json');

    const first = TreeIndex.empty(dir);
    const stats1 = await first.refresh(walkers, later());
    expect(stats1).toMatchObject({ files: 53, hashed: 53 });
    await first.save(file);

    // A new process: the index comes from disk, the threads are new.
    const restartedWalkers = new TreeWalkers(2);
    try {
      const loaded = await TreeIndex.load(file, dir);
      const stats2 = await loaded.refresh(restartedWalkers, later());
      expect(stats2).toMatchObject({ files: 53, hashed: 0, bytesHashed: 0 });
      expect(loaded.rootDigest).toBe(first.rootDigest);

      // One file changed in place (same size, new mtime): exactly that one is hashed.
      writeFileSync(path.join(dir, 'conf/f7.txt'), 'FILE 7\n');
      const stats3 = await loaded.refresh(restartedWalkers, later());
      expect(stats3).toMatchObject({ hashed: 1 });
      expect(loaded.rootDigest).not.toBe(first.rootDigest);
    } finally {
      await restartedWalkers.close();
    }
  });

  test('a file changed within the last two seconds is hashed again next time, though its stat did not change', async () => {
    const dir = path.join(root, 'racy');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'x'), 'one');
    const index = TreeIndex.empty(dir);
    expect(await index.refresh(walkers, { now: Date.now() })).toMatchObject({ hashed: 1 });
    // Nothing touched the file: only the racy mark makes this refresh read it again (a second
    // write within the same timestamp tick would not have moved its mtime).
    expect(await index.refresh(walkers, later())).toMatchObject({ hashed: 1 });
    expect(await index.refresh(walkers, later())).toMatchObject({ hashed: 0 });
  });

  test('a directory with more children than one answer holds is answered in buckets that add up to it', async () => {
    const dir = path.join(root, 'wide');
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < MAX_NODE_CHILDREN + 200; i++) writeFileSync(path.join(dir, `n${i}`), String(i));
    const index = await fresh(dir);
    const node = index.node('')!;
    expect(node.children).toBeUndefined();
    expect(node.buckets).toHaveLength(BUCKETS);
    let total = 0;
    for (let b = 0; b < BUCKETS; b++) {
      const bucket = index.node('', b)!;
      expect(bucket.digest).toBe(node.buckets![b]);
      total += bucket.children!.length;
    }
    expect(total).toBe(MAX_NODE_CHILDREN + 200);
  });

  test('a refresh after files are added, changed, removed and turned into folders gives what a fresh index of the tree gives', async () => {
    const dir = path.join(root, 'churn');
    makeTree(dir);
    for (let i = 0; i < 30; i++) writeFileSync(path.join(dir, 'models', `m${i}.bin`), `model ${i}\n`);
    const index = await fresh(dir);
    const before = index.rootDigest;
    expect(await index.refresh(walkers, later())).toMatchObject({ changed: 0, hashed: 0 });
    expect(index.rootDigest).toBe(before);

    for (let i = 0; i < 10; i++) rmSync(path.join(dir, 'models', `m${i}.bin`));
    writeFileSync(path.join(dir, 'models', 'm10.bin'), 'model ten, retrained\n');
    writeFileSync(path.join(dir, 'models', 'new.bin'), 'a new one\n');
    rmSync(path.join(dir, 'conf/app.yaml'));
    mkdirSync(path.join(dir, 'conf/app.yaml'));
    writeFileSync(path.join(dir, 'conf/app.yaml/inner'), 'now a folder\n');
    const stats = await index.refresh(walkers, later());
    // Removed 10; changed m10.bin, app.yaml (now a folder) and the two folders whose entries
    // came and went; added new.bin and inner. Hashed: m10.bin, new.bin, inner.
    expect(stats).toMatchObject({ changed: 16, hashed: 3 });
    const expected = await fresh(dir);
    expect(index.rootDigest).toBe(expected.rootDigest);
    expect(index.fileCount).toBe(expected.fileCount);
    expect(index.node('models')).toEqual(expected.node('models'));
    expect(index.node('conf')).toEqual(expected.node('conf'));

    // Saved and loaded, it is the same index.
    const file = path.join(root, 'churn-index.json');
    await index.save(file);
    const loaded = await TreeIndex.load(file, dir);
    expect(loaded.rootDigest).toBe(expected.rootDigest);
    expect(await loaded.refresh(walkers, later())).toMatchObject({ changed: 0, hashed: 0 });
  });

  test('hashes contents with BLAKE3 (its reference digests), or SHA-256 when told, files past one read included', async () => {
    const dir = path.join(root, 'digests');
    mkdirSync(dir, { recursive: true });
    const big = randomBytes(3 * (1 << 20) + 123); // more than the 1 MiB a read takes
    writeFileSync(path.join(dir, 'empty'), '');
    writeFileSync(path.join(dir, 'abc'), 'abc');
    writeFileSync(path.join(dir, 'big'), big);
    const digests = async (w: TreeWalkers) => {
      const index = TreeIndex.empty(dir);
      await index.refresh(w, later());
      return { hash: index.contentHash, ...Object.fromEntries(index.node('')!.children!.map((c) => [c.n, c.d])) };
    };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { blake3 } = require('@napi-rs/blake-hash') as { blake3: (b: Buffer) => Buffer };
    expect(await digests(walkers)).toEqual({
      hash: 'blake3',
      empty: 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262',
      abc: '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85',
      big: blake3(big).toString('hex'),
    });
    const sha = new TreeWalkers(1, { REWIND_TREE_HASH: 'sha256' });
    try {
      const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
      expect(await digests(sha)).toEqual({ hash: 'sha256', empty: sha256(''), abc: sha256('abc'), big: sha256(big) });
    } finally {
      await sha.close();
    }
    expect(() => blake3Module({ REWIND_TREE_HASH: 'md5' })).toThrow(
      'REWIND_TREE_HASH must be blake3 or sha256, not "md5"',
    );
  });

  test('an index saved with another content hash is hashed anew, once', async () => {
    const dir = path.join(root, 'rehash');
    makeTree(dir);
    const file = path.join(root, 'rehash-index.json');
    const sha = new TreeWalkers(1, { REWIND_TREE_HASH: 'sha256' });
    try {
      const old = TreeIndex.empty(dir);
      await old.refresh(sha, later());
      await old.save(file);
    } finally {
      await sha.close();
    }
    const loaded = await TreeIndex.load(file, dir);
    expect(loaded.contentHash).toBe('sha256');
    expect(await loaded.refresh(walkers, later())).toMatchObject({ files: 3, hashed: 3 });
    expect(loaded.contentHash).toBe('blake3');
    expect(loaded.rootDigest).toBe((await fresh(dir)).rootDigest);
    expect(await loaded.refresh(walkers, later())).toMatchObject({ hashed: 0 });
  });

  test('a scan does not compare contents two agents hashed differently: one finding says why', () => {
    const side = (contentHash?: 'blake3' | 'sha256'): FilesDriftAnswer => ({
      kind: 'files',
      root: {
        exists: true,
        digest: contentHash ?? 'old',
        files: 3,
        ...(contentHash ? { contentHash } : {}),
        refresh: { entries: 3, files: 3, changed: 0, hashed: 0, bytesHashed: 0, errors: [], ms: 1 },
      },
    });
    const component = filesComponentSchema.parse({ kind: 'files', path: '/srv/app' });
    const question = filesDrift.firstQuestion(component, []);
    // An agent from before BLAKE3 sends no contentHash: it hashed with SHA-256.
    const sides = { from: 'production', to: 'regression' };
    expect(filesDrift.compare(question, side(), side('blake3'), component, sides)).toEqual({
      differences: [
        {
          subject: '/',
          change: 'changed',
          detail:
            'not compared: the agents hash file contents differently (production sha256, regression blake3); run the same rewind version on both, or set REWIND_TREE_HASH=sha256 on both',
          aspect: 'unreadable',
          severity: 'warning',
          unseen: { prefix: '' },
        },
      ],
      next: [],
    });
    expect(filesDrift.compare(question, side('sha256'), side(), component, sides).next).toEqual([
      { kind: 'files', nodes: [{ dir: '' }] },
    ]);
  });

  test('a save that cannot write fails as an error of its own, without ending the process', async () => {
    const dir = path.join(root, 'unsaved');
    makeTree(dir);
    const index = await fresh(dir);
    const file = path.join(root, 'unsaved-state', 'tree-index.json');
    // The temporary file's name is taken by a folder: opening it fails after save() began.
    mkdirSync(`${file}.tmp`, { recursive: true });
    await expect(index.save(file)).rejects.toThrow(/EISDIR/);
    // The index is still unsaved: once the way is clear, the next save writes it.
    rmSync(`${file}.tmp`, { recursive: true });
    expect(await index.save(file)).toBe(true);
    expect((await TreeIndex.load(file, dir)).rootDigest).toBe(index.rootDigest);
  });

  test('a missing root is absent, not an error', async () => {
    const missing = TreeIndex.empty(path.join(root, 'nope'));
    expect(await missing.refresh(walkers)).toMatchObject({ entries: 0 });
    expect(missing.exists).toBe(false);
    expect(missing.rootDigest).toBe('absent');
  });
});
