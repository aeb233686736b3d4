// Drift scans of the files kind driven as the scan workflow drives them, on real trees: both
// agents answer the same question from their tree indexes, the comparison yields differences and
// the next questions, down only the folders whose digests differ.
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DriftDifference } from '../src/components/drift';
import { createFilesDescriber, filesDrift, type FilesDriftQuestion } from '../src/components/files/drift';
import { filesComponentSchema } from '../src/components/files/kind';
import { tempDir } from './support/temp';

const root = tempDir('rewind-files-drift-');
const from = path.join(root, 'production');
const to = path.join(root, 'regression');
const component = (dir: string) => filesComponentSchema.parse({ kind: 'files', path: dir });

function makeTree(dir: string): void {
  for (let d = 0; d < 3; d++)
    for (let s = 0; s < 3; s++) {
      const folder = path.join(dir, `d${d}`, `s${s}`);
      mkdirSync(folder, { recursive: true });
      for (let f = 0; f < 5; f++) writeFileSync(path.join(folder, `f${f}.bin`), `d${d} s${s} f${f}\n`);
    }
  mkdirSync(path.join(dir, 'conf'), { recursive: true });
  writeFileSync(path.join(dir, 'conf', 'app.yaml'), 'database:\n  pool: 10\n  host: db\n');
}

beforeAll(() => {
  makeTree(from);
  makeTree(to);
  writeFileSync(path.join(to, 'd1', 's2', 'f3.bin'), 'changed\n');
  rmSync(path.join(to, 'd2', 's0', 'f4.bin'));
  chmodSync(path.join(to, 'd0', 's1', 'f0.bin'), 0o600);
  writeFileSync(path.join(to, 'conf', 'app.yaml'), 'database:\n  pool: 20\n  host: db\n');
});

let scans = 0;

/** One scan, each side with its own describer and state (two agents), until no question is left. */
async function scan(dirs = { from, to }) {
  const scanId = `scan-${++scans}`;
  const sides = [
    {
      describe: createFilesDescriber(),
      component: component(dirs.from),
      stateDir: path.join(root, 'state', path.basename(dirs.from)),
    },
    {
      describe: createFilesDescriber(),
      component: component(dirs.to),
      stateDir: path.join(root, 'state', path.basename(dirs.to)),
    },
  ];
  const questions: FilesDriftQuestion[] = [filesDrift.firstQuestion(component(from), []) as FilesDriftQuestion];
  const askedNodes: string[] = [];
  const differences: DriftDifference[] = [];
  let rounds = 0;
  while (questions.length > 0) {
    if (++rounds > 20) throw new Error('the scan did not settle in 20 rounds');
    // One round: every question left, answered by both sides (the workflow asks them at once).
    const batch = questions.splice(0);
    for (const question of batch) {
      askedNodes.push(...(question.nodes ?? []).map((n) => `${n.dir}#${n.bucket ?? ''}`));
      const [a, b] = await Promise.all(
        sides.map((side) =>
          side.describe(side.component, question, {
            scanId,
            hashKey: 'drift-test-key',
            secretKeys: [],
            stateDir: side.stateDir,
          }),
        ),
      );
      const result = filesDrift.compare(question, a!, b!, component(from), {
        from: 'production',
        to: 'regression',
      });
      differences.push(...result.differences);
      questions.push(...(result.next as FilesDriftQuestion[]));
    }
  }
  const found = differences.map((d) => `${d.change} ${d.subject} [${d.aspect}]: ${d.detail}`).sort();
  return { found, differences, rounds, askedNodes };
}

describe('files drift scan', () => {
  const expected = [
    'changed conf/app.yaml:database.pool [key]: 10 → 20',
    'changed d0/s1/f0.bin [mode]: mode 644 → 600',
    'changed d1/s2/f3.bin [content]: content differs (9 B → 8 B)',
    'removed d2/s0/f4.bin [content]: file, 9 B',
  ];

  test('finds exactly what differs, going down only the folders whose digests differ', async () => {
    const { found, rounds, askedNodes } = await scan();
    expect(found).toEqual(expected);
    // Root, its folders, their sub-folders, then the config file's keys.
    expect(rounds).toBe(4);
    expect([...askedNodes].sort()).toEqual(['#', 'conf#', 'd0#', 'd0/s1#', 'd1#', 'd1/s2#', 'd2#', 'd2/s0#']);
  });

  test('folders of more children than one answer holds are each asked for once', async () => {
    // 50 folders of 100 files: more children than one answer holds (4,000).
    const wide = (dir: string) => {
      for (let d = 0; d < 50; d++) {
        const folder = path.join(dir, `w${String(d).padStart(2, '0')}`);
        mkdirSync(folder, { recursive: true });
        for (let f = 0; f < 100; f++) writeFileSync(path.join(folder, `f${f}`), `${d} ${f}\n`);
      }
    };
    const a = path.join(root, 'wide-a');
    const b = path.join(root, 'wide-b');
    wide(a);
    wide(b);
    for (let d = 0; d < 50; d++) writeFileSync(path.join(b, `w${String(d).padStart(2, '0')}`, 'f7'), 'changed\n');

    const { found, askedNodes } = await scan({ from: a, to: b });

    expect(found).toHaveLength(50);
    expect(found[0]).toBe('changed w00/f7 [content]: content differs (4 B → 8 B)');
    expect(new Set(askedNodes).size).toBe(askedNodes.length);
  });

  test('a config file that parses on one side only is compared line by line, and flagged', async () => {
    const a = path.join(root, 'parse-a');
    const b = path.join(root, 'parse-b');
    for (const dir of [a, b]) mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(a, 'app.yaml'), 'database:\n  pool: 10\n  host: db\n  password: hunter2\n');
    // A broken indentation, and the pool changed too; the password line is the same.
    writeFileSync(path.join(b, 'app.yaml'), 'database:\n  pool: 20\n   host: db\n  password: hunter2\n');

    const { found, differences } = await scan({ from: a, to: b });

    expect(found[0]).toMatch(
      /^changed app\.yaml \[unparseable\]: production parsed as yaml; regression could not be parsed as yaml \(line 2, column 9: Nested mappings are not allowed in compact mappings\)$/,
    );
    expect(found.slice(1)).toEqual([
      'changed app.yaml:line 2 [line]:   pool: 10 →   pool: 20',
      'changed app.yaml:line 3 [line]:   host: db →    host: db',
    ]);
    expect(differences[0]!.severity).toBe('warning');
    expect(JSON.stringify(differences)).not.toContain('hunter2');
  });

  test('a pickle on one side only that can run code is an added critical finding', async () => {
    const a = path.join(root, 'pickle-a');
    const b = path.join(root, 'pickle-b');
    for (const dir of [a, b]) mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(b, 'evil.pkl'), Buffer.from('\x80\x02cposix\nsystem\n.', 'latin1'));
    const { found, differences } = await scan({ from: a, to: b });
    expect(found).toEqual([
      'added evil.pkl [content]: file, 17 B',
      'added evil.pkl:global posix.system [pickle-global]: regression copy names posix.system (GLOBAL at byte 2): unpickling it can run code',
    ]);
    expect(differences.find((d) => d.aspect === 'pickle-global')?.severity).toBe('critical');
    // Its structure was not compared (no other copy), so earlier structure findings are not seen;
    // its globals were read, so an earlier dangerous global no longer there is resolved.
    expect(differences.find((d) => d.aspect === 'content')?.unseen).toEqual({ prefix: 'evil.pkl:', aspect: 'pickle' });
  });

  test('identical trees end in one round', async () => {
    const same = path.join(root, 'same');
    makeTree(same);
    const { found, rounds } = await scan({ from, to: same });
    expect(found).toEqual([]);
    expect(rounds).toBe(1);
  });
});
