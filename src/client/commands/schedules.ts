// `rewind schedules apply|list|pause|unpause`: the Temporal Schedules of drift scans, scheduled
// cross-sections and the repository's maintenance (prune, check).
import type { Command } from 'commander';
import { applySchedules, listSchedules, setSchedulePaused } from '../schedules';
import { textTable } from '../../domain/format';
import { formatInterval } from '../../manifest/duration';
import { action, currentUser, print, rewindClient } from './command-context';

export function registerScheduleCommands(program: Command): void {
  const schedules = program
    .command('schedules')
    .description(
      'Temporal Schedules: drift scans (drift.pairs, default hourly), cross-sections (snapshots.schedules), prune and check (snapshots.prune, snapshots.check)',
    );

  schedules
    .command('apply')
    .description('create or update the schedules to match the manifest; delete those it no longer asks for')
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        const client = await rewindClient(cmd);
        const changes = await applySchedules(client.client, client.manifest);
        print(cmd, changes, () =>
          changes.length === 0
            ? 'nothing to schedule: no drift pairs, no snapshots.schedules, and prune and check are off'
            : textTable(
                ['SCHEDULE', 'WHAT', 'EVERY', 'CHANGE'],
                changes.map((c) => [c.scheduleId, c.what, c.every, c.change]),
              ),
        );
      }),
    );

  schedules
    .command('list')
    .description("this manifest's schedules, with their next and last runs")
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        const client = await rewindClient(cmd);
        const views = await listSchedules(client.client, client.manifest);
        print(cmd, views, () =>
          views.length === 0
            ? 'no schedules yet (rewind schedules apply)'
            : textTable(
                ['SCHEDULE', 'WHAT', 'EVERY', 'STATE', 'NEXT RUN (UTC)', 'LAST RUN (UTC)'],
                views.map((v) => [
                  v.scheduleId,
                  v.what ?? '?',
                  v.everyMs ? formatInterval(v.everyMs) : '?',
                  v.paused ? `paused${v.note ? ` (${v.note})` : ''}` : 'active',
                  v.nextRun?.slice(0, 19).replace('T', ' ') ?? '',
                  v.lastRun?.slice(0, 19).replace('T', ' ') ?? '',
                ]),
              ),
        );
      }),
    );

  for (const paused of [true, false]) {
    schedules
      .command(`${paused ? 'pause' : 'unpause'} <name>`)
      .description(
        `${paused ? 'pause' : 'resume'} a schedule: a drift pair (production-regression), snapshot-<env>, prune, check, or its id`,
      )
      .option('--note <text>', 'why, shown in the Web UI')
      .option('--as <user>', 'who (default: $REWIND_USER or your login)')
      .action(
        action(async (name: string, opts: { note?: string; as?: string }, cmd: Command) => {
          const client = await rewindClient(cmd);
          const note = `${paused ? 'paused' : 'resumed'} by ${currentUser(opts.as)}${opts.note ? `: ${opts.note}` : ''}`;
          const done = await setSchedulePaused(client.client, client.manifest, name, paused, note);
          print(cmd, { ...done, paused }, () =>
            done.changed
              ? `${done.scheduleId}: ${done.note}`
              : `${done.scheduleId}: already ${paused ? 'paused' : 'running'}, unchanged${done.note ? ` (${done.note})` : ''}`,
          );
        }),
      );
  }
}
