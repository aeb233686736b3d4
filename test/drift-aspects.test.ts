// Drift rules may name a finding's aspect, and the manifest refuses one no finding has: so every
// aspect a kind's comparison (or the scan itself) reports must be among those it declares.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DRIFT_ASPECTS, KIND_NAMES } from '../src/components/registry';
import { SCAN_DRIFT_ASPECTS } from '../src/domain/drift-scan';
import { filesKind } from '../src/components/files/kind';
import { postgresKind } from '../src/components/postgres/kind';
import { appKind } from '../src/components/app/kind';

const src = path.join(__dirname, '..', 'src');

function aspectsIn(files: string[]): Set<string> {
  const found = new Set<string>();
  for (const file of files)
    for (const m of readFileSync(file, 'utf8').matchAll(/\baspect: '([a-z-]+)'/g)) found.add(m[1]!);
  return found;
}

test('every aspect a kind reports is one it declares', () => {
  const kinds = [filesKind, postgresKind, appKind];
  expect(kinds.map((k) => k.name).sort()).toEqual([...KIND_NAMES].sort());
  for (const kind of kinds) {
    const dir = path.join(src, 'components', kind.name);
    const reported = aspectsIn(readdirSync(dir).map((f) => path.join(dir, f)));
    expect(reported.size).toBeGreaterThan(0);
    for (const aspect of reported)
      expect(`${kind.name}: ${kind.driftAspects.find((a) => a === aspect) ?? `${aspect} (undeclared)`}`).toBe(
        `${kind.name}: ${aspect}`,
      );
  }
});

test('every aspect the scan itself reports is declared, and rules accept each', () => {
  const reported = aspectsIn([path.join(src, 'activities', 'drift.ts')]);
  expect([...reported].sort()).toEqual([...SCAN_DRIFT_ASPECTS].sort());
  for (const aspect of [...reported, ...filesKind.driftAspects, ...postgresKind.driftAspects])
    expect(DRIFT_ASPECTS).toContain(aspect);
});
