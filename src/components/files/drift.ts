// Drift of a files component: the two agents' tree indexes are compared from the root down,
// by Merkle digest, asking only for the children of directories that differ; files that differ
// are then compared by what they hold (config keys, pickle structure) when the kind can read them.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { count, formatBytes } from '../../domain/format';
import type {
  DescribeContext,
  DriftAnswerStats,
  DriftChange,
  DriftComparison,
  DriftDifference,
  DriftQuestion,
  DriftSides,
  KindDrift,
} from '../drift';
import { compareConfigs, configFormatOf, summarizeConfig, type ConfigSummary } from './config-diff';
import type { FilesComponent } from './kind';
import { boundedPickleSummary, comparePickles, pickleHazards } from './pickle-diff';
import { inspectPickle, type PickleSummary } from './pickle-inspect';
import { BUCKETS, bucketOf, digestOfChildren, TreeIndex, type RefreshStats, type TreeChild } from './tree-index';
import { TreeWalkers, type ContentHash } from './tree-walker';

export interface FilesNodeQuestion {
  dir: string;
  bucket?: number;
}

export interface FilesDriftQuestion extends DriftQuestion {
  kind: 'files';
  /** The root digest only: the first question of every scan (it refreshes the index). */
  root?: true;
  nodes?: FilesNodeQuestion[];
  /** Files to describe by content (config keys, pickle structure). */
  files?: string[];
  /**
   * Config files to describe line by line, whether they parse or not: one side's copy parsed
   * and the other's did not, so only their lines can be compared.
   */
  lines?: string[];
}

export interface FilesNodeAnswer extends FilesNodeQuestion {
  /** The directory is not there (it went away between rounds). */
  absent?: true;
  /** Not answered in this round (the answer's budget ran out): ask again. */
  deferred?: true;
  digest?: string;
  children?: TreeChild[];
  /** For a directory too large to answer at once: the digest of each bucket of children. */
  buckets?: string[];
}

export type FileDescription =
  | { config: ConfigSummary }
  | { pickle: PickleSummary & { globalsLeftOut?: number }; readBytes: number }
  | { absent: true }
  | { error: string }
  | { deferred: true };

export interface FilesDriftAnswer extends DriftQuestion {
  kind: 'files';
  root?: {
    exists: boolean;
    digest: string;
    files: number;
    /** How this side hashed file contents; absent from agents before BLAKE3: sha256. */
    contentHash?: ContentHash;
    refresh: Omit<RefreshStats, 'errors'> & { errors: string[] };
  };
  nodes?: FilesNodeAnswer[];
  files?: Record<string, FileDescription>;
  /** With the root: what refreshing the index took, for the scan's status. */
  stats?: DriftAnswerStats;
}

/**
 * Children answered per round at most (a child is about 120 bytes of payload): an answer stays
 * under Temporal's 512 KB payload warning, and a wave of questions adds a few MB of history.
 */
const ANSWER_CHILDREN = 4000;
/** Bytes of file descriptions answered per round at most. */
const ANSWER_DESCRIPTION_BYTES = 400_000;
const NODES_PER_QUESTION = 32;
const FILES_PER_QUESTION = 25;
/** Config files larger than this are compared by content hash only. */
const MAX_CONFIG_BYTES = 8 << 20;
/** Pickles are read up to this much; a larger one is inspected in part, and says so. */
const MAX_PICKLE_BYTES = 64 << 20;
const PICKLE_EXTENSIONS = new Set(['.pkl', '.pickle', '.pck', '.p']);

type ContentKind = 'config' | 'pickle' | undefined;

/** How the kind reads a file of this component: by the component's format, else by its name. */
function contentKindOf(component: FilesComponent, relPath: string): ContentKind {
  if (component.format === 'pickle') return 'pickle';
  if (component.format === 'config') return 'config';
  if (PICKLE_EXTENSIONS.has(path.extname(relPath).toLowerCase())) return 'pickle';
  return configFormatOf(relPath) ? 'config' : undefined;
}

export const filesDrift: KindDrift<FilesComponent> = {
  firstQuestion: () => ({ kind: 'files', root: true }) satisfies FilesDriftQuestion,

  syncOverwrites: (_component, { from, to }) =>
    `${to}'s files that differ are overwritten with ${from}'s, and files only ${to} has are removed; what the rules allow to differ is kept`,

  compare(question, fromAnswer, toAnswer, component, sides): DriftComparison {
    const q = question as FilesDriftQuestion;
    const from = fromAnswer as FilesDriftAnswer;
    const to = toAnswer as FilesDriftAnswer;
    const differences: DriftDifference[] = [];
    const nodes: FilesNodeQuestion[] = [];
    const files: string[] = [];
    const lines: string[] = [];

    if (q.root && from.root && to.root) {
      for (const [side, root] of [
        [sides.from, from.root],
        [sides.to, to.root],
      ] as const) {
        for (const error of root.refresh.errors)
          differences.push({
            subject: error.split(':')[0] ?? error,
            change: 'changed',
            detail: `${side} could not read it: ${error}`,
            aspect: 'unreadable',
            severity: 'warning',
          });
      }
      if (!from.root.exists && !to.root.exists) return { differences, next: [] };
      const fromHash = from.root.contentHash ?? 'sha256';
      const toHash = to.root.contentHash ?? 'sha256';
      if (fromHash !== toHash) {
        // Every file would seem changed: say why, and compare nothing.
        differences.push({
          subject: '/',
          change: 'changed',
          detail: `not compared: the agents hash file contents differently (${sides.from} ${fromHash}, ${sides.to} ${toHash}); run the same rewind version on both, or set REWIND_TREE_HASH=sha256 on both`,
          aspect: 'unreadable',
          severity: 'warning',
          unseen: { prefix: '' },
        });
        return { differences, next: [] };
      }
      if (from.root.exists !== to.root.exists) {
        differences.push({
          subject: '/',
          change: to.root.exists ? 'added' : 'removed',
          detail: `the component's directory exists only in ${to.root.exists ? sides.to : sides.from} (${count(to.root.exists ? to.root.files : from.root.files, 'file')})`,
          aspect: 'content',
          unseen: { prefix: '' },
        });
      } else if (from.root.digest !== to.root.digest) nodes.push({ dir: '' });
    }

    const toNodes = new Map((to.nodes ?? []).map((n) => [nodeKey(n), n]));
    for (const a of from.nodes ?? []) {
      const b = toNodes.get(nodeKey(a));
      if (!b || a.deferred || b.deferred) {
        nodes.push(nodeQuestion(a));
        continue;
      }
      if (a.absent || b.absent) continue; // changed under the scan; the next scan sees it settled
      if (a.digest === b.digest) continue;
      if (a.buckets || b.buckets) {
        const left = a.buckets ?? bucketDigests(a.children ?? []);
        const right = b.buckets ?? bucketDigests(b.children ?? []);
        for (let i = 0; i < BUCKETS; i++) if (left[i] !== right[i]) nodes.push({ dir: a.dir, bucket: i });
        continue;
      }
      compareChildren(a.dir, a.children ?? [], b.children ?? [], component, differences, nodes, files);
    }

    const fromFiles = from.files ?? {};
    const toFiles = to.files ?? {};
    for (const [asked, again] of [
      [q.files, files],
      [q.lines, lines],
    ] as const) {
      for (const p of asked ?? []) {
        const a = fromFiles[p];
        const b = toFiles[p];
        if (!a || !b) {
          // Asking again would get the same answer (an agent of an older rewind, say).
          differences.push({
            subject: p,
            change: 'changed',
            detail: `not compared: ${!a ? sides.from : sides.to}'s agent did not describe it (run the same rewind version on both)`,
            aspect: 'unreadable',
            severity: 'warning',
          });
          continue;
        }
        if ('deferred' in a || 'deferred' in b) {
          again.push(p);
          continue;
        }
        // One copy parses and the other does not: compare both line by line, in another round.
        if ('config' in a && 'config' in b && a.config.parsed !== b.config.parsed) lines.push(p);
        else differences.push(...compareDescriptions(p, a, b, sides));
      }
    }

    const next: FilesDriftQuestion[] = [];
    for (let i = 0; i < nodes.length; i += NODES_PER_QUESTION)
      next.push({ kind: 'files', nodes: nodes.slice(i, i + NODES_PER_QUESTION) });
    for (let i = 0; i < files.length; i += FILES_PER_QUESTION)
      next.push({ kind: 'files', files: files.slice(i, i + FILES_PER_QUESTION) });
    for (let i = 0; i < lines.length; i += FILES_PER_QUESTION)
      next.push({ kind: 'files', lines: lines.slice(i, i + FILES_PER_QUESTION) });
    return { differences, next };
  },
};

function nodeKey(n: FilesNodeQuestion): string {
  return `${n.bucket ?? '-'}:${n.dir}`;
}

function nodeQuestion(n: FilesNodeQuestion): FilesNodeQuestion {
  return n.bucket === undefined ? { dir: n.dir } : { dir: n.dir, bucket: n.bucket };
}

function bucketDigests(children: TreeChild[]): string[] {
  const groups: TreeChild[][] = Array.from({ length: BUCKETS }, () => []);
  for (const c of children) groups[bucketOf(c.n)]!.push(c);
  // The same digests the tree index gives a large directory's buckets.
  return groups.map(digestOfChildren);
}

const TYPE_WORDS: Record<TreeChild['t'], string> = { f: 'file', d: 'directory', l: 'link', o: 'special file' };

function describeChild(c: TreeChild): string {
  switch (c.t) {
    case 'f':
      return `file, ${formatBytes(c.s)}`;
    case 'd':
      return `directory, ${count(c.s, 'file')}`;
    case 'l':
      return `link → ${c.l ?? ''}`;
    default:
      return TYPE_WORDS[c.t];
  }
}

function compareChildren(
  dir: string,
  from: TreeChild[],
  to: TreeChild[],
  component: FilesComponent,
  differences: DriftDifference[],
  nodes: FilesNodeQuestion[],
  files: string[],
): void {
  const join = (name: string) => (dir === '' ? name : `${dir}/${name}`);
  const toByName = new Map(to.map((c) => [c.n, c]));
  const fromNames = new Set(from.map((c) => c.n));
  // A child on one side only; a pickle's content is asked for, to say whether it can run code.
  const oneSided = (c: TreeChild, change: 'added' | 'removed') => {
    const p = join(c.n);
    differences.push({
      subject: c.t === 'd' ? `${p}/` : p,
      change,
      detail: describeChild(c),
      aspect: 'content',
      // What lies inside (a folder's entries, a config file's keys, a pickle's structure) is not
      // compared; a pickle's dangerous globals are, since its content is asked for below.
      unseen:
        c.t === 'd'
          ? { prefix: `${p}/` }
          : contentKindOf(component, p) === 'pickle'
            ? { prefix: `${p}:`, aspect: 'pickle' }
            : { prefix: `${p}:` },
    });
    if (c.t === 'f' && contentKindOf(component, p) === 'pickle') files.push(p);
  };
  for (const b of to) if (!fromNames.has(b.n)) oneSided(b, 'added');
  for (const a of from) {
    const p = join(a.n);
    const b = toByName.get(a.n);
    if (!b) {
      oneSided(a, 'removed');
      continue;
    }
    if (a.t !== b.t) {
      differences.push({
        subject: p,
        change: 'changed',
        detail: `${describeChild(a)} → ${describeChild(b)}`,
        aspect: 'type',
      });
      continue;
    }
    if (a.m !== b.m)
      differences.push({
        subject: a.t === 'd' ? `${p}/` : p,
        change: 'changed',
        detail: `mode ${a.m.toString(8)} → ${b.m.toString(8)}`,
        aspect: 'mode',
      });
    if (a.d === b.d) continue;
    if (a.t === 'd') nodes.push({ dir: p });
    else if (a.t === 'l')
      differences.push({
        subject: p,
        change: 'changed',
        detail: `link → ${a.l ?? ''} ⇒ → ${b.l ?? ''}`,
        aspect: 'link',
      });
    else if (a.t === 'f' && contentKindOf(component, p)) files.push(p);
    else
      differences.push({
        subject: p,
        change: 'changed',
        detail: `content differs (${formatBytes(a.s)} → ${formatBytes(b.s)})`,
        aspect: 'content',
      });
  }
}

function compareDescriptions(p: string, a: FileDescription, b: FileDescription, sides: DriftSides): DriftDifference[] {
  const found: DriftDifference[] = [];
  for (const [side, d] of [
    [sides.from, a],
    [sides.to, b],
  ] as const) {
    if ('error' in d)
      found.push({
        subject: p,
        change: 'changed',
        detail: `the ${side} copy could not be read: ${d.error}`,
        aspect: 'unreadable',
        severity: 'warning',
        unseen: { prefix: `${p}:` },
      });
  }
  if (found.length) return found;
  if ('config' in a && 'config' in b) return compareConfigs(p, a.config, b.config, sides);
  // A copy on one side only: what it holds was added (to) or removed (from), not changed.
  const alone: DriftChange | undefined = 'absent' in a ? 'added' : 'absent' in b ? 'removed' : undefined;
  const hazards = (side: string, d: FileDescription) =>
    'pickle' in d ? pickleHazards(p, side, d.pickle).map((h) => (alone ? { ...h, change: alone } : h)) : [];
  const all = [...hazards(sides.from, a), ...hazards(sides.to, b)];
  // The same hazard in both copies is one finding.
  const seen = new Set<string>();
  const unique = all.filter((h) => (seen.has(h.subject) ? false : (seen.add(h.subject), true)));
  if ('pickle' in a && 'pickle' in b) return [...comparePickles(p, a.pickle, b.pickle), ...unique];
  return unique;
}

/**
 * The agent's half: answers questions from each component's tree index, kept in memory for the
 * rest of a scan and on disk (`<stateDir>/tree-index.json`) between scans and restarts.
 */
export function createFilesDescriber() {
  let walkers: TreeWalkers | undefined;
  interface HeldIndex {
    index: TreeIndex;
    scanId: string;
    /** The saved file's mtime when this index was last written or read. */
    savedAt: number | undefined;
    saving?: Promise<void>;
  }
  const indexes = new Map<string, HeldIndex>();

  const indexFor = async (component: FilesComponent, ctx: DescribeContext, refresh: boolean) => {
    const held = indexes.get(ctx.stateDir);
    // Later rounds of a scan read the index its first round refreshed, so both sides answer
    // about the same moment; a new scan, or an agent restarted mid-scan, refreshes it.
    if (held && held.scanId === ctx.scanId && !refresh) return { index: held.index };
    await held?.saving;
    const file = path.join(ctx.stateDir, 'tree-index.json');
    // The file is the index; memory only saves reading it again. Deleting the file makes the
    // next scan hash every file anew.
    const onDisk = await stat(file).then(
      (s) => s.mtimeMs,
      () => undefined,
    );
    const reuse = held && held.index.root === component.path && held.savedAt === onDisk;
    // Let go of an index that will not be reused before reading another: two at once would
    // double the agent's memory for a large tree.
    if (!reuse) indexes.delete(ctx.stateDir);
    const index = reuse ? held.index : await TreeIndex.load(file, component.path);
    walkers ??= new TreeWalkers();
    const stats = await index.refresh(walkers, ctx.signal ? { signal: ctx.signal } : {});
    const entry: HeldIndex = { index, scanId: ctx.scanId, savedAt: onDisk };
    // Written while the scan goes on; the next scan waits for it.
    entry.saving = index
      .save(file)
      .then(async (wrote) => {
        if (wrote) entry.savedAt = (await stat(file)).mtimeMs;
      })
      .catch((err: unknown) => {
        entry.savedAt = undefined; // read it again next time
        ctx.logger?.warn({ err, file }, 'could not save the tree index');
      });
    indexes.set(ctx.stateDir, entry);
    return { index, stats };
  };

  return async (component: FilesComponent, question: FilesDriftQuestion, ctx: DescribeContext) => {
    const { index, stats } = await indexFor(component, ctx, question.root === true);
    return describeFiles(component, question, index, ctx, stats);
  };
}

const MAX_REPORTED_ERRORS = 20;

async function describeFiles(
  component: FilesComponent,
  question: FilesDriftQuestion,
  index: TreeIndex,
  ctx: DescribeContext,
  stats: RefreshStats | undefined,
): Promise<FilesDriftAnswer> {
  const answer: FilesDriftAnswer = { kind: 'files' };
  if (question.root) {
    const refresh = stats ?? { entries: 0, files: 0, changed: 0, hashed: 0, bytesHashed: 0, errors: [], ms: 0 };
    answer.root = {
      exists: index.exists,
      digest: index.rootDigest,
      files: index.fileCount,
      contentHash: index.contentHash,
      refresh: { ...refresh, errors: refresh.errors.slice(0, MAX_REPORTED_ERRORS) },
    };
    answer.stats = { files: refresh.files, hashed: refresh.hashed, ms: refresh.ms };
  }
  if (question.nodes) {
    let budget = ANSWER_CHILDREN;
    answer.nodes = question.nodes.map((n) => {
      if (budget <= 0) return { ...nodeQuestion(n), deferred: true };
      const node = index.node(n.dir, n.bucket);
      if (!node) return { ...nodeQuestion(n), absent: true };
      budget -= node.children?.length ?? BUCKETS / 4;
      return { ...nodeQuestion(n), ...node };
    });
  }
  if (question.files || question.lines) {
    let budget = ANSWER_DESCRIPTION_BYTES;
    answer.files = {};
    for (const [paths, byLines] of [
      [question.files ?? [], false],
      [question.lines ?? [], true],
    ] as const) {
      for (const p of paths) {
        if (budget <= 0) {
          answer.files[p] = { deferred: true };
          continue;
        }
        const description = await describeFile(component, p, ctx, byLines);
        budget -= JSON.stringify(description).length;
        answer.files[p] = description;
      }
    }
  }
  return answer;
}

async function describeFile(
  component: FilesComponent,
  relPath: string,
  ctx: DescribeContext,
  byLines = false,
): Promise<FileDescription> {
  const file = path.join(component.path, ...relPath.split('/'));
  const kind = contentKindOf(component, relPath);
  try {
    const info = await stat(file);
    if (!info.isFile()) return { absent: true };
    if (kind === 'pickle' && !byLines) {
      const handle = await import('node:fs/promises').then((fs) => fs.open(file, 'r'));
      try {
        const size = Math.min(info.size, MAX_PICKLE_BYTES);
        const data = Buffer.alloc(size);
        await handle.read(data, 0, size, 0);
        const summary = inspectPickle(data);
        if (info.size > MAX_PICKLE_BYTES)
          summary.problems.unshift({
            offset: size,
            message: `only the first ${formatBytes(size)} of ${formatBytes(info.size)} were read`,
          });
        return { pickle: boundedPickleSummary(summary), readBytes: size };
      } finally {
        await handle.close();
      }
    }
    if (info.size > MAX_CONFIG_BYTES)
      return { error: `larger than ${formatBytes(MAX_CONFIG_BYTES)}, compared by content hash only` };
    const text = await readFile(file, 'utf8');
    return {
      config: summarizeConfig(text, configFormatOf(relPath), {
        hashKey: ctx.hashKey,
        secretKeys: ctx.secretKeys,
        maxKeys: 2000,
        lines: byLines,
      }),
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { absent: true };
    return { error: (err as Error).message };
  }
}
