// `rewind drill run|list`: rollback drills on the drill environment (seed 6.7), by hand or on
// their schedules (rewind schedules apply).
import { type Command, Option } from 'commander';
import { WorkflowFailedError } from '@temporalio/client';
import { drillWorkflowId, type DrillResult, type DrillScope } from '../../domain/drill';
import { terminalSafe } from '../../domain/display-text';
import { textTable } from '../../domain/format';
import { drillEnvironment } from '../../drills/section';
import { formatDuration } from '../../manifest/duration';
import { drillWorkflow } from '../../workflows';
import { failureMessage, RequestError } from '../client';
import { action, list, manifestOf, port, print, rewindClient, withStore } from './command-context';

interface DrillRow {
  id: string;
  environment: string;
  scope: string;
  components: string[] | string;
  from_version: string;
  to_version: string;
  finished_at: Date | string;
  outcome: string;
  reason: string | null;
  rollback_seconds: number;
  mttr_goal_seconds: number;
  met_goal: boolean;
}

function renderResult(r: DrillResult): string {
  return [
    `drill ${r.drillId}: ${r.outcome.toUpperCase()}${r.reason ? ` (${terminalSafe(r.reason)})` : ''}`,
    `  ${r.environment}, ${r.scope} (${r.components.map(terminalSafe).join(', ')}): back from ${terminalSafe(r.current)} to ${terminalSafe(r.previous)}, then forward`,
    `  rollback ${formatDuration(r.rollbackMs)} (goal ${formatDuration(r.mttrGoalMs)}: ${r.metGoal ? 'met' : 'MISSED'}), run ${r.rollbackRunId}`,
    ...(r.forwardRunId ? [`  forward ${formatDuration(r.forwardMs ?? 0)}, run ${r.forwardRunId}`] : []),
  ].join('\n');
}

export function registerDrillCommands(program: Command): void {
  const drill = program
    .command('drill')
    .description('rollback drills: roll the drill environment back to its previous release and forward again, timed');

  drill
    .command('run')
    .description('run a drill now (the drill environment: drills.environment, default regression)')
    .addOption(
      new Option('--scope <scope>', 'one component in turn, or all').choices(['partial', 'full']).default('partial'),
    )
    .option('--components <list>', 'these components instead (comma-separated)', list)
    .option('--no-wait', 'start it and print its workflow id')
    .action(
      action(async (opts: { scope: DrillScope; components?: string[]; wait: boolean }, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        const environment = drillEnvironment(manifest);
        if (!environment)
          throw new RequestError('no drill environment: set drills.environment, or have a "regression" environment');
        const client = await rewindClient(cmd);
        const handle = await client.client.workflow.start(drillWorkflow, {
          taskQueue: manifest.temporal.taskQueue,
          workflowId: drillWorkflowId(environment, opts.scope, new Date()),
          args: [{ scope: opts.scope, requester: 'cli', ...(opts.components ? { components: opts.components } : {}) }],
        });
        if (!opts.wait) {
          print(cmd, { workflowId: handle.workflowId }, () => `started ${handle.workflowId}`);
          return;
        }
        process.stderr.write(`drill ${handle.workflowId} running (rollback back, verify, forward) …\n`);
        let result: DrillResult;
        try {
          result = await handle.result();
        } catch (err) {
          throw new RequestError(
            `drill ${handle.workflowId} could not run: ${err instanceof WorkflowFailedError ? failureMessage(err) : String(err)}`,
          );
        }
        print(cmd, result, () => renderResult(result));
        if (result.outcome !== 'passed') process.exitCode = 2;
      }),
    );

  drill
    .command('list')
    .description('drills that ran, newest first')
    .option('--limit <n>', 'how many', '20')
    .action(
      action(async (opts: { limit: string }, cmd: Command) => {
        const limit = port(opts.limit, '--limit');
        const rows = await withStore(cmd, (store) =>
          store.query<DrillRow>(
            `SELECT id, environment, scope, components, from_version, to_version, finished_at, outcome, reason,
                    rollback_seconds, mttr_goal_seconds, met_goal
               FROM drills ORDER BY finished_at DESC LIMIT $1`,
            [limit],
          ),
        );
        const drills = rows.map((r) => ({
          ...r,
          components: typeof r.components === 'string' ? (JSON.parse(r.components) as string[]) : r.components,
          finished_at: new Date(r.finished_at).toISOString(),
        }));
        print(cmd, drills, () =>
          drills.length === 0
            ? 'no drills yet (rewind drill run)'
            : textTable(
                ['DRILL', 'FINISHED (UTC)', 'SCOPE', 'COMPONENTS', 'RELEASES', 'OUTCOME', 'ROLLBACK', 'GOAL', 'WHY'],
                drills.map((d) =>
                  [
                    d.id,
                    d.finished_at.slice(0, 19).replace('T', ' '),
                    d.scope,
                    d.components.join(', '),
                    `${d.from_version} → ${d.to_version}`,
                    d.outcome,
                    formatDuration(d.rollback_seconds * 1000),
                    d.met_goal ? 'met' : 'missed',
                    d.reason ?? '',
                  ].map(terminalSafe),
                ),
              ),
        );
      }),
    );
}
