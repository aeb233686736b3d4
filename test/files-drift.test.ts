// Drift scans of the files kind driven as the scan workflow drives them, on real trees: both
// agents answer the same question from their tree indexes, the comparison yields differences and
// the next questions. A scan may start from what the pair's last scan found: the folders leading
// there are answered with the root, so persisting drift costs fewer rounds and the same findings.
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DriftDifference, PreviousDifference } from '../src/components/drift';
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
async function scan(previous: readonly PreviousDifference[]) {
  const scanId = `scan-${++scans}`;
  const sides = [
    { describe: createFilesDescriber(), component: component(from), stateDir: path.join(root, 'state-from') },
    { describe: createFilesDescriber(), component: component(to), stateDir: path.join(root, 'state-to') },
  ];
  const questions: FilesDriftQuestion[] = [filesDrift.firstQuestion(component(from), previous) as FilesDriftQuestion];
  const differences: DriftDifference[] = [];
  let rounds = 0;
  while (questions.length > 0) {
    if (++rounds > 20) throw new Error('the scan did not settle in 20 rounds');
    // One round: every question left, answered by both sides (the workflow asks them at once).
    const batch = questions.splice(0);
    for (const question of batch) {
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
      const result = filesDrift.compare(question, a!, b!, component(from));
      differences.push(...result.differences);
      questions.push(...(result.next as FilesDriftQuestion[]));
    }
  }
  const found = differences.map((d) => `${d.change} ${d.subject} [${d.aspect}]: ${d.detail}`).sort();
  return { found, differences, rounds };
}

describe('files drift scan', () => {
  const expected = [
    'changed conf/app.yaml:database.pool [key]: 10 → 20',
    'changed d0/s1/f0.bin [mode]: mode 644 → 600',
    'changed d1/s2/f3.bin [content]: content differs (9 B → 8 B)',
    'removed d2/s0/f4.bin [content]: file, 9 B',
  ];

  test('starts from the folders where the last scan found drift: the same findings in fewer rounds', async () => {
    const first = await scan([]);
    expect(first.found).toEqual(expected);

    const previous = first.differences.map((d) => ({ aspect: d.aspect, subject: d.subject }));
    const question = filesDrift.firstQuestion(component(from), previous) as FilesDriftQuestion;
    expect(question).toEqual({
      kind: 'files',
      root: true,
      nodes: ['', 'conf', 'd0', 'd1', 'd2', 'd0/s1', 'd1/s2', 'd2/s0'].map((dir) => ({ dir })),
    });
    const again = await scan(previous);

    expect(again.found).toEqual(expected);
    // Root, its folders, their sub-folders, then the config file's keys: four rounds; with the
    // folders answered at once, the config file's keys are all that is left.
    expect(first.rounds).toBe(4);
    expect(again.rounds).toBe(2);
  });

  test('a hint that no longer holds costs nothing: folders gone are answered absent, findings are exact', async () => {
    const wrong = [
      { aspect: 'content', subject: 'gone/away/x.bin' },
      { aspect: 'key', subject: 'd9/s9/app.yaml:a.b/c' },
    ];
    const { found } = await scan(wrong);
    expect(found).toEqual(expected);
  });

  test('identical trees end in one round whatever the hint names', async () => {
    const same = path.join(root, 'same');
    makeTree(same);
    const question = filesDrift.firstQuestion(component(from), [
      { aspect: 'content', subject: 'd1/s2/f3.bin' },
    ]) as FilesDriftQuestion;
    expect(question.nodes).toHaveLength(3);
    const ctx = (stateDir: string) => ({ scanId: 'same', hashKey: 'k', secretKeys: [], stateDir });
    const a = await createFilesDescriber()(component(from), question, ctx(path.join(root, 'same-a')));
    const b = await createFilesDescriber()(component(same), question, ctx(path.join(root, 'same-b')));

    // `from` and `same` hold the same tree, made the same way.
    expect(filesDrift.compare(question, a, b, component(from))).toEqual({ differences: [], next: [] });
  });
});
