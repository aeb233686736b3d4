// A sync restores another environment's snapshot over a files component but keeps what the
// drift rules allow to differ: whole paths stay as they are, and allowed config keys get their
// own values back. What is kept is saved before the restore, in a folder named by the step's
// idempotency key, so a retried step puts back what the first attempt saved, not what that
// attempt had already overwritten.
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SyncKeep } from '../../domain/sync';
import type { RestoreResult } from '../driver';
import { configFormatOf } from './config-diff';
import { keepConfigKeys } from './config-edit';

interface Saved {
  paths: { path: string; present: boolean }[];
  keys: { path: string; keys: string[]; present: boolean }[];
}

export function keepsAnything(keep: SyncKeep | undefined): keep is SyncKeep {
  return !!keep && (keep.paths.length > 0 || Object.keys(keep.keys).length > 0);
}

const exists = (p: string) =>
  import('node:fs/promises').then((fs) =>
    fs.lstat(p).then(
      () => true,
      () => false,
    ),
  );

function inside(root: string, relative: string): string {
  const abs = path.resolve(root, ...relative.split('/'));
  if (abs !== root && !abs.startsWith(`${root}${path.sep}`)) throw new Error(`${relative} is outside ${root}`);
  return abs;
}

export async function restoreKeeping(
  root: string,
  keep: SyncKeep,
  workRoot: string,
  idempotencyKey: string,
  restore: () => Promise<RestoreResult>,
): Promise<RestoreResult> {
  const area = path.join(workRoot, 'sync-keep', createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 16));
  const record = path.join(area, 'saved.json');
  let saved: Saved;
  try {
    saved = JSON.parse(await readFile(record, 'utf8')) as Saved;
  } catch {
    await rm(area, { recursive: true, force: true });
    await mkdir(area, { recursive: true });
    saved = { paths: [], keys: [] };
    for (const p of keep.paths) {
      const present = await exists(inside(root, p));
      if (present) await cp(inside(root, p), inside(path.join(area, 'data'), p), copyOptions);
      saved.paths.push({ path: p, present });
    }
    for (const [p, keys] of Object.entries(keep.keys)) {
      if (keep.paths.includes(p)) continue;
      const present = await exists(inside(root, p));
      if (present) await cp(inside(root, p), inside(path.join(area, 'keys'), p), copyOptions);
      saved.keys.push({ path: p, keys, present });
    }
    await writeFile(`${record}.tmp`, JSON.stringify(saved));
    await rename(`${record}.tmp`, record);
  }

  const result = await restore();

  for (const p of saved.paths) {
    await rm(inside(root, p.path), { recursive: true, force: true });
    if (p.present) await cp(inside(path.join(area, 'data'), p.path), inside(root, p.path), copyOptions);
  }
  let keysKept = 0;
  for (const k of saved.keys) {
    const file = inside(root, k.path);
    if (!k.present || !(await exists(file))) continue;
    const own = await readFile(inside(path.join(area, 'keys'), k.path), 'utf8');
    const edited = keepConfigKeys(await readFile(file, 'utf8'), own, configFormatOf(k.path), k.keys);
    // A file that cannot be edited key by key is kept whole: the allowed values matter more.
    await writeFile(file, edited ?? own);
    keysKept += edited === undefined ? 0 : k.keys.length;
  }
  await rm(area, { recursive: true, force: true });
  const kept = [
    saved.paths.length ? `${saved.paths.length} path(s) kept as they were` : '',
    keysKept ? `${keysKept} allowed key(s) set back to this environment's values` : '',
  ].filter(Boolean);
  return { ...result, alreadyAtTarget: false, note: [result.note, ...kept].filter(Boolean).join('; ') };
}

const copyOptions = { recursive: true, preserveTimestamps: true, verbatimSymlinks: true, force: true } as const;
