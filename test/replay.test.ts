// Golden histories of each workflow, recorded by `npm run record-histories`, are replayed
// against today's workflow code, bundled the way a worker loads it (src/workers/bundle-workflows.ts,
// src/workers/workflow-code.ts): a change to a workflow's commands that is not behind `patched()`
// makes this fail.
//
// Histories are named `<outcome>.v<generation>.json`. A new generation (v4, ...) is found on its
// own; it must hold a history for every outcome, and older generations keep what they hold.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { bundleWorkflows, preloadedModuleProblems, workflowBundleCode } from '../src/workers/bundle-workflows';
import { BUNDLE_FILES, PRELOADED_MODULES } from '../src/workers/workflow-code';
import { TEST_PASSWORD } from './support/harness';
import { tempDir } from './support/temp';

const dir = path.join(__dirname, 'histories');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();

const BASE_OUTCOMES = [
  'rollback-cancelled-during-execute',
  'rollback-compensated',
  'rollback-completed',
  'rollback-rejected',
  'snapshot-completed',
];
const ROLLBACK_OUTCOMES = [...BASE_OUTCOMES, 'rollback-postgres-undo'];
const DRIFT_OUTCOMES = [...ROLLBACK_OUTCOMES, 'drift-scan-completed', 'sync-completed'];
const ANNOUNCED_OUTCOMES = [...DRIFT_OUTCOMES, 'drift-scan-continuing', 'drift-scan-continued'];
const AUTO_APPROVED_OUTCOMES = [...ANNOUNCED_OUTCOMES, 'rollback-auto-approved'];
/**
 * Every outcome the newest generation must have a history for (v6 added drift scans and syncs;
 * v7 local activities in scans, and a scan that continued as new: its first run and its last;
 * v8 announcements of rollbacks; v9 a run its trigger rule approved; v10 drills and the
 * repository's check and prune).
 */
const OPERATIONS_OUTCOMES = [...AUTO_APPROVED_OUTCOMES, 'drill-passed', 'repository-check', 'repository-prune'];
const OUTCOMES = [...OPERATIONS_OUTCOMES, 'rollback-verified-accepted'];
/**
 * What each older generation holds and must keep. v1: plans made by the control worker;
 * v2: by the agents (patch plan-components-on-agent), and PostgreSQL undo; v3: the environment
 * lock; v4: Updates; v5: prepare at once.
 */
const RECORDED: Record<number, string[]> = {
  1: BASE_OUTCOMES,
  2: ROLLBACK_OUTCOMES,
  3: ROLLBACK_OUTCOMES,
  4: ROLLBACK_OUTCOMES,
  5: ROLLBACK_OUTCOMES,
  6: DRIFT_OUTCOMES,
  7: ANNOUNCED_OUTCOMES,
  8: ANNOUNCED_OUTCOMES,
  9: AUTO_APPROVED_OUTCOMES,
  10: OPERATIONS_OUTCOMES,
};

const NAME = /^(?<outcome>[a-z0-9-]+)\.v(?<generation>\d+)\.json$/;

function parse(file: string): { outcome: string; generation: number } | undefined {
  const match = NAME.exec(file);
  return match?.groups ? { outcome: match.groups.outcome!, generation: Number(match.groups.generation) } : undefined;
}

function outcomesOf(generation: number): string[] {
  return files.flatMap((f) => {
    const parsed = parse(f);
    return parsed?.generation === generation ? [parsed.outcome] : [];
  });
}

function readHistory(file: string): { text: string; history: ReturnType<typeof historyFromJSON> } {
  const text = readFileSync(path.join(dir, file), 'utf8');
  return { text, history: historyFromJSON(JSON.parse(text)) };
}

/**
 * The run's own workflow id, which newer servers record in its first event: child workflow ids
 * derive from it (a sync's scans). Older histories replay under their file's name.
 */
const workflowIdOf = (file: string): string => {
  const events = (
    JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as {
      events: { workflowExecutionStartedEventAttributes?: { workflowId?: string } }[];
    }
  ).events;
  return events[0]?.workflowExecutionStartedEventAttributes?.workflowId ?? file.replace(/\.json$/, '');
};

describe('replay of recorded histories', () => {
  const bundleDir = tempDir('rewind-replay-');
  const bundle = path.join(bundleDir, BUNDLE_FILES.plain);
  const traced = path.join(bundleDir, BUNDLE_FILES.traced);

  beforeAll(async () => {
    await bundleWorkflows(bundleDir);
  }, 120_000);

  it('names every history <outcome>.v<generation>.json', () => {
    expect(files.filter((f) => parse(f) === undefined)).toEqual([]);
  });

  it('has a history for every outcome in the newest generation, and older generations keep theirs', () => {
    const generations = [...new Set(files.flatMap((f) => parse(f)?.generation ?? []))].sort((a, b) => a - b);
    const newest = generations.at(-1);
    expect(newest).toBeDefined();
    const required = new Map(Object.entries(RECORDED).map(([generation, outcomes]) => [Number(generation), outcomes]));
    required.set(newest!, OUTCOMES);
    const missing = Object.fromEntries(
      [...required]
        .map(
          ([generation, outcomes]) =>
            [`v${generation}`, outcomes.filter((o) => !outcomesOf(generation).includes(o))] as const,
        )
        .filter(([, outcomes]) => outcomes.length > 0),
    );
    expect(missing).toEqual({});
  });

  it.each(files)('replays %s from the worker bundle without non-determinism', async (file) => {
    const { text, history } = readHistory(file);
    await expect(
      Worker.runReplayHistory({ workflowBundle: { codePath: bundle } }, history, workflowIdOf(file)),
    ).resolves.toBeUndefined();
    // Workflow payloads never carry the repository password.
    expect(text).not.toContain(TEST_PASSWORD);
    expect(text).not.toContain(Buffer.from(TEST_PASSWORD).toString('base64'));
  });

  // A worker that turns tracing on (OTEL_EXPORTER_OTLP_ENDPOINT) runs the traced bundle, and must
  // carry on the runs that started without it: the interceptors add no commands.
  it.each(files.filter((f) => parse(f)?.generation === Math.max(...files.map((g) => parse(g)?.generation ?? 0))))(
    'replays %s from the traced bundle too',
    async (file) => {
      const { history } = readHistory(file);
      await expect(
        Worker.runReplayHistory(
          // The worker's sink for workflow spans (replay exports none; the sink must exist).
          { workflowBundle: { codePath: traced }, sinks: { exporter: { export: { fn: () => undefined } } } },
          history,
          workflowIdOf(file),
        ),
      ).resolves.toBeUndefined();
    },
  );

  // Preloaded modules are evaluated once per worker and shared by all its workflows
  // (src/workers/workflow-code.ts): replay every history in one worker, one after the other.
  it('replays every history in one worker, whose workflows share the preloaded modules', async () => {
    const results = [];
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: { codePath: bundle } },
      files.map((file) => ({ history: readHistory(file).history, workflowId: workflowIdOf(file) })),
    ))
      results.push({ workflowId: result.workflowId, error: result.error?.message });
    expect(results).toHaveLength(files.length);
    expect(results.filter((r) => r.error !== undefined)).toEqual([]);
  }, 120_000);

  it('preloads only modules that reach none of Temporal’s per-workflow modules', () => {
    const code = readFileSync(bundle, 'utf8');
    expect(PRELOADED_MODULES.length).toBeGreaterThan(0);
    expect(preloadedModuleProblems(code, PRELOADED_MODULES)).toEqual([]);
    // The check can fail: the module that defines the workflows' messages imports @temporalio/workflow.
    expect(preloadedModuleProblems(code, [require.resolve('../src/domain/messages'), '/nowhere/x.ts'])).toEqual([
      expect.stringMatching(/domain\/messages\.ts reaches .*@temporalio\/workflow/),
      '/nowhere/x.ts is not in the bundle',
    ]);
  });

  it('fails replay when a workflow’s first command changes', async () => {
    const file = 'rollback-completed.v3.json';
    const { history } = readHistory(file);
    // The same history replays against the real code, so only the change can make it fail.
    await expect(
      Worker.runReplayHistory({ workflowBundle: { codePath: bundle } }, history, workflowIdOf(file)),
    ).resolves.toBeUndefined();

    const changed = await workflowBundleCode(require.resolve('./fixtures/nondeterministic/workflows'));
    const err: unknown = await Worker.runReplayHistory(
      { workflowBundle: { code: changed } },
      history,
      workflowIdOf(file),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DeterminismViolationError);
    expect((err as Error).name).toBe('DeterminismViolationError');
  }, 120_000);
});
