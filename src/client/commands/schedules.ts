// `rewind schedules apply|list|pause|unpause`: the Temporal Schedules of hourly drift scans.
import type { Command } from 'commander';
import { applySchedules, listSchedules, setSchedulePaused } from '../schedules';
import { textTable } from '../../domain/format';
import { action, currentUser, print, rewindClient } from './command-context';

export function registerScheduleCommands(program: Command): void {
  const schedules = program
    .command('schedules')
    .description("Temporal Schedules that scan each drift pair (the manifest's drift.pairs, default hourly)");

  schedules
    .command('apply')
    .description('create or update the schedules to match the manifest; delete those of pairs it no longer has')
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        const client = await rewindClient(cmd);
        const changes = await applySchedules(client.client, client.manifest);
        print(cmd, changes, () =>
          changes.length === 0
            ? 'no drift pairs in the manifest (drift.pairs), and no production and regression environments: nothing to schedule'
            : textTable(
                ['SCHEDULE', 'PAIR', 'EVERY', 'CHANGE'],
                changes.map((c) => [c.scheduleId, `${c.from} → ${c.to}`, c.every, c.change]),
              ),
        );
      }),
    );

  schedules
    .command('list')
    .description("this manifest's drift schedules, with their next and last runs")
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        const client = await rewindClient(cmd);
        const views = await listSchedules(client.client, client.manifest);
        print(cmd, views, () =>
          views.length === 0
            ? 'no drift schedules yet (rewind schedules apply)'
            : textTable(
                ['SCHEDULE', 'PAIR', 'EVERY', 'STATE', 'NEXT RUN (UTC)', 'LAST RUN (UTC)'],
                views.map((v) => [
                  v.scheduleId,
                  `${v.from ?? '?'} → ${v.to ?? '?'}`,
                  v.everyMs ? `${Math.round(v.everyMs / 60_000)}m` : '?',
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
      .command(`${paused ? 'pause' : 'unpause'} <pair>`)
      .description(`${paused ? 'pause' : 'resume'} a pair's schedule (e.g. production-regression, or its schedule id)`)
      .option('--note <text>', 'why, shown in the Web UI')
      .option('--as <user>', 'who (default: $REWIND_USER or your login)')
      .action(
        action(async (pair: string, opts: { note?: string; as?: string }, cmd: Command) => {
          const client = await rewindClient(cmd);
          const note = `${paused ? 'paused' : 'resumed'} by ${currentUser(opts.as)}${opts.note ? `: ${opts.note}` : ''}`;
          const scheduleId = await setSchedulePaused(client.client, client.manifest, pair, paused, note);
          print(cmd, { scheduleId, paused, note }, () => `${scheduleId}: ${note}`);
        }),
      );
  }
}
