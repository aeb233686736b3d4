// `rewind stats`: how often rollbacks happen, how long they take and how often they work (seed
// 6.10), from the rollback history in the project store: the numbers the metrics count.
import { type Command, InvalidArgumentError } from 'commander';
import { count, textTable } from '../../domain/format';
import { formatDuration } from '../../manifest/duration';
import { rollbackStats, type RollbackStats, type RollbackStatsRow } from '../../store/rollback-history';
import { auditTime } from './audit';
import { action, manifestOf, nonEmpty, print, UsageError, withStore } from './command-context';

interface StatsOptions {
  env?: string;
  since?: Date;
  until?: Date;
}

const percent = (rate: number | null) => (rate === null ? '–' : `${(rate * 100).toFixed(1)}%`);

const humanSeconds = (seconds: number | null) => (seconds === null ? '–' : formatDuration(seconds * 1000));

const others = (r: RollbackStatsRow) =>
  String((r.results.rejected ?? 0) + (r.results['timed-out'] ?? 0) + (r.results.cancelled ?? 0));

function row(label: string[], r: RollbackStatsRow): string[] {
  return [
    ...label,
    String(r.runs),
    String(r.results.completed ?? 0),
    String(r.results.compensated ?? 0),
    String(r.results.failed ?? 0),
    others(r),
    percent(r.successRate),
    humanSeconds(r.mttrSeconds),
    humanSeconds(r.meanApprovalWaitSeconds),
  ];
}

const COLUMNS = ['RUNS', 'COMPLETED', 'COMPENSATED', 'FAILED', 'NOT RUN', 'SUCCESS', 'MTTR', 'APPROVAL WAIT'];

function renderStats(stats: RollbackStats): string {
  const window = `${stats.since ?? 'the first run'} to ${stats.until ?? 'now'}`;
  if (stats.total.runs === 0)
    return `no rollback ended from ${window}${stats.inProgress ? ` (${count(stats.inProgress, 'run')} in progress)` : ''}`;
  const t = stats.total;
  return [
    `rollbacks ended from ${window}: ${t.runs}` +
      (stats.perWeek !== null ? ` (${stats.perWeek.toFixed(2)} a week)` : '') +
      (stats.inProgress ? `, ${stats.inProgress} in progress` : ''),
    `success rate ${percent(t.successRate)} (completed of those that executed), mean time to roll back ${humanSeconds(t.mttrSeconds)}`,
    '',
    textTable(
      ['ENVIRONMENT', ...COLUMNS],
      stats.environments.map((r) => row([r.environment ?? ''], r)),
    ),
    '',
    textTable(
      ['ENVIRONMENT', 'TRIGGER', 'MONTH', ...COLUMNS],
      stats.groups.map((r) => row([r.environment ?? '', r.trigger ?? '', r.month ?? ''], r)),
    ),
    '',
    'MTTR: mean time from start to end of the completed runs, approval wait included. NOT RUN: rejected, timed out or cancelled.',
  ].join('\n');
}

export function registerStatsCommands(program: Command): void {
  program
    .command('stats')
    .description('rollback frequency, mean time to roll back and success rate, by environment, trigger and month')
    .option('--env <name>', 'only this environment', nonEmpty('--env'))
    .option('--since <time>', 'runs that ended at or after this time (ISO 8601, or a duration back such as 90d)', (v) =>
      auditTime(v),
    )
    .option('--until <time>', 'runs that ended before this time (ISO 8601, or a duration back)', (v) => auditTime(v))
    .addHelpText(
      'after',
      '\nFrom the rollback history in the project store (dry runs are not recorded). Times are UTC.\n' +
        'The same numbers as the metrics rewind_rollbacks_total and rewind_rollback_duration_seconds.',
    )
    .action(
      action(async (opts: StatsOptions, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        if (opts.env && !manifest.environments[opts.env])
          throw new InvalidArgumentError(
            `--env: unknown environment "${opts.env}" (the manifest has: ${Object.keys(manifest.environments).join(', ')})`,
          );
        if (opts.since && opts.until && opts.since >= opts.until)
          throw new UsageError('--since must be earlier than --until');
        const stats = await withStore(cmd, (store) =>
          rollbackStats(store, {
            ...(opts.env ? { environment: opts.env } : {}),
            ...(opts.since ? { since: opts.since } : {}),
            ...(opts.until ? { until: opts.until } : {}),
          }),
        );
        print(cmd, stats, () => renderStats(stats));
      }),
    );
}
