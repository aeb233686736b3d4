// The audit log: every human or automatic action on rewind, who took it, through which door,
// and the evidence they saw, in the project store.
//
// Rows are hash-chained with a key derived from the repository password: each row's hash is an
// HMAC over the previous row's hash and the row's own fields. Someone with database access but
// without the password can therefore not change, add, remove or reorder rows without
// `verifyAudit` noticing; the database's trigger (migration 2) refuses UPDATE, DELETE and
// TRUNCATE so that mistakes and ordinary roles do not get that far.
//
// What the chain cannot show, by its nature:
// - rows cut from the end, or the whole log emptied: what is left is still a valid chain.
//   `verifyAudit` returns the last row's seq and hash; kept elsewhere, they show a cut.
// - anything written by someone who holds the key (the repository password).
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { ProjectStore, StoreQueries } from '../store/project-store';

export const AUDIT_DOORS = ['cli', 'api', 'slack', 'alertmanager', 'workflow', 'schedule'] as const;
export type AuditDoor = (typeof AUDIT_DOORS)[number];

export const AUDIT_OUTCOMES = ['accepted', 'refused', 'recorded'] as const;

export interface AuditEntry {
  /** A principal's name, a Slack user, 'alertmanager', 'rewind' … */
  actor: string;
  door: AuditDoor;
  /** 'rollback.start', 'rollback.approve', 'auth.refused', 'trigger.decision' … */
  action: string;
  outcome: (typeof AUDIT_OUTCOMES)[number];
  /** The workflow id. */
  runId?: string;
  environment?: string;
  /** Why it was refused, or why it was decided. */
  reason?: string;
  /** What the actor saw, e.g. `{ planHash: '…' }`. */
  evidence?: Record<string, string>;
  /** Small JSON; callers never put secrets here. */
  detail?: Record<string, unknown>;
}

export interface AuditRow extends AuditEntry {
  seq: number;
  /** ISO 8601, UTC, with milliseconds: the database's clock when the row was appended. */
  at: string;
  prevHash: string;
  hash: string;
}

export type AuditProblem = 'modified' | 'deleted' | 'inserted' | 'reordered';

export interface AuditVerification {
  ok: boolean;
  /** Rows that checked out: all of them when ok, else those before the first bad one. */
  rows: number;
  firstBad?: { seq: number; problem: AuditProblem; detail: string };
  /** The last row that checked out; compare with a copy kept elsewhere to see rows cut from the end. */
  last?: { seq: number; hash: string };
}

export interface AuditFilter {
  runId?: string;
  actor?: string;
  /** Rows at or after this time. */
  since?: Date;
  /** Rows before this time. */
  until?: Date;
  /** The newest this many that match (default 100, at most 10,000). */
  limit?: number;
}

/** What an approver saw: the plan's digest, so the audit log says which plan was approved. */
export function planEvidence(plan: unknown): string {
  return createHash('sha256').update(JSON.stringify(plan)).digest('hex');
}

/** The prevHash of the first row. */
export const AUDIT_GENESIS = '0'.repeat(64);
export const AUDIT_LIST_DEFAULT = 100;
export const AUDIT_LIST_MAX = 10_000;
/** How long an append waits for others before saying so, instead of hanging. */
const LOCK_TIMEOUT = '30s';
/** A moved row is found by trying it at the other seqs in the log, nearest first, at most this far. */
const REORDER_SEARCH_LIMIT = 1_000_000;
/** How many rows removed (and the rest renumbered) that search sees as a deletion. */
const RENUMBER_REACH = 1_000;
const VERIFY_PAGE = 1_000;
const COLUMNS = 'seq, at, actor, door, action, outcome, run_id, environment, reason, evidence, detail, prev_hash, hash';

export class AuditError extends Error {
  override name = 'AuditError';
}

/** The log's key: HMAC-SHA256 keyed by the repository password, so the key itself is never stored. */
export function auditKey(password: string): Buffer {
  return createHmac('sha256', password).update('rewind audit log v1').digest();
}

// --- writing ---------------------------------------------------------------------------------

const entrySchema = z.strictObject({
  actor: z.string().min(1, 'must not be empty'),
  door: z.enum(AUDIT_DOORS),
  action: z.string().min(1, 'must not be empty'),
  outcome: z.enum(AUDIT_OUTCOMES),
  runId: z.string().optional(),
  environment: z.string().optional(),
  reason: z.string().optional(),
  evidence: z.record(z.string(), z.string()).optional(),
  detail: z.record(z.string(), z.unknown()).optional(),
});

/**
 * Appends one entry, as the next row of the chain, and returns the row as stored. Text is made
 * storable first (see `storable`), so the row returned is exactly what verify will read back.
 */
export async function appendAudit(store: ProjectStore, key: Buffer, entry: AuditEntry): Promise<AuditRow> {
  const fields = storableEntry(entry);
  return store.transaction(async (tx) => {
    await lockForAppend(tx);
    const { seq, prevHash, at } = await nextPlace(tx);
    const row: AuditRow = { ...fields, seq, at, prevHash, hash: rowHash(key, prevHash, { ...fields, seq, at }) };
    await insertRow(tx, row);
    return row;
  });
}

/** Where the next row goes, and its time: the database's clock, one for every process. */
async function nextPlace(tx: StoreQueries): Promise<{ seq: number; prevHash: string; at: string }> {
  const [head] = (await tx.query<{ seq: unknown; hash: string | null; at: string }>(
    `SELECT (SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1) AS seq,
            (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1) AS hash,
            to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at`,
  )) as [{ seq: unknown; hash: string | null; at: string }];
  return {
    seq: head.seq === null ? 1 : Number(head.seq) + 1,
    prevHash: head.hash ?? AUDIT_GENESIS,
    at: head.at,
  };
}

async function insertRow(tx: StoreQueries, row: AuditRow): Promise<void> {
  await tx.query(
    `INSERT INTO audit_log (${COLUMNS})
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12, $13)`,
    [
      row.seq,
      row.at,
      row.actor,
      row.door,
      row.action,
      row.outcome,
      row.runId ?? null,
      row.environment ?? null,
      row.reason ?? null,
      row.evidence === undefined ? null : JSON.stringify(row.evidence),
      row.detail === undefined ? null : JSON.stringify(row.detail),
      row.prevHash,
      row.hash,
    ],
  );
}

/**
 * SHARE ROW EXCLUSIVE conflicts with itself and with the ROW EXCLUSIVE lock an INSERT takes, but
 * not with readers: appends from every process queue here one at a time (so seq and prevHash come
 * from the row before), while list and verify go on reading. PGlite takes it too; there, one
 * process's transactions already run one at a time.
 */
async function lockForAppend(tx: StoreQueries): Promise<void> {
  await tx.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
  try {
    await tx.query('LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE');
  } catch (err) {
    if ((err as { code?: string }).code === '55P03')
      throw new AuditError(`could not append to the audit log: another session held it for ${LOCK_TIMEOUT}`);
    throw err;
  }
}

function storableEntry(entry: AuditEntry): AuditEntry {
  const parsed = entrySchema.safeParse(entry);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new AuditError(`audit entry ${issue.path.join('.') || '(entry)'}: ${issue.message}`);
  }
  const e = parsed.data;
  return {
    actor: storable(e.actor),
    door: e.door,
    action: storable(e.action),
    outcome: e.outcome,
    ...(e.runId !== undefined ? { runId: storable(e.runId) } : {}),
    ...(e.environment !== undefined ? { environment: storable(e.environment) } : {}),
    ...(e.reason !== undefined ? { reason: storable(e.reason) } : {}),
    ...(e.evidence !== undefined ? { evidence: storableJson(e.evidence, 'evidence') as Record<string, string> } : {}),
    ...(e.detail !== undefined ? { detail: storableJson(e.detail, 'detail') as Record<string, unknown> } : {}),
  };
}

/**
 * Text as the database will give it back. PostgreSQL refuses NUL in text and jsonb, and the
 * driver turns a lone UTF-16 surrogate into U+FFFD on the way in: the hash must cover what is
 * stored, so both become U+FFFD before hashing. Text from outside (a Slack name, a reason in a
 * request body) is thus recorded, never refused.
 */
function storable(text: string): string {
  return text.replace(/\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

/** Plain JSON (Dates become strings, undefined goes), with storable text in keys and values. */
function storableJson(value: object, field: string): unknown {
  let plain: unknown;
  try {
    plain = JSON.parse(JSON.stringify(value)) as unknown;
  } catch (err) {
    throw new AuditError(`audit entry ${field} is not JSON: ${(err as Error).message}`);
  }
  const clean = (v: unknown): unknown => {
    if (typeof v === 'string') return storable(v);
    if (Array.isArray(v)) return v.map(clean);
    if (v !== null && typeof v === 'object')
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [storable(k), clean(x)]));
    return v;
  };
  return clean(plain);
}

// --- hashing ---------------------------------------------------------------------------------

/** The fields a row's hash covers, absent ones as null so that no field can be dropped unseen. */
function hashedFields(row: AuditEntry & { seq: number; at: string }): Record<string, unknown> {
  return {
    seq: row.seq,
    at: row.at,
    actor: row.actor,
    door: row.door,
    action: row.action,
    outcome: row.outcome,
    runId: row.runId ?? null,
    environment: row.environment ?? null,
    reason: row.reason ?? null,
    evidence: row.evidence ?? null,
    detail: row.detail ?? null,
  };
}

/** JSON with object keys sorted at every level and no spaces: one text per value. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function rowHash(key: Buffer, prevHash: string, row: AuditEntry & { seq: number; at: string }): string {
  return createHmac('sha256', key)
    .update(`${prevHash}\n${canonicalJson(hashedFields(row))}`)
    .digest('hex');
}

function hashMatches(key: Buffer, row: AuditRow, seq = row.seq): boolean {
  const expected = Buffer.from(rowHash(key, row.prevHash, { ...row, seq }), 'hex');
  const stored = Buffer.from(row.hash, 'hex');
  return stored.length === expected.length && timingSafeEqual(stored, expected);
}

// --- reading ---------------------------------------------------------------------------------

interface StoredRow {
  seq: unknown;
  at: string;
  actor: string;
  door: string;
  action: string;
  outcome: string;
  run_id: string | null;
  environment: string | null;
  reason: string | null;
  evidence: unknown;
  detail: unknown;
  prev_hash: string;
  hash: string;
}

// jsonb arrives parsed from both drivers, but as text when a type parser is missing.
const fromJson = <T>(v: unknown): T => (typeof v === 'string' ? (JSON.parse(v) as T) : (v as T));

function toRow(r: StoredRow): AuditRow {
  return {
    seq: Number(r.seq), // bigint: text from pg, a number from PGlite
    at: r.at,
    actor: r.actor,
    door: r.door as AuditDoor,
    action: r.action,
    outcome: r.outcome as AuditEntry['outcome'],
    ...(r.run_id !== null ? { runId: r.run_id } : {}),
    ...(r.environment !== null ? { environment: r.environment } : {}),
    ...(r.reason !== null ? { reason: r.reason } : {}),
    ...(r.evidence !== null ? { evidence: fromJson<Record<string, string>>(r.evidence) } : {}),
    ...(r.detail !== null ? { detail: fromJson<Record<string, unknown>>(r.detail) } : {}),
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** The newest `limit` rows that match, oldest first (newest last). */
export async function listAudit(store: ProjectStore, filter: AuditFilter = {}): Promise<AuditRow[]> {
  const limit = filter.limit ?? AUDIT_LIST_DEFAULT;
  if (!Number.isInteger(limit) || limit < 1 || limit > AUDIT_LIST_MAX)
    throw new AuditError(`limit must be a whole number from 1 to ${AUDIT_LIST_MAX}, not ${limit}`);
  const since = filter.since && isoBound(filter.since, 'since');
  const until = filter.until && isoBound(filter.until, 'until');
  const rows = await store.query<StoredRow>(
    `SELECT ${COLUMNS} FROM (
       SELECT ${COLUMNS} FROM audit_log
        WHERE ($1::text IS NULL OR run_id = $1) AND ($2::text IS NULL OR actor = $2)
          AND ($3::text IS NULL OR at >= $3) AND ($4::text IS NULL OR at < $4)
        ORDER BY seq DESC LIMIT $5) AS newest
     ORDER BY seq`,
    [filter.runId ?? null, filter.actor ?? null, since ?? null, until ?? null, limit],
  );
  return rows.map(toRow);
}

/** A time as the text `at` holds, which compares as time only in the four-digit-year range. */
function isoBound(date: Date, name: string): string {
  const iso = Number.isNaN(date.getTime()) ? '' : date.toISOString();
  if (!/^\d{4}-/.test(iso)) throw new AuditError(`${name} must be a valid time between the years 0 and 9999`);
  return iso;
}

/** Every row in seq order (ties, which only a dropped primary key allows, by hash), a page at a time. */
async function* rowsInOrder(store: ProjectStore): AsyncGenerator<AuditRow> {
  // Pages are seq ranges rather than "after the last seq", so that rows sharing a seq all come.
  let after = await nextSeqAfter(store, Number.MIN_SAFE_INTEGER);
  while (after !== undefined) {
    const page = await store.query<StoredRow>(
      `SELECT ${COLUMNS} FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq, hash`,
      [after, after + VERIFY_PAGE],
    );
    for (const row of page) yield toRow(row);
    after = page.length ? after + VERIFY_PAGE : await nextSeqAfter(store, after);
  }
}

async function highestSeq(store: ProjectStore): Promise<number> {
  const [row] = await store.query<{ seq: unknown }>('SELECT max(seq) AS seq FROM audit_log');
  return row?.seq === null || row?.seq === undefined ? 0 : Number(row.seq);
}

/** One less than the first seq above `after`, or undefined when there is none. */
async function nextSeqAfter(store: ProjectStore, after: number): Promise<number | undefined> {
  const [row] = await store.query<{ seq: unknown }>('SELECT min(seq) AS seq FROM audit_log WHERE seq > $1', [after]);
  return row?.seq === null || row?.seq === undefined ? undefined : Number(row.seq) - 1;
}

// --- verifying -------------------------------------------------------------------------------

/**
 * Walks the rows in seq order and stops at the first one that is not what the key-holder wrote
 * there. Each row is checked against its own hash (with its seq, so a row cannot move unseen)
 * and against the row before (its prevHash). What went wrong is then told apart as well as the
 * rows allow:
 *
 * - deleted: a seq is missing; or the row in its place was written further on and the row that
 *   followed the previous one is nowhere in the log (rows removed and the rest renumbered).
 * - reordered: the row in this place was written at another seq, and the row that belongs here
 *   is elsewhere in the log (rows swapped or moved by renumbering).
 * - inserted: a row the chain does not contain: the next row links straight past it, it copies
 *   another row, it shares its seq with the row before, or it comes from another copy of the log
 *   (a genuine row that was chained to a different predecessor).
 * - modified: the row's fields no longer match its hash, and it is still linked into the chain.
 *   A row added at the very end without the key looks the same, and so does every row when the
 *   key is wrong; the detail says so when it may be the case.
 */
export async function verifyAudit(store: ProjectStore, key: Buffer): Promise<AuditVerification> {
  const lastSeq = await highestSeq(store);
  let good = 0;
  let previous: AuditRow | undefined;
  const rows = rowsInOrder(store);
  let next = await rows.next();
  while (!next.done) {
    const row = next.value;
    next = await rows.next();
    const problem = await checkRow(store, key, lastSeq, row, previous, next.done ? undefined : next.value);
    if (problem) return { ok: false, rows: good, firstBad: problem, ...lastOf(previous) };
    previous = row;
    good++;
  }
  return { ok: true, rows: good, ...lastOf(previous) };
}

function lastOf(row: AuditRow | undefined): Pick<AuditVerification, 'last'> {
  return row ? { last: { seq: row.seq, hash: row.hash } } : {};
}

type Finding = NonNullable<AuditVerification['firstBad']>;

async function checkRow(
  store: ProjectStore,
  key: Buffer,
  lastSeq: number,
  row: AuditRow,
  previous: AuditRow | undefined,
  following: AuditRow | undefined,
): Promise<Finding | undefined> {
  const expectedSeq = (previous?.seq ?? 0) + 1;
  const expectedPrev = previous?.hash ?? AUDIT_GENESIS;
  const after = previous ? `row ${previous.seq}` : 'the start of the log';
  if (row.seq < expectedSeq) {
    const what = previous ? `a second row with seq ${row.seq}` : `a row numbered ${row.seq}, before the first`;
    return { seq: row.seq, problem: 'inserted', detail: what };
  }
  if (row.seq > expectedSeq) return gap(store, row, expectedSeq, expectedPrev, after);

  const intact = hashMatches(key, row);
  if (intact && row.prevHash === expectedPrev) return undefined;
  if (intact) {
    return {
      seq: row.seq,
      problem: 'inserted',
      detail: `row ${row.seq} was chained to a different ${after} than the one in the log: rows from another copy of the log were put in`,
    };
  }
  const copyOf = await otherRowWithHash(store, row);
  if (copyOf !== undefined)
    return { seq: row.seq, problem: 'inserted', detail: `row ${row.seq} is a copy of row ${copyOf}` };
  const writtenAs = seqWrittenAs(key, row, lastSeq);
  if (writtenAs !== undefined) return moved(store, row, writtenAs, expectedPrev, after);
  if (following?.prevHash === expectedPrev && following.prevHash !== row.hash) {
    return {
      seq: row.seq,
      problem: 'inserted',
      detail: `row ${row.seq} is not part of the chain: row ${following.seq} follows ${after} directly`,
    };
  }
  return { seq: row.seq, problem: 'modified', detail: modifiedDetail(key, row, following, expectedPrev, after) };
}

async function gap(
  store: ProjectStore,
  row: AuditRow,
  missing: number,
  expectedPrev: string,
  after: string,
): Promise<Finding> {
  const range = row.seq - missing === 1 ? `row ${missing} is` : `rows ${missing} to ${row.seq - 1} are`;
  // The row that followed the one before may have been renumbered up, to here or beyond.
  const movedTo = await seqOfSuccessor(store, expectedPrev);
  if (movedTo !== undefined) {
    return {
      seq: missing,
      problem: 'reordered',
      detail: `${range} missing here: the row that followed ${after} is at seq ${movedTo}`,
    };
  }
  const jump = missing === 1 ? `the log starts at row ${row.seq}` : `the log goes from ${after} to row ${row.seq}`;
  return { seq: missing, problem: 'deleted', detail: `${range} missing: ${jump}` };
}

async function moved(
  store: ProjectStore,
  row: AuditRow,
  writtenAs: number,
  expectedPrev: string,
  after: string,
): Promise<Finding> {
  const belongsHere = await seqOfSuccessor(store, expectedPrev, row.seq);
  if (belongsHere === undefined && writtenAs > row.seq) {
    const range = writtenAs - row.seq === 1 ? `row ${row.seq} is` : `rows ${row.seq} to ${writtenAs - 1} are`;
    return {
      seq: row.seq,
      problem: 'deleted',
      detail: `${range} missing and the rows after renumbered: the row now at seq ${row.seq} was written as row ${writtenAs}`,
    };
  }
  const where = belongsHere === undefined ? '' : `; the row that followed ${after} is at seq ${belongsHere}`;
  return {
    seq: row.seq,
    problem: 'reordered',
    detail: `the row at seq ${row.seq} was written as row ${writtenAs}${where}`,
  };
}

function modifiedDetail(
  key: Buffer,
  row: AuditRow,
  following: AuditRow | undefined,
  expectedPrev: string,
  after: string,
): string {
  let detail = `row ${row.seq} does not match its hash: a field was changed after it was written`;
  if (row.prevHash !== expectedPrev) detail += `, and it no longer links to ${after}`;
  if (!following) detail += ' (or, as the last row, it was added without the key)';
  else if (following.prevHash === row.hash && !hashMatches(key, following))
    detail += `; row ${following.seq} does not match either: if no row does, the key (the repository password) is not the one the log was written with`;
  return detail;
}

/**
 * The other seq at which the row's hash checks out, nearest first so that a swap is found fast.
 * Seqs a little past the log's last are tried too: rows removed and the rest renumbered down
 * leave the last ones written further on than the log now reaches.
 */
function seqWrittenAs(key: Buffer, row: AuditRow, lastSeq: number): number | undefined {
  const highest = lastSeq + RENUMBER_REACH;
  const reach = Math.min(Math.max(row.seq - 1, highest - row.seq), REORDER_SEARCH_LIMIT);
  for (let distance = 1; distance <= reach; distance++) {
    const below = row.seq - distance;
    const above = row.seq + distance;
    if (below >= 1 && hashMatches(key, row, below)) return below;
    if (above <= highest && hashMatches(key, row, above)) return above;
  }
  return undefined;
}

/** Where (other than at `exceptSeq`) the row chained after the given hash is. */
async function seqOfSuccessor(store: ProjectStore, prevHash: string, exceptSeq = 0): Promise<number | undefined> {
  const [found] = await store.query<{ seq: unknown }>(
    'SELECT seq FROM audit_log WHERE prev_hash = $1 AND seq <> $2 ORDER BY seq LIMIT 1',
    [prevHash, exceptSeq],
  );
  return found ? Number(found.seq) : undefined;
}

async function otherRowWithHash(store: ProjectStore, row: AuditRow): Promise<number | undefined> {
  const [found] = await store.query<{ seq: unknown }>(
    'SELECT seq FROM audit_log WHERE hash = $1 AND seq <> $2 ORDER BY seq LIMIT 1',
    [row.hash, row.seq],
  );
  return found ? Number(found.seq) : undefined;
}
