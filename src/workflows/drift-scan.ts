// driftScanWorkflow: compares two environments component by component. For each component the
// kind asks both agents the same question, the control worker compares their answers, stores
// the findings and returns the next questions, until none are left. Findings live in the project
// store; the workflow keeps only counts, so its history stays small whatever the scan finds.
import {
  continueAsNew,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { AgentActivities } from '../activities/agent';
import type { DriftActivities } from '../activities/drift';
import { answerStats, type DriftQuestion } from '../components/drift';
import { describeFailure } from '../domain/errors';
import { driftScanStatusQuery } from '../domain/messages';
import {
  APP_VERSION_COMPONENT,
  type DriftComponentPair,
  type DriftScanContinuation,
  type DriftScanPlan,
  type DriftScanRequest,
  type DriftScanStatus,
  type DriftScanSummary,
  scanIdFor,
} from '../domain/drift-scan';
import { quick, transfer } from './activity-options';

const control = proxyActivities<DriftActivities>(quick);
/**
 * Beginning a scan, comparing answers and finishing are short steps on the control worker, which
 * runs this workflow too: as local activities they cost no round trip through the server, and
 * the answers they compare are not written to the history a second time (only their results are).
 * A local activity runs at least once (again when its workflow task is retried), so each is
 * idempotent: the scan and its findings are keyed, and a finished scan's alert is recorded with it.
 */
const controlHere = proxyLocalActivities<DriftActivities>({
  startToCloseTimeout: quick.startToCloseTimeout!,
  ...(quick.retry ? { retry: quick.retry } : {}),
});

/** Questions asked at once per component; both agents answer each. */
const PARALLEL_QUESTIONS = 8;
/** Rounds per component at most: a tree that differs everywhere is reported in part, not forever. */
const MAX_QUESTIONS = 2000;

/**
 * A scan's history holds every answer twice (the agent's result, the comparison's input), so a
 * large one would outgrow what Temporal keeps: past the manifest's drift.historyBytes the scan
 * continues as a new run of the same workflow id, with the questions it has not asked yet.
 */
export async function driftScanWorkflow(
  request: DriftScanRequest,
  continued?: DriftScanContinuation,
): Promise<DriftScanSummary> {
  const info = workflowInfo();
  const scanId = continued?.plan.scanId ?? request.scanId ?? scanIdFor(info.startTime, info.runId);
  const status: DriftScanStatus = continued?.status ?? {
    scanId,
    from: request.from ?? '',
    to: request.to ?? '',
    state: 'starting',
    components: {},
  };
  status.runs = continued?.runs ?? 1;
  setHandler(driftScanStatusQuery, () => status);
  // Histories recorded before the local activities used regular ones; they replay as they ran.
  const steps = patched('drift-local-activities') ? controlHere : control;

  let plan: DriftScanPlan;
  if (continued) plan = continued.plan;
  else {
    try {
      plan = await steps.beginDriftScan({ scanId, workflowId: info.workflowId, request });
    } catch (err) {
      status.state = 'failed';
      throw err;
    }
  }
  status.from = plan.from;
  status.to = plan.to;
  status.state = 'comparing';
  showDetails(status);

  const failures = [...(continued?.failures ?? [])];
  const unreadable = [...(continued?.unreadable ?? [])];
  const pending: DriftScanContinuation['pending'] = {};
  let stopping = false;
  const timeToContinue = () => {
    const { historySize, continueAsNewSuggested } = workflowInfo();
    stopping ||= continueAsNewSuggested || historySize > plan.historyBytes;
    return stopping;
  };
  const pairs = continued ? plan.pairs.filter((p) => continued.pending[p.component]) : plan.pairs;
  await Promise.all([
    ...pairs.map(async (pair) => {
      try {
        const left = await comparePair(plan, pair, status, steps, continued?.pending[pair.component], timeToContinue);
        if (left) pending[pair.component] = left;
      } catch (err) {
        status.components[pair.component]!.state = 'failed';
        unreadable.push({ component: pair.component, error: describeFailure(err) });
      }
    }),
    // The first run reads the application versions; a continued run has them already.
    ...(plan.appVersion && !continued
      ? [
          compareAppVersions(plan).catch(
            (err: unknown) => void failures.push(`${APP_VERSION_COMPONENT}: ${describeFailure(err)}`),
          ),
        ]
      : []),
  ]);
  if (Object.keys(pending).length > 0) {
    log.info('drift scan continues as a new run', { scanId, historySize: workflowInfo().historySize });
    return continueAsNew<typeof driftScanWorkflow>(request, {
      plan,
      status,
      pending,
      failures,
      unreadable,
      runs: status.runs + 1,
    });
  }
  // A component that could not be compared is a finding, and the others' findings stand (one
  // regression database down must not blind the scan to the rest); a scan that could compare
  // none of its components has nothing to report, and fails. A scan that fails for another
  // reason names the components it could not read too.
  const readNone = unreadable.length > 0 && unreadable.length >= plan.pairs.length;
  const fails = readNone || failures.length > 0;
  const errors = [...(fails ? unreadable.map((u) => `${u.component}: ${u.error}`) : []), ...failures];
  const summary = await steps.finishDriftScan({
    scanId,
    ...(errors.length ? { error: errors.join('; ') } : {}),
    ...(!fails && unreadable.length ? { unreadable } : {}),
  });
  if (status.runs > 1) summary.runs = status.runs;
  status.summary = summary;
  status.state = summary.status;
  showDetails(status);
  return summary;
}

/** Asks and compares until no question is left, or returns what is left when the run should end. */
async function comparePair(
  plan: DriftScanPlan,
  pair: DriftComponentPair,
  status: DriftScanStatus,
  steps: typeof control,
  resume: DriftScanContinuation['pending'][string] | undefined,
  timeToContinue: () => boolean,
): Promise<DriftScanContinuation['pending'][string] | undefined> {
  const progress: DriftScanStatus['components'][string] = status.components[pair.component] ?? {
    state: 'comparing',
    rounds: 0,
    differences: 0,
  };
  status.components[pair.component] = progress;
  const fromAgent = proxyActivities<AgentActivities>(transfer(pair.fromQueue, plan.heartbeatTimeoutMs));
  const toAgent = proxyActivities<AgentActivities>(transfer(pair.toQueue, plan.heartbeatTimeoutMs));
  const queue: DriftQuestion[] = resume ? [...resume.queue] : [pair.question];
  let asked = resume?.asked ?? 0;

  const ask = async (question: DriftQuestion) => {
    const describe = { component: pair.component, scanId: plan.scanId, question };
    const [fromAnswer, toAnswer] = await Promise.all([
      fromAgent.describeComponent({ environment: plan.from, ...describe }),
      toAgent.describeComponent({ environment: plan.to, ...describe }),
    ]);
    const fromStats = answerStats(fromAnswer);
    const toStats = answerStats(toAnswer);
    if (fromStats && toStats) progress.index = { from: fromStats, to: toStats };
    const result = await steps.compareDrift({
      scanId: plan.scanId,
      from: plan.from,
      to: plan.to,
      component: pair.component,
      question,
      fromAnswer,
      toAnswer,
    });
    progress.rounds++;
    progress.differences += result.differences;
    queue.push(...result.next);
  };

  const tooMany = () => {
    log.warn('drift scan stopped asking', { component: pair.component, left: queue.length });
    return new Error(
      `stopped after ${MAX_QUESTIONS} rounds with ${queue.length} questions left; findings so far are stored`,
    );
  };

  if (!patched('drift-pipelined-questions')) {
    // Histories recorded before: rounds of up to PARALLEL_QUESTIONS, each waiting for its slowest.
    while (queue.length > 0) {
      if (timeToContinue()) return { queue, asked };
      if (asked >= MAX_QUESTIONS) throw tooMany();
      const batch = queue.splice(0, Math.min(PARALLEL_QUESTIONS, MAX_QUESTIONS - asked));
      asked += batch.length;
      await Promise.all(batch.map(ask));
    }
    progress.state = 'done';
    return undefined;
  }

  // Up to PARALLEL_QUESTIONS in flight; the questions an answer leads to are asked as soon as it
  // is compared, not once the slowest of its round is.
  const inFlight = new Set<Promise<void>>();
  let failure: Error | undefined;
  let stopping = false;
  while (queue.length > 0 || inFlight.size > 0) {
    stopping ||= failure !== undefined || timeToContinue();
    while (!stopping && queue.length > 0 && inFlight.size < PARALLEL_QUESTIONS) {
      if (asked >= MAX_QUESTIONS) {
        failure ??= tooMany();
        stopping = true;
        break;
      }
      asked++;
      const question = queue.shift()!;
      const asking: Promise<void> = ask(question).then(
        () => void inFlight.delete(asking),
        (err: unknown) => {
          inFlight.delete(asking);
          failure ??= err instanceof Error ? err : new Error(String(err));
        },
      );
      inFlight.add(asking);
    }
    if (inFlight.size === 0) break;
    await Promise.race(inFlight);
  }
  if (failure !== undefined) throw failure;
  if (queue.length > 0) return { queue, asked };
  progress.state = 'done';
  return undefined;
}

async function compareAppVersions(plan: DriftScanPlan): Promise<void> {
  const read = (queue: string, environment: string) =>
    proxyActivities<AgentActivities>(transfer(queue, plan.heartbeatTimeoutMs)).describeAppVersion({ environment });
  const [fromVersion, toVersion] = await Promise.all([
    read(envQueue(plan, 'from'), plan.from),
    read(envQueue(plan, 'to'), plan.to),
  ]);
  await control.compareAppVersions({ scanId: plan.scanId, from: plan.from, to: plan.to, fromVersion, toVersion });
}

function envQueue(plan: DriftScanPlan, side: 'from' | 'to'): string {
  return side === 'from' ? plan.fromQueue : plan.toQueue;
}

function showDetails(status: DriftScanStatus): void {
  const runs = (status.runs ?? 1) > 1 ? ` (run ${status.runs})` : '';
  const lines = [`**drift scan ${status.scanId}**: ${status.from} → ${status.to}, ${status.state}${runs}`];
  for (const [name, c] of Object.entries(status.components)) {
    lines.push(`- ${name}: ${c.state}, ${c.rounds} rounds, ${c.differences} differences`);
  }
  if (status.summary) {
    const { counts, allowed } = status.summary;
    lines.push(`critical ${counts.critical}, warning ${counts.warning}, info ${counts.info}, allowed ${allowed}`);
  }
  setCurrentDetails(lines.join('\n'));
}
