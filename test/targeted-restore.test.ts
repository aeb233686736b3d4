// The plan of a targeted restore, from a listing diff.
import { diffListings, type ListingEntry } from '../src/components/files/listing';
import { includePatterns, planTargetedRestore } from '../src/components/files/targeted-restore';

const file = (p: string, sha: string, mode = 0o644): ListingEntry => ({
  path: p,
  type: 'file',
  mode,
  size: 1,
  sha256: sha,
});
const dir = (p: string, mode = 0o755): ListingEntry => ({ path: p, type: 'dir', mode });
const link = (p: string, target: string): ListingEntry => ({ path: p, type: 'symlink', mode: 0o777, target });

describe('planTargetedRestore', () => {
  it('removes what the target lacks, fixes modes in place and restores the rest from the snapshot', () => {
    const current = [
      file('a', '1'),
      file('b', '2'),
      dir('old'),
      file('old/x', '3'),
      link('cur', 'a'),
      file('run.sh', '4', 0o644),
      dir('swap'),
    ];
    const target = [
      file('a', '1'),
      file('b', '9'),
      link('cur', 'b'),
      dir('new'),
      file('new/y', '5'),
      file('run.sh', '4', 0o755),
      file('swap', '6'),
    ];
    const plan = planTargetedRestore(diffListings(current, target), current, target);
    expect(plan).toEqual({
      remove: ['cur', 'old', 'old/x', 'swap'],
      chmod: [{ path: 'run.sh', mode: 0o755 }],
      include: ['b', 'cur', 'new', 'new/y', 'swap'],
    });
    expect(includePatterns(['b', 'new/y'])).toBe('/b\n/new/y\n');
  });

  it.each([
    ['a*', 'holds restic pattern syntax'],
    ['a[1]', 'holds restic pattern syntax'],
    ['$HOME', 'holds restic pattern syntax'],
    ['trailing ', 'holds restic pattern syntax'],
    ['../escape', 'is not a plain relative path'],
    ['/abs', 'is not a plain relative path'],
  ])('falls back to the whole tree for %j', (name, why) => {
    const target = [file(name, '1')];
    expect(planTargetedRestore(diffListings([], target), [], target)).toEqual({
      fallback: `path ${JSON.stringify(name)} ${why}`,
    });
  });
});
