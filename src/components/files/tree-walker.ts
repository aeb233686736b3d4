// The stat walk and the hashing of a tree index run on worker threads: synchronous readdir,
// lstat and read calls on a thread of their own cost far less than a promise per call on the
// main thread (Node's fs.promises walk is about 10× slower than `find`). The worker's code is
// passed as source (`eval`), so it runs the same from TypeScript and from the compiled build.
import os from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * How file contents are hashed. BLAKE3 (a cryptographic hash built for hashing files fast, in
 * @napi-rs/blake-hash's native build) hashes 20 KB files about twice as fast as SHA-256 here and
 * large ones about four times; SHA-256 where that module does not load on the platform, or with
 * REWIND_TREE_HASH=sha256. Two agents must hash alike to compare contents: an answer says how
 * its side hashed, and the comparison refuses to compare across.
 */
export type ContentHash = 'blake3' | 'sha256';

/** The BLAKE3 module's path, when it loads here and is not turned off; else SHA-256 is used. */
export function blake3Module(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const chosen = env.REWIND_TREE_HASH;
  if (chosen !== undefined && chosen !== 'blake3' && chosen !== 'sha256')
    throw new Error(`REWIND_TREE_HASH must be blake3 or sha256, not ${JSON.stringify(chosen)}`);
  if (chosen === 'sha256') return undefined;
  try {
    const resolved = require.resolve('@napi-rs/blake-hash');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(resolved);
    return resolved;
  } catch {
    if (chosen === 'blake3')
      throw new Error('REWIND_TREE_HASH=blake3, but @napi-rs/blake-hash does not load on this platform');
    return undefined;
  }
}

/**
 * A batch of walked entries, column by column (typed arrays cross threads as one copy each,
 * where an array per entry would be a small object each): entry k is `paths[k]`, of type
 * `types[k]` (f, d, l or o), and so on; `targets` holds the link targets by entry.
 */
export interface StatBatch {
  paths: string[];
  types: string;
  modes: Int32Array;
  sizes: Float64Array;
  mtimes: Float64Array;
  ctimes: Float64Array;
  inos: Float64Array;
  targets: Record<number, string>;
}

interface WalkReply {
  id: number;
  batch: StatBatch;
  /** Directories not walked yet (the budget ran out), relative to the root. */
  pending: string[];
  errors: string[];
}

interface HashReply {
  id: number;
  /** 32 bytes of digest per file, where `ok` is 1. */
  digests: Uint8Array;
  ok: Uint8Array;
  errors: string[];
}

/** Files' digests (TreeWalkers.contentHash), 32 bytes each, in the order asked; `ok[k]` is 0 where file k could not be read. */
export interface HashResult {
  digests: Buffer;
  ok: Uint8Array;
  errors: string[];
}

// Plain JavaScript, not a function's compiled source: transpilers (tsx, swc) add helpers to
// compiled functions that a worker evaluating the text alone would not have.
const WORKER_SOURCE = `
const fs = require('node:fs');
const crypto = require('node:crypto');
const { parentPort, workerData } = require('node:worker_threads');
const blake = workerData.blake3 ? require(workerData.blake3) : undefined;
const buffer = Buffer.allocUnsafe(1 << 20);
const typeOf = (s) => (s.isFile() ? 'f' : s.isDirectory() ? 'd' : s.isSymbolicLink() ? 'l' : 'o');

function walk(msg) {
  const errors = [];
  const paths = [];
  const types = [];
  const modes = [];
  const sizes = [];
  const mtimes = [];
  const ctimes = [];
  const inos = [];
  const targets = {};
  const stack = [...msg.dirs];
  let budget = msg.budget;
  while (stack.length > 0 && budget > 0) {
    const rel = stack.pop();
    const abs = rel === '' ? msg.root : msg.root + '/' + rel;
    let names;
    try {
      names = fs.readdirSync(abs);
    } catch (err) {
      errors.push((rel || '.') + ': ' + err.message);
      continue;
    }
    budget -= names.length + 1;
    for (const name of names) {
      const childRel = rel === '' ? name : rel + '/' + name;
      let s;
      try {
        // Numbers, not bigints: mtimeMs and ctimeMs keep sub-microsecond fractions, and a
        // number costs far less to make, send and compare than a bigint or its string.
        s = fs.lstatSync(abs + '/' + name);
      } catch (err) {
        // Gone since readdir: the next scan sees the tree as it is then.
        if (err.code !== 'ENOENT') errors.push(childRel + ': ' + err.message);
        continue;
      }
      const type = typeOf(s);
      if (type === 'l') {
        try {
          targets[paths.length] = fs.readlinkSync(abs + '/' + name);
        } catch (err) {
          errors.push(childRel + ': ' + err.message);
          targets[paths.length] = '';
        }
      }
      paths.push(childRel);
      types.push(type);
      modes.push(s.mode & 0o7777);
      sizes.push(s.size);
      mtimes.push(s.mtimeMs);
      ctimes.push(s.ctimeMs);
      inos.push(s.ino);
      if (type === 'd') stack.push(childRel);
    }
  }
  const batch = {
    paths,
    types: types.join(''),
    modes: Int32Array.from(modes),
    sizes: Float64Array.from(sizes),
    mtimes: Float64Array.from(mtimes),
    ctimes: Float64Array.from(ctimes),
    inos: Float64Array.from(inos),
    targets,
  };
  return { id: msg.id, batch, pending: stack, errors };
}

function hash(msg) {
  const errors = [];
  const digests = Buffer.alloc(msg.files.length * 32);
  const ok = new Uint8Array(msg.files.length);
  msg.files.forEach((rel, k) => {
    let fd;
    try {
      fd = fs.openSync(msg.root + '/' + rel, 'r');
      // Asking for one byte more than the walk saw tells the end of a file of that size
      // without a second read (a file of tens of KB then costs one read call, not two).
      const size = msg.sizes[k];
      const first = Math.min(buffer.length, size + 1);
      const n0 = fs.readSync(fd, buffer, 0, first, null);
      if (blake && n0 < first && n0 === size) {
        // The whole file in one read: hashed in one call.
        blake.blake3(buffer.subarray(0, n0)).copy(digests, k * 32);
      } else {
        const h = blake ? new blake.Blake3Hasher() : crypto.createHash('sha256');
        h.update(buffer.subarray(0, n0));
        let total = n0;
        let n = n0;
        let want = first;
        while (n > 0 && !(n < want && total === size)) {
          want = Math.min(buffer.length, Math.max(size + 1 - total, 1));
          n = fs.readSync(fd, buffer, 0, want, null);
          if (n === 0) break;
          h.update(buffer.subarray(0, n));
          total += n;
        }
        (blake ? h.digestBuffer() : h.digest()).copy(digests, k * 32);
      }
      ok[k] = 1;
    } catch (err) {
      errors.push(rel + ': ' + err.message);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  });
  return { id: msg.id, digests, ok, errors };
}

parentPort.on('message', (msg) => parentPort.postMessage(msg.op === 'walk' ? walk(msg) : hash(msg)));
`;

/** Entries a worker stats before it hands its unwalked directories back, so work spreads evenly. */
const WALK_BUDGET = 4000;
/** Bytes per hashing batch: large enough to amortise a message, small enough to spread. */
const HASH_BATCH_BYTES = 32 << 20;
const HASH_BATCH_FILES = 512;

export class TreeWalkers {
  private readonly workers: Worker[];
  private readonly idle: Worker[];
  private readonly waiting: ((w: Worker) => void)[] = [];
  private nextId = 0;
  readonly contentHash: ContentHash;

  constructor(threads = Math.max(1, Math.min(4, os.availableParallelism())), env: NodeJS.ProcessEnv = process.env) {
    const blake3 = blake3Module(env);
    this.contentHash = blake3 ? 'blake3' : 'sha256';
    this.workers = Array.from({ length: threads }, () => {
      // Small heaps: a worker holds one batch at a time, and a small young generation keeps its
      // garbage from piling up into the agent's resident memory.
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { blake3: blake3 ?? null },
        resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 96 },
      });
      worker.unref();
      return worker;
    });
    this.idle = [...this.workers];
  }

  private async withWorker<T>(fn: (w: Worker) => Promise<T>): Promise<T> {
    const worker = this.idle.pop() ?? (await new Promise<Worker>((resolve) => this.waiting.push(resolve)));
    try {
      return await fn(worker);
    } finally {
      const next = this.waiting.shift();
      if (next) next(worker);
      else this.idle.push(worker);
    }
  }

  private request<R extends { id: number }>(worker: Worker, message: object): Promise<R> {
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      const onMessage = (reply: R) => {
        if (reply.id !== id) return;
        worker.off('message', onMessage);
        worker.off('error', onError);
        resolve(reply);
      };
      const onError = (err: Error) => {
        worker.off('message', onMessage);
        reject(err);
      };
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.postMessage({ ...message, id });
    });
  }

  /**
   * Every entry under `root` (not `root` itself), in no particular order, batch by batch to
   * `onBatch`, so a batch is garbage by the time the next arrives.
   */
  async walk(
    root: string,
    signal: AbortSignal | undefined,
    onBatch: (batch: StatBatch) => void,
  ): Promise<{ errors: string[] }> {
    const errors: string[] = [];
    const queue: string[] = [''];
    let running = 0;
    await new Promise<void>((resolve, reject) => {
      const pump = () => {
        if (signal?.aborted) return reject(signal.reason as Error);
        if (queue.length === 0 && running === 0) return resolve();
        while (queue.length > 0 && running < this.workers.length) {
          // Share what is queued among the threads; a thread keeps walking depth-first within its budget.
          const take = Math.max(1, Math.ceil(queue.length / this.workers.length));
          const dirs = queue.splice(0, take);
          running++;
          this.withWorker((w) => this.request<WalkReply>(w, { op: 'walk', root, dirs, budget: WALK_BUDGET }))
            .then((reply) => {
              running--;
              onBatch(reply.batch);
              errors.push(...reply.errors);
              queue.push(...reply.pending);
              pump();
            })
            .catch(reject);
        }
      };
      pump();
    });
    return { errors };
  }

  /** The contentHash digest of each file (relative to root), in order; `ok[k]` is 0 where file k could not be read. */
  async hash(
    root: string,
    files: { path: string; size: number }[],
    onBatch?: (files: number, bytes: number) => void,
  ): Promise<HashResult> {
    const digests = Buffer.alloc(files.length * 32);
    const ok = new Uint8Array(files.length);
    const errors: string[] = [];
    const batches: { start: number; end: number; bytes: number }[] = [];
    for (let i = 0; i < files.length;) {
      let bytes = 0;
      const start = i;
      while (i < files.length && i - start < HASH_BATCH_FILES && (bytes === 0 || bytes < HASH_BATCH_BYTES)) {
        bytes += files[i]!.size;
        i++;
      }
      batches.push({ start, end: i, bytes });
    }
    await Promise.all(
      batches.map((b) =>
        this.withWorker(async (w) => {
          const batch = files.slice(b.start, b.end);
          const reply = await this.request<HashReply>(w, {
            op: 'hash',
            root,
            files: batch.map((f) => f.path),
            sizes: batch.map((f) => f.size),
          });
          digests.set(reply.digests, b.start * 32);
          ok.set(reply.ok, b.start);
          errors.push(...reply.errors);
          onBatch?.(b.end - b.start, b.bytes);
        }),
      ),
    );
    return { digests, ok, errors };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
