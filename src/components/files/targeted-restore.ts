// Plans a restore that touches only what differs from the target, from content hashes.
//
// A whole-tree `restic restore --overwrite if-changed` decides by size and mtime and rewrites
// the metadata of every file, which changes every ctime: the next fingerprint must then read
// every byte again. Restoring just the paths whose content differs (checked block by block
// by `--overwrite always`) moves only changed bytes and leaves unchanged files untouched.
import type { ListingChange, ListingEntry } from './listing';

export interface TargetedRestorePlan {
  /** Paths to delete first: gone in the target, or replaced by another type. */
  remove: string[];
  /** Entries whose content is right but whose permission bits are not. */
  chmod: { path: string; mode: number }[];
  /** Paths restic restores from the snapshot. */
  include: string[];
}

/** Characters that restic's include patterns would read as glob syntax or variables. */
const PATTERN_SYNTAX = /[*?[\]\\$\n\r]|^\s|\s$/;

/**
 * The targeted plan, or why a whole-tree restore is needed instead. Paths restic would read
 * as patterns, and anything that is not a plain relative path, take the whole-tree route.
 */
export function planTargetedRestore(
  changes: readonly ListingChange[],
  current: readonly ListingEntry[],
  target: readonly ListingEntry[],
): TargetedRestorePlan | { fallback: string } {
  const now = new Map(current.map((e) => [e.path, e]));
  const then = new Map(target.map((e) => [e.path, e]));
  const plan: TargetedRestorePlan = { remove: [], chmod: [], include: [] };
  for (const change of changes) {
    if (!isPlainRelative(change.path))
      return { fallback: `path ${JSON.stringify(change.path)} is not a plain relative path` };
    // Removals and modes are applied directly; only restic's include list is read as patterns.
    if ((change.op === 'add' || change.op === 'change') && PATTERN_SYNTAX.test(change.path)) {
      return { fallback: `path ${JSON.stringify(change.path)} holds restic pattern syntax` };
    }
    const before = now.get(change.path);
    const after = then.get(change.path);
    switch (change.op) {
      case 'remove':
        plan.remove.push(change.path);
        break;
      case 'mode':
        plan.chmod.push({ path: change.path, mode: after!.mode });
        break;
      case 'add':
        plan.include.push(change.path);
        break;
      case 'change':
        // A link is replaced, not rewritten; so is an entry that changes type.
        if (before && (before.type !== after?.type || before.type === 'symlink')) plan.remove.push(change.path);
        plan.include.push(change.path);
        break;
    }
  }
  return plan;
}

function isPlainRelative(p: string): boolean {
  return (
    p.length > 0 &&
    !p.startsWith('/') &&
    p.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..')
  );
}

/** restic include patterns: one anchored path a line. */
export function includePatterns(paths: readonly string[]): string {
  return paths.map((p) => `/${p}`).join('\n') + '\n';
}
