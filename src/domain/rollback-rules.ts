// The rules a rollback request and each decision on it must meet, with their messages, in one
// place: the client's pre-checks, the control activity's decide phase and the workflow's
// Update validators and handlers all call these. Pure: no I/O, so workflow code imports it.
import { kindsWithStrategy, refusalOf, strategiesOf } from '../components/registry';
import type { Manifest } from '../manifest/schema';
import { splitHost } from './hosts';
import type { DecisionOutcome } from './messages';
import { drillEnvironment } from '../drills/section';
import type { AutoApproval, Decision, DecisionRecord, RollbackRequest, RollbackStatus } from './rollback';
import { describeTarget, FINAL_STATES, type RollbackTarget } from './rollback';

/** What is wrong with a request that names environments and components, or undefined. */
export function environmentProblem(
  manifest: Pick<Manifest, 'environments'>,
  environment: string,
  components?: readonly string[],
): string | undefined {
  const env = manifest.environments[environment];
  if (!env)
    return `unknown environment "${environment}" (the manifest declares: ${Object.keys(manifest.environments).join(', ')})`;
  const declared = Object.keys(env.components);
  const unknown = (components ?? []).filter((c) => !declared.some((d) => names(d, c)));
  if (unknown.length > 0) {
    return `environment "${environment}" has no component ${unknown.map((u) => `"${u}"`).join(', ')} (it has: ${declared.join(', ')})`;
  }
  return undefined;
}

/** The components a request covers, in manifest order (all when it names none). */
export function chosenComponents(
  manifest: Pick<Manifest, 'environments'>,
  environment: string,
  requested?: readonly string[],
): string[] {
  const declared = Object.keys(manifest.environments[environment]?.components ?? {});
  return requested ? declared.filter((c) => requested.some((r) => names(c, r))) : declared;
}

/** Does a requested name cover a declared component? `app` covers each `app@host`. */
function names(declared: string, requested: string): boolean {
  return (
    declared === requested || (splitHost(declared).host !== undefined && splitHost(declared).component === requested)
  );
}

/**
 * Everything that can be said about a rollback request from the manifest alone: the
 * environment, the components and the strategy. Undefined when it may start.
 */
export function rollbackRequestProblem(
  manifest: Pick<Manifest, 'environments'>,
  request: RollbackRequest,
): string | undefined {
  const problem = environmentProblem(manifest, request.environment, request.components);
  if (problem) return problem;
  const env = manifest.environments[request.environment]!;
  const names = chosenComponents(manifest, request.environment, request.components);
  const { strategy } = request;
  if (strategy === undefined) return undefined;
  const offering = names.filter((n) => strategiesOf(env.components[n]!).includes(strategy));
  if (offering.length === 0) {
    return `--strategy ${strategy} applies to ${kindsWithStrategy(strategy).join(' and ') || 'no'} components, and this rollback has none`;
  }
  for (const name of offering) {
    const refusal = refusalOf(env.components[name]!, { strategy });
    if (refusal) {
      return `--strategy ${strategy} cannot be used for ${request.environment}/${name} (environments.${request.environment}.components.${name}): ${refusal}`;
    }
  }
  return undefined;
}

/**
 * What the run's trigger rule allows (`triggers.rules[].autoApprove`), looked up again in the
 * manifest the workflow runs with: a request names its rule, the manifest decides what it may do.
 * Undefined when the run waits for humans; a string when the request names a rule it cannot.
 */
export function autoApprovalOf(
  manifest: Pick<Manifest, 'triggers'>,
  request: Pick<RollbackRequest, 'environment' | 'trigger' | 'triggerRule' | 'dryRun'>,
): AutoApproval | { problem: string } | undefined {
  if (request.triggerRule === undefined) return undefined;
  if (request.trigger !== 'alert')
    return {
      problem: `triggerRule names the rule of an alert-triggered run; this run's trigger is ${request.trigger}`,
    };
  const rule = manifest.triggers?.rules.find((r) => r.name === request.triggerRule);
  if (!rule)
    return {
      problem: `the manifest has no trigger rule "${request.triggerRule}" (triggers.rules: ${manifest.triggers?.rules.map((r) => r.name).join(', ') || 'none'})`,
    };
  if (rule.environment !== undefined && rule.environment !== request.environment)
    return { problem: `trigger rule "${rule.name}" rolls back ${rule.environment}, not ${request.environment}` };
  if (!rule.autoApprove || request.dryRun) return undefined;
  return { rule: rule.name, acceptDataLoss: rule.acceptDataLoss };
}

/**
 * A drill's rollbacks approve themselves (a drill runs unattended on its schedule), in the drill
 * environment only; plans that lose data too when the drills section accepts that.
 */
export function drillApprovalOf(
  manifest: Pick<Manifest, 'drills' | 'environments'>,
  request: Pick<RollbackRequest, 'environment' | 'trigger' | 'dryRun'>,
): AutoApproval | undefined {
  if (request.trigger !== 'drill' || request.dryRun) return undefined;
  if (drillEnvironment(manifest) !== request.environment) return undefined;
  return { rule: 'drills', acceptDataLoss: manifest.drills.acceptDataLoss };
}

/**
 * Why a keyed request cannot join the run its key already names: it asks for something else.
 * A retried request is the same request; a reused key for another one is a mistake to stop.
 */
export function requestKeyConflict(
  requestId: string,
  existing: Pick<RollbackStatus, 'workflowId' | 'environment' | 'target' | 'components' | 'dryRun' | 'strategy'>,
  request: RollbackRequest,
): string | undefined {
  // A run lists every component it covers once decided; compare what the request named, if anything.
  const sorted = (c: readonly string[] | undefined) => (c ? [...c].sort().join(', ') : undefined);
  const sameComponents =
    request.components === undefined ||
    existing.components === undefined ||
    sorted(request.components) === sorted(existing.components);
  const same =
    existing.environment === request.environment &&
    describeTarget(existing.target) === describeTarget(request.target) &&
    sameComponents &&
    existing.strategy === request.strategy &&
    existing.dryRun === request.dryRun;
  if (same) return undefined;
  const asked = (r: Pick<RollbackRequest, 'target' | 'components' | 'dryRun' | 'strategy'>) =>
    `${describeTarget(r.target)}${!sameComponents && r.components ? ` (${sorted(r.components)})` : ''}${r.strategy ? `, strategy ${r.strategy}` : ''}${r.dryRun ? ', dry run' : ''}`;
  return `request id ${requestId} already names ${existing.workflowId}, which rolls ${existing.environment} back to ${asked(existing)}; this request asks for ${asked(request)}. Use another request id`;
}

/** Why a request made with another manifest than the workers run is refused, or undefined. */
export function manifestMismatch(workers: string, request: string | undefined): string | undefined {
  if (request === undefined || request === workers) return undefined;
  return (
    `the manifest changed since the workers started (they run ${workers.slice(0, 12)}, this request was made with ` +
    `${request.slice(0, 12)}); restart the control worker and the agents (with \`npm start\`: Ctrl-C, then start it again) and retry`
  );
}

export function environmentBusyMessage(holder: string, environment: string): string {
  // A completed rollback's follow-up (rollback.ts startFollowUps) holds it for a few seconds.
  if (holder.includes('-later-'))
    return `${holder}, a completed rollback's follow-up, is acting on ${environment} right now; start again in a few seconds`;
  return `rollback ${holder} is already running on ${environment}; wait for it or cancel it first`;
}

export function targetNotFoundMessage(environment: string, target: RollbackTarget, hint: string): string {
  return `no cross-section of ${environment} matches ${describeTarget(target)}; ${hint}`;
}

// ---- decisions ----

export type DecisionAction = 'approve' | 'reject';

/** What a decision is judged against: the run's status and what decide learnt. */
export type DecisionContext = Pick<
  RollbackStatus,
  | 'environment'
  | 'requester'
  | 'phase'
  | 'state'
  | 'approvers'
  | 'requiredApprovals'
  | 'requesterMayApprove'
  | 'approvals'
  | 'plan'
  | 'acceptDataLoss'
  | 'rejection'
>;

/**
 * Why a decision cannot even be considered now (the run is past approval, or not yet there),
 * or undefined. Validators refuse these before anything is written to history.
 */
export function decisionTimingProblem(action: DecisionAction, run: DecisionContext): string | undefined {
  if (FINAL_STATES.includes(run.state) || !['decide', 'prepare', 'approval'].includes(run.phase)) {
    return `the rollback is past approval (phase ${run.phase}, state ${run.state})`;
  }
  if (run.approvers === undefined) return 'the rollback is still being decided; try again in a moment';
  if (action === 'approve' && run.state !== 'awaiting-approval') {
    return 'the plan is not ready yet; approve once the rollback awaits approval';
  }
  return undefined;
}

/** Why the policy refuses this decision by this user, or undefined when it counts. */
export function decisionPolicyProblem(
  action: DecisionAction,
  decision: Pick<Decision, 'user' | 'acceptDataLoss'>,
  run: DecisionContext,
): string | undefined {
  const approvers = run.approvers ?? [];
  const { user } = decision;
  if (action === 'reject') {
    if (!approvers.includes(user) && user !== run.requester) return `${user} is neither an approver nor the requester`;
    return undefined;
  }
  if (!approvers.includes(user)) return `${user} is not an approver (approvers: ${approvers.join(', ')})`;
  if (run.requesterMayApprove === false && user === run.requester) {
    return `${user} requested this rollback and cannot approve it in ${run.environment}`;
  }
  if (run.approvals.some((a) => a.user === user)) return `${user} has already approved`;
  if (run.plan?.destructive && !run.acceptDataLoss && !decision.acceptDataLoss) {
    // Every loss, so that whoever accepts knows all of it.
    const losses = run.plan.components.flatMap(
      (c) => c.impact?.find((i) => i.strategy === c.strategy)?.losses.map((l) => `${c.component}: ${l}`) ?? [],
    );
    return `this plan loses data (${losses.join('; ') || 'see the plan'}); approve with --accept-data-loss to accept that`;
  }
  return undefined;
}

/** Why a run cannot be cancelled now, or undefined. */
export function cancelProblem(run: Pick<RollbackStatus, 'state' | 'phase'>): string | undefined {
  if (FINAL_STATES.includes(run.state) || run.phase === 'complete') {
    return `the rollback already ended (${run.state}); there is nothing to cancel`;
  }
  if (run.phase === 'compensate') {
    return 'compensation is putting back what the rollback changed and cannot be cancelled; wait for it to end';
  }
  return undefined;
}

/** Where a run is, as a decision's answer tells it. */
export function whereTheRunIs(
  run: Pick<RollbackStatus, 'state' | 'phase' | 'approvals' | 'requiredApprovals'>,
): Omit<DecisionOutcome, 'accepted' | 'reason'> {
  return {
    state: run.state,
    phase: run.phase,
    approvals: run.approvals.length,
    requiredApprovals: run.requiredApprovals ?? 1,
  };
}

/**
 * Judges a decision that arrived in time and records it: counted (an approval, or the
 * rejection), or refused with the reason (recordRefusal).
 */
export function applyDecision(run: RollbackStatus, action: DecisionAction, decision: Decision): DecisionOutcome {
  const reason = decisionPolicyProblem(action, decision, run);
  if (reason) {
    recordRefusal(run, { ...decision, action, reason });
    return { accepted: false, reason, ...whereTheRunIs(run) };
  }
  if (action === 'reject') run.rejection = decision;
  else run.approvals.push(decision);
  return { accepted: true, ...whereTheRunIs(run) };
}

/** The approval phase is over: rejected, or enough distinct approvers. */
export function approvalSettled(run: Pick<RollbackStatus, 'rejection' | 'approvals' | 'requiredApprovals'>): boolean {
  return run.rejection !== undefined || run.approvals.length >= (run.requiredApprovals ?? 1);
}

/** Distinct refusal records kept; beyond them only a count grows, so status stays small. */
export const MAX_REFUSAL_RECORDS = 50;

/**
 * Identical refusals (same user, action and reason) recorded on one record. Beyond that, and
 * once the list is full, the validator refuses without recording: every recorded refusal is an
 * accepted Update, and the server admits a bounded number per run (2,000 by default), so a
 * flood must not use them up and lock the approvers out.
 */
export const MAX_RECORDED_REPEATS = 10;

/** How a refusal record's count reads: "3 times", or "10 or more times" once it stopped counting. */
export function refusalTimes(count: number | undefined): string | undefined {
  if (!count || count < 2) return undefined;
  return count >= MAX_RECORDED_REPEATS ? `${MAX_RECORDED_REPEATS} or more times` : `${count} times`;
}

/** A policy refusal the record already holds often enough: refused unrecorded, by the validator. */
export function unrecordedRefusal(
  action: DecisionAction,
  decision: Pick<Decision, 'user' | 'acceptDataLoss'>,
  run: DecisionContext & Pick<RollbackStatus, 'refusals'>,
): string | undefined {
  const reason = decisionPolicyProblem(action, decision, run);
  if (!reason) return undefined;
  const record = run.refusals.find((r) => r.user === decision.user && r.action === action && r.reason === reason);
  const full = record ? (record.count ?? 1) >= MAX_RECORDED_REPEATS : run.refusals.length >= MAX_REFUSAL_RECORDS;
  return full ? `${reason} (refused before; not recorded again)` : undefined;
}

/**
 * Records a refused decision: a repeat of the same refusal (same user, action and reason) is
 * counted on its record, not appended.
 */
export function recordRefusal(
  run: Pick<RollbackStatus, 'refusals' | 'refusalsOmitted'>,
  refusal: DecisionRecord,
): void {
  const same = run.refusals.find(
    (r) => r.user === refusal.user && r.action === refusal.action && r.reason === refusal.reason,
  );
  if (same) {
    same.count = (same.count ?? 1) + 1;
    same.lastAt = refusal.at;
    return;
  }
  if (run.refusals.length >= MAX_REFUSAL_RECORDS) {
    run.refusalsOmitted = (run.refusalsOmitted ?? 0) + 1;
    return;
  }
  run.refusals.push(refusal);
}

/**
 * Why an `accept` or `compensate` after a failed verification is refused: the run must be
 * waiting for one, and the user must be an approver (the requester only where they may approve).
 */
export function verificationDecisionProblem(
  run: Pick<
    RollbackStatus,
    'verification' | 'approvers' | 'requester' | 'requesterMayApprove' | 'environment' | 'state' | 'phase'
  >,
  decision: { user: string; decision: string },
): string | undefined {
  if (!run.verification?.awaiting)
    return `the rollback is not waiting for a verification decision (phase ${run.phase}, state ${run.state})`;
  if (run.verification.decision)
    return `${run.verification.decision.user} already chose ${run.verification.decision.decision}`;
  const approvers = run.approvers ?? [];
  if (!approvers.includes(decision.user))
    return `${decision.user} is not an approver (approvers: ${approvers.join(', ')})`;
  if (run.requesterMayApprove === false && decision.user === run.requester)
    return `${decision.user} requested this rollback and cannot decide on its verification in ${run.environment}`;
  return undefined;
}
