// `rewind sync`: bring chosen components of regression in line with production, and decide on it.
import type { Command } from 'commander';
import type { SyncStatus } from '../../domain/sync';
import { terminalSafe } from '../../domain/display-text';
import { formatDuration } from '../../manifest/duration';
import { textTable } from '../../domain/format';
import { action, currentUser, list, nonEmpty, port, print, rewindClient, UsageError } from './command-context';
import { warnWithoutAgent } from './rollback';

const EXIT: Partial<Record<SyncStatus['state'], number>> = {
  compensated: 2,
  failed: 3,
  rejected: 4,
  'timed-out': 5,
};

function renderSync(workflowId: string, s: SyncStatus): string {
  const lines = [
    `${workflowId}: ${s.from} → ${s.to}, ${s.state} (phase ${s.phase}), requested by ${terminalSafe(s.requestedBy)}`,
  ];
  for (const p of s.plan ?? []) {
    const keep = p.keep.paths.length + Object.values(p.keep.keys).flat().length;
    const state = s.components[p.component]?.state ?? '';
    lines.push(
      `  ${terminalSafe(p.component)}: ${p.findings} finding(s)${p.autoFixable ? ', auto-fixable' : ''}${keep ? `, keeps ${keep} allowed difference(s)` : ''} — ${state}`,
    );
    // Before approval, what it overwrites: the kind's words, then the findings it resolves.
    if (p.findings === 0 || !['running', 'awaiting-approval'].includes(s.state)) continue;
    if (p.overwrites) lines.push(`    ${terminalSafe(p.overwrites)}`);
    for (const change of p.changes ?? []) lines.push(`    - ${terminalSafe(change)}`);
    if (p.moreChanges) lines.push(`    … and ${p.moreChanges} more (rewind drift report ${s.scanBefore ?? ''})`);
  }
  if (s.state === 'awaiting-approval') lines.push(`  awaiting approval: rewind sync approve ${workflowId} --as USER`);
  if (s.scanBefore) lines.push(`  scan before: rewind drift report ${s.scanBefore}`);
  if (s.scanAfter) lines.push(`  scan after: rewind drift report ${s.scanAfter.scanId}`);
  if (s.cause) lines.push(`  ${terminalSafe(s.cause)}`);
  return lines.join('\n');
}

export function registerSyncCommands(program: Command): void {
  const sync = program
    .command('sync')
    .description(
      'bring components of one environment (regression) in line with another (production), keeping what the drift rules allow to differ',
    )
    .option('--from <env>', "the reference (default: the manifest's first drift pair, production)")
    .option('--to <env>', 'the environment brought in line (default: regression)')
    .option('--components <list>', 'components to sync (comma-separated; required)', list)
    .option('--reason <text>', 'why, for the record')
    .option('--as <user>', 'who asks (default: $REWIND_USER or your login)', nonEmpty('--as'))
    .option('--wait', 'wait until it ends (or awaits approval) and print where it stands')
    .action(
      action(
        async (
          opts: { from?: string; to?: string; components?: string[]; reason?: string; as?: string; wait?: boolean },
          cmd: Command,
        ) => {
          if (!opts.components) {
            cmd.error('error: --components is required (e.g. --components config,models)');
          }
          const client = await rewindClient(cmd);
          const started = await client.startSync({
            ...(opts.from ? { from: opts.from } : {}),
            ...(opts.to ? { to: opts.to } : {}),
            components: opts.components,
            requestedBy: currentUser(opts.as),
            ...(opts.reason ? { reason: opts.reason } : {}),
          });
          for (const environment of new Set([started.from, started.to])) await warnWithoutAgent(client, environment);
          if (!opts.wait) {
            print(
              cmd,
              started,
              () =>
                `started ${started.workflowId} (${started.from} → ${started.to}); rewind sync status ${started.workflowId}`,
            );
            return;
          }
          const status = await client.waitForSync(started.workflowId);
          print(cmd, { workflowId: started.workflowId, ...status }, () => renderSync(started.workflowId, status));
          process.exitCode = EXIT[status.state] ?? 0;
        },
      ),
    );

  sync
    .command('list')
    .description('recent syncs, newest first')
    .option('--env <name>', 'only the syncs that changed this environment')
    .option('--limit <n>', 'how many', '20')
    .action(
      action(async (opts: { env?: string; limit: string }, cmd: Command) => {
        const client = await rewindClient(cmd);
        const limit = port(opts.limit, '--limit');
        // Each sync listed is asked where it stands: a few hundred at most.
        if (limit > 200) throw new UsageError(`--limit: "${opts.limit}" is more than 200`);
        const syncs = await client.listSyncs(opts.env, limit);
        const now = Date.now();
        print(cmd, syncs, () =>
          syncs.length === 0
            ? 'no syncs yet (rewind sync --components …)'
            : textTable(
                ['ID', 'PAIR', 'STATE', 'PHASE', 'REQUESTER', 'AGE', 'COMPONENTS'],
                syncs.map((s) => [
                  s.workflowId,
                  s.from ? `${s.from} → ${s.to}` : '?',
                  s.state ?? s.execution.toLowerCase(),
                  s.phase ?? '',
                  terminalSafe(s.requestedBy ?? '?'),
                  `${formatDuration(Math.max(0, now - Date.parse(s.startTime)))} ago`,
                  terminalSafe((s.components ?? []).join(',')),
                ]),
              ),
        );
      }),
    );

  sync
    .command('status <id>')
    .description("a sync's phase, state and components")
    .action(
      action(async (id: string, _opts: unknown, cmd: Command) => {
        const client = await rewindClient(cmd);
        const status = await client.syncStatus(id);
        print(cmd, { workflowId: id, ...status }, () => renderSync(id, status));
        // The same exit codes as `sync --wait`, once the sync has ended.
        process.exitCode = EXIT[status.state] ?? 0;
      }),
    );

  for (const decision of ['approve', 'reject'] as const) {
    sync
      .command(`${decision} <id>`)
      .description(`${decision} a sync that awaits approval`)
      .option('--as <user>', 'who decides (default: $REWIND_USER or your login)', nonEmpty('--as'))
      .option('--comment <text>', 'why')
      .action(
        action(async (id: string, opts: { comment?: string }, cmd: Command) => {
          // `--as` may land on `sync` itself, which takes it too.
          const as = cmd.optsWithGlobals<{ as?: string }>().as;
          const client = await rewindClient(cmd);
          const result = await client.decide(id, decision, {
            user: currentUser(as),
            ...(opts.comment ? { comment: opts.comment } : {}),
          });
          if (!result.accepted && !cmd.optsWithGlobals<{ json?: boolean }>().json) {
            process.stderr.write(`refused: ${terminalSafe(result.reason ?? '')}\n`);
          } else {
            print(cmd, result, () => `${decision === 'approve' ? 'approved' : 'rejected'} ${id}`);
          }
          if (!result.accepted) process.exitCode = 1;
        }),
      );
  }
}
