// The audit log: rows hash-chained with the repository password's key, the same on PGlite and on
// the PostgreSQL server; the database refuses to change them; whoever gets past that (a superuser)
// is caught by verify, which names the first bad row and what was done to it; the CLI reads and
// checks the log.
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  AUDIT_GENESIS,
  appendAudit,
  auditKey,
  listAudit,
  verifyAudit,
  type AuditEntry,
  type AuditRow,
} from '../src/audit/audit-log';
import { openProjectStore, type ProjectStore } from '../src/store/project-store';
import { runCli } from './support/harness';
import { createDatabase, dropDatabase, PG_ADMIN_URL, sql } from './support/postgres';
import { tempDir } from './support/temp';

const root = tempDir('rewind-audit-');
const makeTempDir = (name: string) => mkdtemp(path.join(root, `${name}-`));
const PASSWORD = 'audit-test-password';
const key = auditKey(PASSWORD);
const ISO_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

interface OpenedStore {
  store: ProjectStore;
  url?: string;
  close(): Promise<void>;
}

const STORES: Record<'PGlite' | 'PostgreSQL', () => Promise<OpenedStore>> = {
  async PGlite() {
    const store = await openProjectStore({ dataDir: await makeTempDir('pglite') });
    return { store, close: () => store.close() };
  },
  async PostgreSQL() {
    const url = await createDatabase('rewind_audit');
    const store = await openProjectStore({ databaseUrl: url, dataDir: await makeTempDir('pg') });
    return {
      store,
      url,
      async close() {
        await store.close();
        await sessionsGone(url);
        await dropDatabase(url);
      },
    };
  },
};

/**
 * A pool's end() resolves before its connections have closed; dropping the database under them
 * then makes the pool raise an error with no one to catch it. So wait for them to go.
 */
async function sessionsGone(url: string, timeoutMs = 10_000): Promise<void> {
  const database = decodeURIComponent(new URL(url).pathname.slice(1));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [{ n }] = (await sql<{ n: number }>(
      PG_ADMIN_URL,
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [database],
    )) as [{ n: number }];
    if (n === 0) return;
    if (Date.now() > deadline) throw new Error(`${n} sessions still on ${database} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function withStore(kind: keyof typeof STORES, fn: (opened: OpenedStore) => Promise<void>): Promise<void> {
  const opened = await STORES[kind]();
  try {
    await fn(opened);
  } finally {
    await opened.close();
  }
}

const ENTRIES: AuditEntry[] = [
  {
    actor: 'alice',
    door: 'cli',
    action: 'rollback.start',
    outcome: 'accepted',
    runId: 'rollback-production-1',
    environment: 'production',
    reason: 'errors after deploy',
    evidence: { planHash: '3fa9c1e07b2d5a4f' },
  },
  {
    actor: 'alice',
    door: 'slack',
    action: 'rollback.approve',
    outcome: 'refused',
    runId: 'rollback-production-1',
    environment: 'production',
    reason: 'self-approval',
    evidence: { planHash: '3fa9c1e07b2d5a4f' },
  },
  {
    actor: 'bob',
    door: 'api',
    action: 'rollback.approve',
    outcome: 'accepted',
    runId: 'rollback-production-1',
    environment: 'production',
    evidence: { planHash: '3fa9c1e07b2d5a4f' },
    detail: { requestId: 'r-1', approvals: 1, nested: { z: [1, 2.5, -0.125, 1e21, true, null], a: 'x' } },
  },
  { actor: 'mallory', door: 'api', action: 'auth.refused', outcome: 'refused', reason: 'unknown token' },
  {
    actor: 'rewind',
    door: 'workflow',
    action: 'rollback.completed',
    outcome: 'recorded',
    runId: 'rollback-production-1',
    environment: 'production',
  },
];

async function appendAll(store: ProjectStore, entries = ENTRIES): Promise<AuditRow[]> {
  const rows: AuditRow[] = [];
  for (const entry of entries) rows.push(await appendAudit(store, key, entry));
  return rows;
}

/** What an attacker with superuser access does: switch the triggers off for the session, then change rows. */
async function tamper(store: ProjectStore, statements: string[]): Promise<void> {
  await store.transaction(async (tx) => {
    await tx.query('SET LOCAL session_replication_role = replica');
    for (const statement of statements) await tx.query(statement);
  });
}

/** Moves rows from seq `from` on by `by`, in two steps so the primary key never sees two rows on one seq. */
function shiftSeqs(from: number, by: number): string[] {
  return [
    `UPDATE audit_log SET seq = seq + 1000000 WHERE seq >= ${from}`,
    `UPDATE audit_log SET seq = seq - 1000000 + (${by}) WHERE seq >= 1000000`,
  ];
}

/** A row made without the key: plausible fields, linked to row `after`, with a hash it could only guess. */
function forgedRow(seq: number, after: number): string {
  return `INSERT INTO audit_log (seq, at, actor, door, action, outcome, run_id, prev_hash, hash)
          SELECT ${seq}, at, 'mallory', 'cli', 'rollback.approve', 'accepted', run_id, hash, md5('a') || md5('b')
            FROM audit_log WHERE seq = ${after}`;
}

const TAMPERING: [string, string[], { seq: number; problem: string; detail: RegExp }][] = [
  [
    'a changed reason',
    ["UPDATE audit_log SET reason = 'approved by the on-call lead' WHERE seq = 2"],
    { seq: 2, problem: 'modified', detail: /row 2 does not match its hash/ },
  ],
  [
    'changed evidence (the plan hash an approver saw), with the trigger disabled rather than bypassed',
    [
      'ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only',
      `UPDATE audit_log SET evidence = '{"planHash": "0000000000000000"}' WHERE seq = 3`,
      'ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only',
    ],
    { seq: 3, problem: 'modified', detail: /row 3 does not match its hash/ },
  ],
  [
    'a deleted row',
    ['DELETE FROM audit_log WHERE seq = 3'],
    { seq: 3, problem: 'deleted', detail: /row 3 is missing: the log goes from row 2 to row 4/ },
  ],
  [
    'the first row deleted',
    ['DELETE FROM audit_log WHERE seq = 1'],
    { seq: 1, problem: 'deleted', detail: /row 1 is missing: the log starts at row 2/ },
  ],
  [
    'a deleted row, the rows after it renumbered to close the gap',
    ['DELETE FROM audit_log WHERE seq = 2', ...shiftSeqs(3, -1)],
    { seq: 2, problem: 'deleted', detail: /written as row 3/ },
  ],
  [
    'an inserted row, the rows after it renumbered to make room',
    [...shiftSeqs(3, 1), forgedRow(3, 2)],
    { seq: 3, problem: 'inserted', detail: /row 4 follows row 2 directly/ },
  ],
  [
    'a copy of an earlier row appended',
    [
      `INSERT INTO audit_log SELECT 6, at, actor, door, action, outcome, run_id, environment, reason, evidence, detail, prev_hash, hash
         FROM audit_log WHERE seq = 3`,
    ],
    { seq: 6, problem: 'inserted', detail: /copy of row 3/ },
  ],
  [
    // Indistinguishable from a last row whose fields changed: verify says both.
    'a row appended at the end without the key',
    [forgedRow(6, 5)],
    { seq: 6, problem: 'modified', detail: /added without the key/ },
  ],
  [
    'two rows swapped',
    [
      'UPDATE audit_log SET seq = 1000002 WHERE seq = 2',
      'UPDATE audit_log SET seq = 2 WHERE seq = 4',
      'UPDATE audit_log SET seq = 4 WHERE seq = 1000002',
    ],
    {
      seq: 2,
      problem: 'reordered',
      detail: /the row at seq 2 was written as row 4; the row that followed row 1 is at seq 4/,
    },
  ],
  [
    'a row moved to the end',
    ['UPDATE audit_log SET seq = 6 WHERE seq = 2'],
    { seq: 2, problem: 'reordered', detail: /the row that followed row 1 is at seq 6/ },
  ],
];

describe.each(['PGlite', 'PostgreSQL'] as const)('the audit log on %s', (kind) => {
  // One store per kind here, as a fresh PGlite takes seconds to make; each test starts from an
  // empty log, emptied the way an attacker would have to.
  let opened: OpenedStore;
  beforeAll(async () => {
    opened = await STORES[kind]();
  });
  afterAll(() => opened.close());
  beforeEach(() => tamper(opened.store, ['DELETE FROM audit_log']));
  const inStore = (fn: (o: OpenedStore) => Promise<void>) => fn(opened);

  test('chains rows from the genesis, reads them back exactly as hashed, and verifies them intact', async () => {
    await inStore(async ({ store }) => {
      const before = Date.now();
      const odd: AuditEntry = {
        actor: 'eve\u0000\ud800',
        door: 'slack',
        action: 'auth.refused',
        outcome: 'refused',
        reason: 'bad signature \u202e gnp.exe 🙂',
        detail: { ['k\u0000']: ['\udc00', { é: 'ü' }], when: new Date(0) },
      };
      const rows = await appendAll(store, [...ENTRIES, odd]);

      expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(rows[0]!.prevHash).toBe(AUDIT_GENESIS);
      rows.slice(1).forEach((row, i) => expect(row.prevHash).toBe(rows[i]!.hash));
      for (const row of rows) {
        expect(row.at).toMatch(ISO_MS_UTC);
        expect(Date.parse(row.at)).toBeGreaterThanOrEqual(before - 5_000);
        expect(Date.parse(row.at)).toBeLessThanOrEqual(Date.now() + 5_000);
      }
      // What PostgreSQL cannot store is recorded as U+FFFD, before hashing, not refused.
      expect(rows[5]).toMatchObject({
        actor: 'eve\ufffd\ufffd',
        detail: { ['k\ufffd']: ['\ufffd', { é: 'ü' }], when: '1970-01-01T00:00:00.000Z' },
      });
      expect(await listAudit(store)).toEqual(rows);
      expect(await store.query('SELECT at FROM audit_log ORDER BY seq')).toEqual(rows.map((r) => ({ at: r.at })));
      expect(await verifyAudit(store, key)).toEqual({
        ok: true,
        rows: 6,
        last: { seq: 6, hash: rows[5]!.hash },
      });
    });
  });

  test('a wrong password fails the first row, and says that the key may be wrong', async () => {
    await inStore(async ({ store }) => {
      await appendAll(store);
      expect(await verifyAudit(store, auditKey('not the password'))).toMatchObject({
        ok: false,
        rows: 0,
        firstBad: { seq: 1, problem: 'modified', detail: expect.stringMatching(/key \(the repository password\)/) },
      });
    });
  });

  test('lists by run, actor and time, the newest up to the limit, newest last', async () => {
    await inStore(async ({ store }) => {
      const rows = await appendAll(store);
      expect(await listAudit(store, { runId: 'rollback-production-1' })).toEqual(
        rows.filter((r) => r.runId === 'rollback-production-1'),
      );
      expect(await listAudit(store, { actor: 'alice' })).toEqual(rows.slice(0, 2));
      expect(await listAudit(store, { actor: 'alice', runId: 'other' })).toEqual([]);
      const since = new Date(rows[1]!.at);
      const until = new Date(rows[4]!.at);
      expect(await listAudit(store, { since, until })).toEqual(
        rows.filter((r) => r.at >= rows[1]!.at && r.at < rows[4]!.at),
      );
      expect(await listAudit(store, { limit: 2 })).toEqual(rows.slice(3));
      expect(await listAudit(store, { runId: 'rollback-production-1', limit: 1 })).toEqual([rows[4]]);
      for (const limit of [0, 10_001, 1.5])
        await expect(listAudit(store, { limit })).rejects.toThrow(`limit must be a whole number from 1 to 10000`);
      await expect(listAudit(store, { since: new Date('not a time') })).rejects.toThrow(/since must be a valid time/);
    });
  });

  test('the database refuses to update, delete or truncate audit rows', async () => {
    await inStore(async ({ store }) => {
      await appendAll(store);
      for (const [statement, op] of [
        ["UPDATE audit_log SET reason = 'nothing happened' WHERE seq = 1", 'UPDATE'],
        ['DELETE FROM audit_log WHERE seq = 2', 'DELETE'],
        ['TRUNCATE audit_log', 'TRUNCATE'],
      ]) {
        await expect(store.query(statement!)).rejects.toThrow(`audit_log is append-only: ${op} refused`);
      }
      expect(await verifyAudit(store, key)).toMatchObject({ ok: true, rows: ENTRIES.length });
    });
  });

  test.each(TAMPERING)('verify names the first bad row after %s', async (_name, statements, expected) => {
    await inStore(async ({ store }) => {
      await appendAll(store);
      await tamper(store, statements);
      expect(await verifyAudit(store, key)).toEqual({
        ok: false,
        rows: expected.seq - 1,
        firstBad: { seq: expected.seq, problem: expected.problem, detail: expect.stringMatching(expected.detail) },
        ...(expected.seq > 1 ? { last: { seq: expected.seq - 1, hash: expect.any(String) } } : {}),
      });
    });
  });

  test('rows cut from the end leave a valid chain, whose last row then differs from the one noted before', async () => {
    await inStore(async ({ store }) => {
      await appendAll(store);
      const noted = (await verifyAudit(store, key)).last;
      await tamper(store, ['DELETE FROM audit_log WHERE seq >= 4']);
      const after = await verifyAudit(store, key);
      expect(after).toMatchObject({ ok: true, rows: 3 });
      expect(after.last).not.toEqual(noted);
    });
  });

  test('concurrent appends in one process take seq 1, 2, 3 … in turn', async () => {
    await inStore(async ({ store }) => {
      const rows = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          appendAudit(store, key, { actor: `user${i}`, door: 'api', action: 'rollback.start', outcome: 'accepted' }),
        ),
      );
      expect(rows.map((r) => r.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(await verifyAudit(store, key)).toMatchObject({ ok: true, rows: 20 });
    });
  });
});

describe('the audit log on one PostgreSQL server shared by several processes', () => {
  test('50 concurrent appends through three connection pools get seq 1 to 50, in one intact chain', async () => {
    await withStore('PostgreSQL', async ({ store, url }) => {
      const dataDir = await makeTempDir('pools');
      // Sessions far from UTC (+13:45) must still write UTC times.
      const database = decodeURIComponent(new URL(url!).pathname.slice(1));
      await sql(PG_ADMIN_URL, `ALTER DATABASE "${database}" SET TimeZone = 'Pacific/Chatham'`);
      const started = Date.now();
      const others = [
        await openProjectStore({ databaseUrl: url!, dataDir }),
        await openProjectStore({ databaseUrl: url!, dataDir }),
      ];
      try {
        const pools = [store, ...others];
        const rows = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            appendAudit(pools[i % pools.length]!, key, {
              actor: `user${i}`,
              door: 'api',
              action: 'rollback.approve',
              outcome: i % 2 ? 'accepted' : 'refused',
              runId: `run-${i % 5}`,
            }),
          ),
        );
        const bySeq = [...rows].sort((a, b) => a.seq - b.seq);
        for (const row of rows) expect(Math.abs(Date.parse(row.at) - started)).toBeLessThan(60_000);
        expect(bySeq.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
        bySeq.slice(1).forEach((row, i) => expect(row.prevHash).toBe(bySeq[i]!.hash));
        expect(await listAudit(store, { limit: 50 })).toEqual(bySeq);
        expect(await verifyAudit(store, key)).toEqual({ ok: true, rows: 50, last: { seq: 50, hash: bySeq[49]!.hash } });
      } finally {
        await Promise.all(others.map((s) => s.close()));
      }
    });
  });
});

describe('rewind audit', () => {
  test('lists and verifies the log, as text and as JSON, and names what is wrong with bad input or a tampered log', async () => {
    await withStore('PostgreSQL', async ({ store, url }) => {
      const dir = await makeTempDir('cli');
      const manifest = path.join(dir, 'rewind.yaml');
      await writeFile(
        manifest,
        [
          'repository: { path: ./repo, passwordEnv: AUDIT_TEST_PASSWORD }',
          'dataDir: ./data',
          'approvers: [alice, bob]',
          'policy: { approvalTimeout: 30m }',
          'environments:',
          '  production:',
          '    components:',
          `      config: { kind: files, path: ${JSON.stringify(path.join(dir, 'config'))}, format: config }`,
        ].join('\n'),
      );
      const rows = await appendAll(store);
      const env = { REWIND_MANIFEST: manifest, DATABASE_URL: url!, AUDIT_TEST_PASSWORD: PASSWORD };
      const cli = (...args: string[]) => runCli(args, { env });

      const verified = await cli('--json', 'audit', 'verify');
      expect(verified).toMatchObject({ code: 0, stderr: '' });
      expect(JSON.parse(verified.stdout)).toEqual({ ok: true, rows: 5, last: { seq: 5, hash: rows[4]!.hash } });

      const listed = await cli('--json', 'audit', 'list', '--run', 'rollback-production-1', '--actor', 'alice');
      expect(listed.code).toBe(0);
      expect(JSON.parse(listed.stdout)).toEqual(rows.slice(0, 2));

      const table = await cli('audit', 'list', '--since', '1d', '--limit', '2');
      expect(table.code).toBe(0);
      expect(table.stdout.split('\n')[0]).toMatch(
        /^SEQ\s+AT\s+ACTOR\s+DOOR\s+ACTION\s+OUTCOME\s+RUN\s+EVIDENCE\s+REASON$/,
      );
      expect(table.stdout).toContain('auth.refused');
      expect(table.stdout).toContain('rollback.completed');
      expect(table.stdout).not.toContain('rollback.start');

      const badSince = await cli('audit', 'list', '--since', 'yesterday');
      expect(badSince.code).not.toBe(0);
      expect(badSince.stderr).toMatch(/--since.*'yesterday' is invalid\. expected an ISO 8601 date or time/);
      const badDay = await cli('audit', 'list', '--until', '2026-02-30');
      expect(badDay.code).not.toBe(0);
      expect(badDay.stderr).toMatch(/--until/);
      const badLimit = await cli('audit', 'list', '--limit', '0');
      expect(badLimit.code).not.toBe(0);
      expect(badLimit.stderr).toMatch(/--limit.*'0' is invalid\. expected a whole number from 1 to 10000/);
      const backwards = await cli('audit', 'list', '--since', '2026-01-02', '--until', '2026-01-01');
      expect(backwards).toMatchObject({ code: 1, stderr: 'error: --since must be earlier than --until\n' });
      const noPassword = await runCli(['audit', 'verify'], { env: { ...env, AUDIT_TEST_PASSWORD: '' } });
      expect(noPassword.code).toBe(1);
      expect(noPassword.stderr).toMatch(/AUDIT_TEST_PASSWORD is not set/);

      await tamper(store, ["UPDATE audit_log SET actor = 'carol' WHERE seq = 3"]);
      const caught = await cli('--json', 'audit', 'verify');
      expect(caught.code).toBe(1);
      expect(JSON.parse(caught.stdout)).toMatchObject({
        ok: false,
        rows: 2,
        firstBad: { seq: 3, problem: 'modified' },
      });
      const told = await cli('audit', 'verify');
      expect(told.code).toBe(1);
      expect(told.stdout).toMatch(/^audit log NOT intact: row 3 modified: row 3 does not match its hash/);
    });
  });
});
