// `rewind audit list|verify`: read the audit log of who did what to rewind, and check that no one
// changed, removed, added or reordered its rows.
import { type Command, InvalidArgumentError } from 'commander';
import {
  AUDIT_LIST_DEFAULT,
  AUDIT_LIST_MAX,
  auditKey,
  listAudit,
  verifyAudit,
  type AuditFilter,
  type AuditRow,
  type AuditVerification,
} from '../../audit/audit-log';
import { terminalSafe } from '../../domain/display-text';
import { count, textTable } from '../../domain/format';
import { DURATION_PATTERN, parseDuration } from '../../manifest/duration';
import { repositoryPassword } from '../../manifest/load';
import { action, manifestOf, nonEmpty, print, UsageError, withStore } from './command-context';

const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/** An ISO 8601 date or time (UTC unless it says otherwise), or a duration back from now (`2h`, `7d`). */
export function auditTime(value: string, now = Date.now()): Date {
  const text = value.trim();
  if (DURATION_PATTERN.test(text)) return new Date(now - parseDuration(text));
  const match = ISO_TIME.exec(text);
  // A time without a zone would be read in the local one: the log's times are UTC, so it is too.
  const date = match ? new Date(text.includes('T') && !match[4] ? `${text}Z` : text) : undefined;
  const [, year, month, day] = match ?? [];
  // Date reads 2026-02-30 as 2 March: the day must come back as it was written.
  if (!date || Number.isNaN(date.getTime()) || !sameUtcDay(date, Number(year), Number(month), Number(day))) {
    throw new InvalidArgumentError(
      'expected an ISO 8601 date or time such as 2026-11-28 or 2026-11-28T13:05:00Z, or a duration back from now such as 2h or 7d',
    );
  }
  return date;
}

function sameUtcDay(date: Date, year: number, month: number, day: number): boolean {
  const written = new Date(Date.UTC(year, month - 1, day));
  return written.getUTCFullYear() === year && written.getUTCMonth() === month - 1 && written.getUTCDate() === day;
}

function listLimit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > AUDIT_LIST_MAX)
    throw new InvalidArgumentError(`expected a whole number from 1 to ${AUDIT_LIST_MAX}`);
  return n;
}

/** Evidence as `planHash=3fa9c1e07b2d…`: enough to tell two apart, short enough for a table. */
function evidenceCell(evidence: Record<string, string> | undefined): string {
  return Object.entries(evidence ?? {})
    .map(([k, v]) => `${k}=${v.length > 12 ? `${v.slice(0, 12)}…` : v}`)
    .join(' ');
}

function renderRows(rows: AuditRow[]): string {
  if (rows.length === 0) return 'no audit entries match';
  return textTable(
    ['SEQ', 'AT', 'ACTOR', 'DOOR', 'ACTION', 'OUTCOME', 'RUN', 'EVIDENCE', 'REASON'],
    rows.map((r) =>
      [
        String(r.seq),
        r.at,
        r.actor,
        r.door,
        r.action,
        r.outcome,
        r.runId ?? '',
        evidenceCell(r.evidence),
        r.reason ?? '',
      ].map(terminalSafe),
    ),
  );
}

function renderVerification(result: AuditVerification): string {
  if (result.ok) {
    const last = result.last
      ? `\nlast row: seq ${result.last.seq}, hash ${result.last.hash} (keep it elsewhere: a chain cannot show rows cut from its end)`
      : '';
    return `audit log intact: ${count(result.rows, 'row')}${last}`;
  }
  const bad = result.firstBad!;
  return `audit log NOT intact: row ${bad.seq} ${bad.problem}: ${bad.detail}\n(verified before it: ${count(result.rows, 'row')})`;
}

interface ListOptions {
  run?: string;
  actor?: string;
  since?: Date;
  until?: Date;
  limit: number;
}

export function registerAuditCommands(program: Command): void {
  const audit = program
    .command('audit')
    .description('read the audit log of who did what to rewind, and check that it has not been tampered with');

  audit
    .command('list')
    .description('list audit entries, newest last')
    .option('--run <id>', 'only entries about this rollback (its workflow id)', nonEmpty('--run'))
    .option('--actor <name>', 'only entries by this actor', nonEmpty('--actor'))
    .option('--since <time>', 'only entries at or after this time (ISO 8601, or a duration back such as 2h)', (v) =>
      auditTime(v),
    )
    .option('--until <time>', 'only entries before this time (ISO 8601, or a duration back such as 30m)', (v) =>
      auditTime(v),
    )
    .option(
      '--limit <n>',
      `how many of the newest matching entries (at most ${AUDIT_LIST_MAX})`,
      listLimit,
      AUDIT_LIST_DEFAULT,
    )
    .addHelpText('after', '\nTimes without a zone are UTC, as are the times shown.')
    .action(
      action(async (opts: ListOptions, cmd: Command) => {
        if (opts.since && opts.until && opts.since >= opts.until)
          throw new UsageError('--since must be earlier than --until');
        const filter: AuditFilter = {
          limit: opts.limit,
          ...(opts.run ? { runId: opts.run } : {}),
          ...(opts.actor ? { actor: opts.actor } : {}),
          ...(opts.since ? { since: opts.since } : {}),
          ...(opts.until ? { until: opts.until } : {}),
        };
        const rows = await withStore(cmd, (store) => listAudit(store, filter));
        print(cmd, rows, () => renderRows(rows));
      }),
    );

  audit
    .command('verify')
    .description('check that no row was modified, deleted, inserted or reordered; exit 1 names the first bad one')
    .addHelpText(
      'after',
      '\nThe key is derived from the repository password (repository.passwordEnv or passwordFile in the manifest).\n' +
        'Rows cut from the very end leave a valid chain: compare the last row printed with a copy kept elsewhere.',
    )
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        const key = auditKey(repositoryPassword(manifest));
        const result = await withStore(cmd, (store) => verifyAudit(store, key));
        print(cmd, result, () => renderVerification(result));
        if (!result.ok) process.exitCode = 1;
      }),
    );
}
