// Pickle files compared by structure (what inspectPickle read from their opcodes), never by
// unpickling: protocol, the globals named, the top-level shape and its dict keys. A dangerous
// global is critical wherever it appears, with the offset of the opcode that names it.
import type { DriftChange, DriftDifference } from '../drift';
import { isDangerousGlobal, type PickleShape, type PickleSummary } from './pickle-inspect';

/** Globals kept per pickle in a scan's answer; the rest are counted. */
const MAX_GLOBALS = 200;

/** What a scan carries of a pickle: its summary, bounded. */
export function boundedPickleSummary(summary: PickleSummary): PickleSummary & { globalsLeftOut?: number } {
  const dangerous = summary.globals.filter(isDangerousGlobal);
  const seen = new Set<string>();
  const kept = [...dangerous, ...summary.globals].filter((g) => {
    const key = `${g.module}.${g.name}@${g.offset}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return {
    ...summary,
    globals: kept.slice(0, MAX_GLOBALS),
    problems: summary.problems.slice(0, 20),
    ...(kept.length > MAX_GLOBALS ? { globalsLeftOut: kept.length - MAX_GLOBALS } : {}),
  };
}

/** Findings a pickle raises on its own: globals that can run code, and streams that could not be read. */
export function pickleHazards(filePath: string, side: string, summary: PickleSummary): DriftDifference[] {
  const found: DriftDifference[] = [];
  for (const g of summary.globals.filter(isDangerousGlobal)) {
    found.push({
      subject: `${filePath}:global ${g.module}.${g.name}`,
      change: 'changed',
      detail: `${side} copy names ${g.module}.${g.name} (${g.opcode} at byte ${g.offset}): unpickling it can run code`,
      severity: 'critical',
      aspect: 'pickle-global',
    });
  }
  for (const p of summary.problems) {
    found.push({
      subject: `${filePath}:stream`,
      change: 'changed',
      detail: `${side} copy could not be read to the end: ${p.message} (byte ${p.offset})`,
      severity: 'warning',
      aspect: 'pickle-stream',
    });
  }
  return found;
}

/**
 * How two pickles differ in structure; content that differs with equal structure is one
 * `content` finding. Hazards are the caller's to add (pickleHazards), for each side.
 */
export function comparePickles(filePath: string, from: PickleSummary, to: PickleSummary): DriftDifference[] {
  const found: DriftDifference[] = [];
  const add = (subject: string, change: DriftChange, detail: string, aspect = 'pickle') =>
    found.push({ subject: `${filePath}:${subject}`, change, detail, aspect });

  if (from.protocol !== to.protocol) add('protocol', 'changed', `protocol ${from.protocol} → ${to.protocol}`);
  const names = (s: PickleSummary) => new Set(s.globals.map((g) => `${g.module}.${g.name}`));
  const fromGlobals = names(from);
  const toGlobals = names(to);
  for (const g of [...toGlobals].filter((g) => !fromGlobals.has(g)).sort())
    add(`global ${g}`, 'added', `references ${g}`);
  for (const g of [...fromGlobals].filter((g) => !toGlobals.has(g)).sort())
    add(`global ${g}`, 'removed', `no longer references ${g}`);
  found.push(...compareShapes(filePath, from.top, to.top));
  if (found.length === 0)
    add('content', 'changed', `same structure, values differ (${from.bytes} → ${to.bytes} bytes)`);
  return found;
}

function describeShape(shape: PickleShape | undefined): string {
  if (!shape) return 'unreadable';
  switch (shape.type) {
    case 'dict':
      return `dict of ${shape.size}`;
    case 'list':
    case 'tuple':
    case 'set':
      return `${shape.type} of ${shape.length}`;
    case 'str':
    case 'bytes':
      return `${shape.type} of ${shape.length}`;
    case 'object':
      return shape.global ? `${shape.global} object` : 'object';
    default:
      return shape.type;
  }
}

function compareShapes(filePath: string, from?: PickleShape, to?: PickleShape): DriftDifference[] {
  const subject = `${filePath}:top`;
  if (from?.type === 'dict' && to?.type === 'dict') {
    const found: DriftDifference[] = [];
    const fromKeys = new Set(from.keys);
    const toKeys = new Set(to.keys);
    for (const k of to.keys.filter((k) => !fromKeys.has(k)))
      found.push({ subject: `${filePath}:key ${k}`, change: 'added', detail: `top-level key ${k}`, aspect: 'pickle' });
    for (const k of from.keys.filter((k) => !toKeys.has(k)))
      found.push({
        subject: `${filePath}:key ${k}`,
        change: 'removed',
        detail: `top-level key ${k}`,
        aspect: 'pickle',
      });
    if (from.size !== to.size && found.length === 0)
      found.push({ subject, change: 'changed', detail: `dict of ${from.size} → ${to.size} keys`, aspect: 'pickle' });
    return found;
  }
  const a = describeShape(from);
  const b = describeShape(to);
  return a === b ? [] : [{ subject, change: 'changed', detail: `${a} → ${b}`, aspect: 'pickle' }];
}
