// driftScanWorkflow: compares two environments component by component. For each component the
// kind asks both agents the same question, the control worker compares their answers, stores
// the findings and returns the next questions, until none are left. Findings live in the project
// store; the workflow keeps only counts, so its history stays small whatever the scan finds.
import { log, proxyActivities, setCurrentDetails, setHandler, workflowInfo } from '@temporalio/workflow';
import type { AgentActivities } from '../activities/agent';
import type { DriftActivities } from '../activities/drift';
import type { DriftQuestion } from '../components/drift';
import { describeFailure } from '../domain/errors';
import { driftScanStatusQuery } from '../domain/messages';
import {
  APP_VERSION_COMPONENT,
  type DriftComponentPair,
  type DriftScanPlan,
  type DriftScanRequest,
  type DriftScanStatus,
  type DriftScanSummary,
} from '../domain/drift-scan';
import { quick, transfer } from './activity-options';

const control = proxyActivities<DriftActivities>(quick);

/** Questions asked at once per component; both agents answer each. */
const PARALLEL_QUESTIONS = 8;
/** Rounds per component at most: a tree that differs everywhere is reported in part, not forever. */
const MAX_QUESTIONS = 2000;

export async function driftScanWorkflow(request: DriftScanRequest): Promise<DriftScanSummary> {
  const info = workflowInfo();
  const scanId = scanIdFor(info.startTime, info.runId);
  const status: DriftScanStatus = {
    scanId,
    from: request.from ?? '',
    to: request.to ?? '',
    state: 'starting',
    components: {},
  };
  setHandler(driftScanStatusQuery, () => status);

  let plan: DriftScanPlan;
  try {
    plan = await control.beginDriftScan({ scanId, workflowId: info.workflowId, request });
  } catch (err) {
    status.state = 'failed';
    throw err;
  }
  status.from = plan.from;
  status.to = plan.to;
  status.state = 'comparing';
  showDetails(status);

  const failures: string[] = [];
  await Promise.all([
    ...plan.pairs.map(async (pair) => {
      try {
        await comparePair(plan, pair, status);
      } catch (err) {
        status.components[pair.component]!.state = 'failed';
        failures.push(`${pair.component}: ${describeFailure(err)}`);
      }
    }),
    ...(plan.appVersion
      ? [
          compareAppVersions(plan).catch(
            (err: unknown) => void failures.push(`${APP_VERSION_COMPONENT}: ${describeFailure(err)}`),
          ),
        ]
      : []),
  ]);
  const summary = await control.finishDriftScan({
    scanId,
    ...(failures.length ? { error: failures.join('; ') } : {}),
  });
  status.summary = summary;
  status.state = summary.status;
  showDetails(status);
  return summary;
}

async function comparePair(plan: DriftScanPlan, pair: DriftComponentPair, status: DriftScanStatus): Promise<void> {
  const progress: DriftScanStatus['components'][string] = { state: 'comparing', rounds: 0, differences: 0 };
  status.components[pair.component] = progress;
  const fromAgent = proxyActivities<AgentActivities>(transfer(pair.fromQueue, plan.heartbeatTimeoutMs));
  const toAgent = proxyActivities<AgentActivities>(transfer(pair.toQueue, plan.heartbeatTimeoutMs));
  const queue: DriftQuestion[] = [pair.question];
  let asked = 0;

  const ask = async (question: DriftQuestion) => {
    const describe = { component: pair.component, scanId: plan.scanId, question };
    const [fromAnswer, toAnswer] = await Promise.all([
      fromAgent.describeComponent({ environment: plan.from, ...describe }),
      toAgent.describeComponent({ environment: plan.to, ...describe }),
    ]);
    const refresh = (a: unknown) =>
      (a as { root?: { refresh?: { files: number; hashed: number; ms: number } } }).root?.refresh;
    const fromRefresh = refresh(fromAnswer);
    const toRefresh = refresh(toAnswer);
    if (fromRefresh && toRefresh) {
      progress.index = {
        from: { files: fromRefresh.files, hashed: fromRefresh.hashed, ms: fromRefresh.ms },
        to: { files: toRefresh.files, hashed: toRefresh.hashed, ms: toRefresh.ms },
      };
    }
    const result = await control.compareDrift({
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

  while (queue.length > 0) {
    if (asked >= MAX_QUESTIONS) {
      log.warn('drift scan stopped asking', { component: pair.component, left: queue.length });
      throw new Error(
        `stopped after ${MAX_QUESTIONS} rounds with ${queue.length} questions left; findings so far are stored`,
      );
    }
    const batch = queue.splice(0, Math.min(PARALLEL_QUESTIONS, MAX_QUESTIONS - asked));
    asked += batch.length;
    await Promise.all(batch.map(ask));
  }
  progress.state = 'done';
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

/**
 * `20261129-154301-3fa2c9`: sortable, and unique per run. The suffix is the run id's random end:
 * run ids begin with their time, so two scans started in the same second share their start.
 */
function scanIdFor(start: Date, runId: string): string {
  const iso = start.toISOString();
  return `${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}-${runId.replace(/-/g, '').slice(-6)}`;
}

function showDetails(status: DriftScanStatus): void {
  const lines = [`**drift scan ${status.scanId}**: ${status.from} → ${status.to}, ${status.state}`];
  for (const [name, c] of Object.entries(status.components)) {
    lines.push(`- ${name}: ${c.state}, ${c.rounds} rounds, ${c.differences} differences`);
  }
  if (status.summary) {
    const { counts, allowed } = status.summary;
    lines.push(`critical ${counts.critical}, warning ${counts.warning}, info ${counts.info}, allowed ${allowed}`);
  }
  setCurrentDetails(lines.join('\n'));
}
