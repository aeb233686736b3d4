// `rewind rollback start|approve|reject|cancel|status|report|list`, the live watch loop behind
// `status --watch`, and the warning when no agent serves the environment (snapshots use it too).
import { terminalSafe } from '../../domain/display-text';
import { formatDuration } from '../../manifest/duration';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Command, Option } from 'commander';
import { CROSS_SECTION_ID_PATTERN } from '../../domain/cross-section';
import { FINAL_STATES, STATUS_EXIT_CODES, STRATEGIES, TRIGGERS, type RollbackStatus } from '../../domain/rollback';
import { RequestError, type DecisionVerb, type RollbackView } from '../client';
import { progressBar, renderLive, renderStatus } from '../render';
import { postmortemHtml } from '../postmortem-html';
import { renderPostmortem } from '../../domain/postmortem';
import type { RollbackDoor } from '../api-door';
import { action, currentUser, globals, list, nonEmpty, port, print, rollbackDoor, UsageError } from './command-context';

export function registerRollbackCommands(program: Command): void {
  const rollback = program.command('rollback').description('roll an environment back, approve, watch');

  rollback
    .command('start')
    .description('start a rollback to a version or a cross-section; waits for the plan unless --no-wait')
    .requiredOption('--env <name>', 'environment')
    .option('--to-version <label>', 'newest cross-section labelled with this version', nonEmpty('--to-version'))
    .option('--to-snapshot <id>', 'a cross-section id (rewind snapshot list)')
    .option(
      '--to-time <iso>',
      'a moment, e.g. 2026-11-28T13:05:00Z: point-in-time recovery for databases that have it, the newest cross-section before it otherwise',
    )
    .option('--components <list>', 'only these components (partial rollback)', list)
    .option('--reason <text>', 'why, for the record')
    .option('--as <user>', 'requester (default: $REWIND_USER or your login)', nonEmpty('--as'))
    .addOption(
      new Option('--trigger <trigger>', 'what started it').choices(TRIGGERS as unknown as string[]).default('manual'),
    )
    .addOption(
      new Option(
        '--strategy <strategy>',
        'for postgres components: undo migrations, restore the dump, or point-in-time recovery',
      ).choices(STRATEGIES as unknown as string[]),
    )
    .option('--accept-data-loss', 'accept up front a plan that loses data (otherwise an approver must)')
    .option('--dry-run', 'decide and prepare only: print the plan, change nothing')
    .option('--no-wait', 'return as soon as the run has started')
    .option(
      '--request-id <key>',
      'idempotency key: the same key for the same environment always names the same run (a retried webhook, a double click)',
    )
    .action(
      action(
        async (
          opts: {
            env: string;
            toVersion?: string;
            toSnapshot?: string;
            toTime?: string;
            components?: string[];
            reason?: string;
            as?: string;
            trigger: string;
            dryRun?: boolean;
            wait: boolean;
            requestId?: string;
            strategy?: string;
            acceptDataLoss?: boolean;
          },
          cmd: Command,
        ) => {
          if ([opts.toVersion, opts.toSnapshot, opts.toTime].filter((t) => t !== undefined).length !== 1) {
            throw new UsageError('give exactly one of --to-version V, --to-snapshot ID or --to-time ISO');
          }
          if (opts.toTime !== undefined) {
            const at = Date.parse(opts.toTime);
            if (
              !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(opts.toTime) ||
              Number.isNaN(at)
            ) {
              throw new UsageError(
                `--to-time: "${opts.toTime}" is not an ISO time with a zone, like 2026-11-28T13:05:00Z`,
              );
            }
            if (at > Date.now()) throw new UsageError(`--to-time: ${opts.toTime} is in the future`);
          }
          if (opts.toSnapshot !== undefined && !CROSS_SECTION_ID_PATTERN.test(opts.toSnapshot)) {
            throw new UsageError(
              `--to-snapshot: "${opts.toSnapshot}" is not a cross-section id (like xs-20261128-130641-a1b2)`,
            );
          }
          const client = await rollbackDoor(cmd);
          const { workflowId, existing } = await client.startRollback(
            {
              environment: opts.env,
              target:
                opts.toVersion !== undefined
                  ? { kind: 'version', version: opts.toVersion }
                  : opts.toTime !== undefined
                    ? { kind: 'time', time: new Date(opts.toTime).toISOString() }
                    : { kind: 'cross-section', id: opts.toSnapshot },
              requester: currentUser(opts.as),
              trigger: opts.trigger,
              dryRun: opts.dryRun ?? false,
              acceptDataLoss: opts.acceptDataLoss ?? false,
              ...(opts.strategy ? { strategy: opts.strategy } : {}),
              ...(opts.components ? { components: opts.components } : {}),
              ...(opts.reason ? { reason: opts.reason } : {}),
            },
            opts.requestId ? { requestId: opts.requestId } : {},
          );
          const started = existing
            ? `request ${opts.requestId ?? ''} already started ${workflowId}`
            : `started ${workflowId}`;
          // After the request's checks: a refused request prints only why. Asked while the run
          // starts, not before: the answer only adds a warning.
          const agentCheck = warnWithoutAgent(client, opts.env);
          if (!opts.wait && !opts.dryRun) {
            await agentCheck;
            print(
              cmd,
              existing ? { workflowId, existing } : { workflowId, existing, phase: 'decide', state: 'running' },
              () => `${started}\nFollow it: rewind rollback status ${workflowId} --watch`,
            );
            return;
          }
          const tty = !globals(cmd).json && process.stderr.isTTY;
          if (tty) process.stderr.write(`${started}; taking the safety snapshot and computing the plan …\n`);
          const view = await client.waitForPlan(workflowId);
          await agentCheck;
          const s = view.status;
          if (s.state === 'failed') throw new RequestError(`${s.cause ?? 'the rollback failed'} (${workflowId})`);
          print(
            cmd,
            { workflowId, phase: s.phase, state: s.state, cause: s.cause, plan: s.plan, reportFile: s.reportFile },
            () => renderStatus(view),
          );
        },
      ),
    );

  decisionCommand(rollback, 'approve');
  decisionCommand(rollback, 'reject');
  decisionCommand(rollback, 'accept');
  decisionCommand(rollback, 'compensate');

  rollback
    .command('cancel <workflowId>')
    .description(
      'cancel a rollback: before execute it stops cleanly; during execute it stops the running steps and compensates',
    )
    .option('--as <user>', 'who cancels, for the record (default: $REWIND_USER or your login)', nonEmpty('--as'))
    .option('--reason <text>', 'why, for the record')
    .option('--request-id <id>', 'idempotency key: a repeated request with the same id counts once')
    .action(
      action(async (workflowId: string, opts: { as?: string; reason?: string; requestId?: string }, cmd: Command) => {
        const client = await rollbackDoor(cmd);
        const outcome = await client.cancel(workflowId, {
          user: currentUser(opts.as),
          ...(opts.reason ? { reason: opts.reason } : {}),
          ...(opts.requestId ? { requestId: opts.requestId } : {}),
        });
        print(
          cmd,
          { ...outcome, cancelRequested: true },
          () =>
            `cancellation requested for ${workflowId} (it was in ${outcome.phase}); follow it with: rewind rollback status ${workflowId} --watch`,
        );
      }),
    );

  rollback
    .command('status <workflowId>')
    .description(
      'phase, state, plan and per-step progress of a rollback; exits 0 while it runs or waits and when it completed, ' +
        '2 compensated, 3 failed, 4 rejected, 5 timed out, 6 cancelled',
    )
    .option('--watch', 'follow it live until it ends, through the approval wait (saying who may approve)')
    .action(
      action(async (workflowId: string, opts: { watch?: boolean }, cmd: Command) => {
        const client = await rollbackDoor(cmd);
        const view = opts.watch
          ? await watch(client, workflowId, globals(cmd).json ?? false)
          : await client.rollbackView(workflowId);
        print(cmd, statusJson(view), () => renderStatus(view));
        process.exitCode = STATUS_EXIT_CODES[view.status.state];
      }),
    );

  rollback
    .command('report <workflowId>')
    .description('print the Markdown report of a finished rollback')
    .action(
      action(async (workflowId: string, _opts: unknown, cmd: Command) => {
        const { status } = await (await rollbackDoor(cmd)).rollbackView(workflowId);
        if (!status.report)
          throw new RequestError(
            `${workflowId} has no report yet (state ${status.state}); it is written when the run ends`,
          );
        print(cmd, { workflowId, reportFile: status.reportFile, report: status.report }, () => status.report!);
      }),
    );

  rollback
    .command('postmortem <workflowId>')
    .description(
      'print a postmortem template of a rollback, pre-filled with its timeline, plan, approvals, checks and durations',
    )
    .addOption(
      new Option('--format <format>', 'Markdown, or one HTML page').choices(['markdown', 'html']).default('markdown'),
    )
    .action(
      action(async (workflowId: string, opts: { format: 'markdown' | 'html' }, cmd: Command) => {
        const { status } = await (await rollbackDoor(cmd)).rollbackView(workflowId);
        const markdown = renderPostmortem(status);
        const text = opts.format === 'html' ? postmortemHtml(markdown, `Postmortem: ${workflowId}`) : markdown;
        print(cmd, { workflowId, state: status.state, format: opts.format, postmortem: text }, () => text);
      }),
    );

  rollback
    .command('list')
    .description('recent rollbacks, newest first')
    .option('--env <name>', 'only this environment')
    .option('--limit <n>', 'how many', '20')
    .action(
      action(async (opts: { env?: string; limit: string }, cmd: Command) => {
        const runs = await (await rollbackDoor(cmd)).listRollbacks(opts.env, port(opts.limit, '--limit'));
        const now = Date.now();
        const rows = runs.map((r) => [
          r.workflowId,
          String(r.state ?? r.execution.toLowerCase()),
          String(r.phase ?? ''),
          terminalSafe(r.requester ?? '?'),
          `${formatDuration(Math.max(0, now - Date.parse(r.startTime)))} ago`,
          `${terminalSafe(r.target ?? '')}${r.dryRun ? ' (dry run)' : ''}`,
        ]);
        print(cmd, runs, () =>
          runs.length === 0 ? 'no rollbacks yet' : table(['ID', 'STATE', 'PHASE', 'REQUESTER', 'AGE', 'TARGET'], rows),
        );
      }),
    );
}

/** Columns padded to their widest cell; the last one is left as it is. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const DECISION_HELP: Record<DecisionVerb, string> = {
  approve: 'approve a rollback that awaits approval',
  reject: 'reject a rollback before it executes',
  accept: 'keep the result of a rollback whose verification failed and waits (verify.onFailure: ask)',
  compensate: 'put everything back after a verification that failed and waits (verify.onFailure: ask)',
};

function decisionCommand(rollback: Command, name: DecisionVerb) {
  rollback
    .command(`${name} <workflowId>`)
    .description(DECISION_HELP[name])
    .option('--as <user>', 'who decides (default: $REWIND_USER or your login)', nonEmpty('--as'))
    .option('--comment <text>', 'a note for the record')
    .option('--request-id <id>', 'idempotency key: a repeated request with the same id counts once')
    .option(
      '--accept-data-loss',
      name === 'approve' ? 'accept that the plan loses data (needed when it does)' : `ignored for ${name}`,
    )
    .action(
      action(
        async (
          workflowId: string,
          opts: { as?: string; comment?: string; requestId?: string; acceptDataLoss?: boolean },
          cmd: Command,
        ) => {
          const client = await rollbackDoor(cmd);
          const user = currentUser(opts.as);
          const outcome = await client.decide(workflowId, name, {
            user,
            ...(opts.acceptDataLoss && name === 'approve' ? { acceptDataLoss: true } : {}),
            ...(opts.comment ? { comment: opts.comment } : {}),
            ...(opts.requestId ? { requestId: opts.requestId } : {}),
          });
          if (!outcome.accepted) {
            // A refusal is an error for the caller: stderr and exit 1 (--json still gets the outcome).
            if (globals(cmd).json) print(cmd, outcome, () => '');
            else process.stderr.write(`refused: ${terminalSafe(outcome.reason ?? 'unknown reason')}\n`);
            process.exitCode = 1;
            return;
          }
          print(cmd, outcome, () => {
            const now = `state: ${outcome.state}, phase: ${outcome.phase}`;
            if (name === 'reject') return `rejected by ${terminalSafe(user)}; nothing was changed (${now})`;
            if (name === 'accept')
              // Paused after a wave (phase execute), the rollout goes on; in verify, the run completes.
              return `verification failure accepted by ${terminalSafe(user)}; ${outcome.phase === 'execute' ? 'the next wave starts' : 'the rollback completes'}, with a warning (${now})`;
            if (name === 'compensate')
              return `compensation chosen by ${terminalSafe(user)}; everything is being put back (${now})`;
            const { approvals, requiredApprovals } = outcome;
            return approvals >= requiredApprovals
              ? `approved by ${terminalSafe(user)} (${approvals} of ${requiredApprovals}); ${now}`
              : `approved by ${terminalSafe(user)} (${approvals} of ${requiredApprovals}); waiting for ${requiredApprovals - approvals} more (${now})`;
          });
        },
      ),
    );
}

/** A run without an agent waits, durably, until one starts; say so rather than seem to hang. */
export async function warnWithoutAgent(client: RollbackDoor, environment: string): Promise<void> {
  // An unknown environment: the request check names the problem.
  const missing = await client.agentsMissing(environment).catch(() => []);
  if (missing.length === 0) return;
  process.stderr.write(
    `warning: no agent serves ${environment}${missing.some((m) => m.includes('--host')) ? ' (or some of its hosts)' : ''} right now; the run will wait until ${missing.map((m) => `\`${m}\``).join(', ')} ${missing.length > 1 ? 'start' : 'starts'}\n`,
  );
}

function statusJson(view: RollbackView) {
  return { ...view.status, execution: view.execution, live: view.live };
}

/** Live per-phase progress bars, redrawn in place on a terminal, until the run ends or waits. */
/** "waiting for approval by bob, carol (0 of 1, until …)" while a run awaits approval. */
function approvalWait(s: RollbackStatus): string | undefined {
  if (s.state !== 'awaiting-approval') return undefined;
  const may = (s.approvers ?? []).filter((a) => s.requesterMayApprove !== false || a !== s.requester);
  const until = s.approvalDeadline ? `, until ${s.approvalDeadline}` : '';
  return `waiting for approval by ${may.map(terminalSafe).join(', ')} (${s.approvals.length} of ${s.requiredApprovals ?? 1}${until})`;
}

async function watch(client: RollbackDoor, workflowId: string, json: boolean): Promise<RollbackView> {
  const tty = process.stderr.isTTY && !json;
  let drawn = 0;
  const draw = (view: RollbackView) => {
    if (!tty) return;
    const s: RollbackStatus = view.status;
    const lines = [`${workflowId}  state ${s.state}  phase ${s.phase}`];
    // A phase is done (with its time), running, or not reached: no bar pretends to know more.
    for (const [phase, t] of Object.entries(s.phases)) {
      lines.push(
        `  ${phase.padEnd(10)} ${t.durationMs !== undefined ? `done in ${formatDuration(t.durationMs)}` : 'running'}`,
      );
    }
    const waiting = approvalWait(s);
    if (waiting) lines.push(`  ${waiting}`);
    for (const live of view.live) {
      const bar = live.progress?.percent !== undefined ? `${progressBar(live.progress.percent)} ` : '';
      lines.push(`  ${terminalSafe(live.component || live.activity).padEnd(12)} ${bar}${renderLive(live)}`);
    }
    if (drawn) process.stderr.write(`\x1b[${drawn}A\x1b[0J`);
    process.stderr.write(`${lines.join('\n')}\n`);
    drawn = lines.length;
  };
  let lastState = '';
  for (let polls = 0; ; polls++) {
    const view = await client.rollbackView(workflowId);
    draw(view);
    const now = `phase ${view.status.phase}, state ${view.status.state}`;
    if (!tty && !json && now !== lastState) {
      const waiting = approvalWait(view.status);
      process.stderr.write(`${new Date().toISOString()} ${now}${waiting ? `; ${waiting}` : ''}\n`);
      lastState = now;
    }
    // Through the approval wait too: it ends when the run does.
    if (FINAL_STATES.includes(view.status.state)) return view;
    await sleep(polls < 20 ? 250 : 1_000);
  }
}
