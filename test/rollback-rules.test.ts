// The request and decision rules, on their own: no server, no workflow. The client, the
// control activity and the workflow's Update handlers all call these.
import type { ComponentPlan } from '../src/components/core';
import type { RollbackRequest, RollbackStatus } from '../src/domain/rollback';
import {
  approvalSettled,
  cancelProblem,
  decisionPolicyProblem,
  decisionTimingProblem,
  MAX_RECORDED_REPEATS,
  MAX_REFUSAL_RECORDS,
  recordRefusal,
  unrecordedRefusal,
  requestKeyConflict,
  rollbackRequestProblem,
  type DecisionContext,
} from '../src/domain/rollback-rules';
import type { Manifest } from '../src/manifest/schema';

const environments: Pick<Manifest, 'environments'> = {
  environments: {
    production: {
      components: {
        config: { kind: 'files', path: '/srv/config', format: 'config', dependsOn: [] },
        db: {
          kind: 'postgres',
          url: 'postgres://app@db/app',
          schema: 'public',
          historyTable: 'flyway_schema_history',
          strategy: 'restore',
          dependsOn: [],
        },
      },
    },
    regression: { components: { config: { kind: 'files', path: '/srv/reg', format: 'config', dependsOn: [] } } },
  },
};

const request = (over: Partial<RollbackRequest> = {}): RollbackRequest => ({
  environment: 'production',
  target: { kind: 'version', version: 'v1' },
  requester: 'alice',
  trigger: 'manual',
  dryRun: false,
  acceptDataLoss: false,
  ...over,
});

describe('rollback request rules', () => {
  it('accepts a request the manifest can serve', () => {
    expect(rollbackRequestProblem(environments, request())).toBeUndefined();
    expect(rollbackRequestProblem(environments, request({ components: ['db'], strategy: 'undo' }))).toBeUndefined();
  });

  it.each<[string, Partial<RollbackRequest>, string]>([
    [
      'an unknown environment',
      { environment: 'staging' },
      'unknown environment "staging" (the manifest declares: production, regression)',
    ],
    [
      'unknown components',
      { components: ['config', 'cache', 'queue'] },
      'environment "production" has no component "cache", "queue" (it has: config, db)',
    ],
    [
      'a strategy no chosen component offers',
      { components: ['config'], strategy: 'undo' },
      '--strategy undo applies to postgres components, and this rollback has none',
    ],
    [
      'point-in-time recovery for a database without a pitr section',
      { strategy: 'pitr' },
      '--strategy pitr cannot be used for production/db (environments.production.components.db): it has no pitr section, so point-in-time recovery is not set up',
    ],
  ])('refuses %s, saying what and where', (_what, over, message) => {
    expect(rollbackRequestProblem(environments, request(over))).toBe(message);
  });
});

const plan = (destructive: boolean): RollbackStatus['plan'] => ({
  safetyCrossSectionId: 'xs-20261129-100000-abcd',
  order: [['db']],
  totals: { added: 0, changed: 1, removed: 0, bytesToWrite: 0 },
  destructive,
  components: [
    {
      component: 'db',
      kind: 'postgres',
      strategy: 'undo',
      destructive,
      impact: [{ strategy: 'undo', available: true, destructive, losses: ['column public.orders.total (3 rows)'] }],
    } as ComponentPlan,
  ],
});

const awaiting = (over: Partial<DecisionContext> = {}): DecisionContext => ({
  environment: 'production',
  requester: 'alice',
  phase: 'approval',
  state: 'awaiting-approval',
  approvers: ['alice', 'bob', 'carol'],
  requiredApprovals: 2,
  requesterMayApprove: false,
  approvals: [],
  plan: plan(false),
  ...over,
});

describe('decision rules', () => {
  it('counts an approver who is not the requester', () => {
    expect(decisionPolicyProblem('approve', { user: 'bob' }, awaiting())).toBeUndefined();
  });

  it.each<[string, Parameters<typeof decisionPolicyProblem>, string]>([
    [
      'a non-approver',
      ['approve', { user: 'mallory' }, awaiting()],
      'mallory is not an approver (approvers: alice, bob, carol)',
    ],
    [
      'the requester in production',
      ['approve', { user: 'alice' }, awaiting()],
      'alice requested this rollback and cannot approve it in production',
    ],
    [
      'a second approval by the same approver',
      [
        'approve',
        { user: 'bob' },
        awaiting({ approvals: [{ user: 'bob', requestId: 'r1', at: '2026-11-29T10:00:00Z' }] }),
      ],
      'bob has already approved',
    ],
    [
      'a destructive plan without acceptance',
      ['approve', { user: 'bob' }, awaiting({ plan: plan(true) })],
      'this plan loses data (db: column public.orders.total (3 rows)); approve with --accept-data-loss to accept that',
    ],
    [
      'a rejection by a stranger',
      ['reject', { user: 'mallory' }, awaiting()],
      'mallory is neither an approver nor the requester',
    ],
  ])('refuses %s with the reason', (_what, args, reason) => {
    expect(decisionPolicyProblem(...args)).toBe(reason);
  });

  it('names every loss of a destructive plan when it refuses an approval without acceptance', () => {
    const twoLosses = plan(true)!;
    twoLosses.components[0]!.impact![0]!.losses.push('table public.audit (12 rows)');
    expect(decisionPolicyProblem('approve', { user: 'bob' }, awaiting({ plan: twoLosses }))).toBe(
      'this plan loses data (db: column public.orders.total (3 rows); db: table public.audit (12 rows)); approve with --accept-data-loss to accept that',
    );
  });

  it('lets the requester approve where the environment allows it, and anyone involved reject', () => {
    expect(
      decisionPolicyProblem('approve', { user: 'alice' }, awaiting({ requesterMayApprove: true })),
    ).toBeUndefined();
    expect(
      decisionPolicyProblem('approve', { user: 'bob', acceptDataLoss: true }, awaiting({ plan: plan(true) })),
    ).toBeUndefined();
    expect(
      decisionPolicyProblem('approve', { user: 'bob' }, awaiting({ plan: plan(true), acceptDataLoss: true })),
    ).toBeUndefined();
    expect(decisionPolicyProblem('reject', { user: 'alice' }, awaiting())).toBeUndefined();
  });

  it('refuses decisions that come too early or too late, before they are considered', () => {
    expect(
      decisionTimingProblem('approve', awaiting({ phase: 'decide', state: 'running', approvers: undefined })),
    ).toBe('the rollback is still being decided; try again in a moment');
    expect(decisionTimingProblem('approve', awaiting({ phase: 'prepare', state: 'running' }))).toBe(
      'the plan is not ready yet; approve once the rollback awaits approval',
    );
    // A rejection may come early: it ends the run as soon as approval begins.
    expect(decisionTimingProblem('reject', awaiting({ phase: 'prepare', state: 'running' }))).toBeUndefined();
    expect(decisionTimingProblem('approve', awaiting({ phase: 'execute', state: 'running' }))).toBe(
      'the rollback is past approval (phase execute, state running)',
    );
    expect(decisionTimingProblem('reject', awaiting({ phase: 'complete', state: 'completed' }))).toBe(
      'the rollback is past approval (phase complete, state completed)',
    );
  });

  it('cancels a run until it ends, but never its compensation', () => {
    expect(cancelProblem({ phase: 'execute', state: 'running' })).toBeUndefined();
    expect(cancelProblem({ phase: 'compensate', state: 'running' })).toBe(
      'compensation is putting back what the rollback changed and cannot be cancelled; wait for it to end',
    );
    expect(cancelProblem({ phase: 'complete', state: 'completed' })).toBe(
      'the rollback already ended (completed); there is nothing to cancel',
    );
  });

  it('settles approval on a rejection or on enough distinct approvals', () => {
    const approval = { user: 'bob', requestId: 'r1', at: '2026-11-29T10:00:00Z' };
    expect(approvalSettled({ approvals: [approval], requiredApprovals: 2 })).toBe(false);
    expect(approvalSettled({ approvals: [approval, { ...approval, user: 'carol' }], requiredApprovals: 2 })).toBe(true);
    expect(approvalSettled({ approvals: [], requiredApprovals: 2, rejection: approval })).toBe(true);
  });
});

describe('a request id used again', () => {
  const existing = {
    workflowId: 'rollback-production-req-inc-7',
    environment: 'production',
    target: { kind: 'version' as const, version: 'v1' },
    dryRun: false,
  };

  it('joins the run when the request is the same', () => {
    expect(requestKeyConflict('inc-7', existing, request())).toBeUndefined();
    expect(
      requestKeyConflict(
        'inc-7',
        { ...existing, components: ['db', 'config'] },
        request({ components: ['config', 'db'] }),
      ),
    ).toBeUndefined();
  });

  it('is refused when it asks for something else, naming both', () => {
    expect(requestKeyConflict('inc-7', existing, request({ target: { kind: 'version', version: 'v2' } }))).toBe(
      'request id inc-7 already names rollback-production-req-inc-7, which rolls production back to version v1; this request asks for version v2. Use another request id',
    );
    expect(requestKeyConflict('inc-7', existing, request({ dryRun: true }))).toMatch(/asks for version v1, dry run/);
  });
});

describe('the record of refusals', () => {
  it("stops recording a refusal repeated often enough, so a flood cannot use up the run's updates", () => {
    const run = { ...awaiting(), refusals: [] as RollbackStatus['refusals'] };
    for (let i = 0; i < MAX_RECORDED_REPEATS; i++) {
      expect(unrecordedRefusal('approve', { user: 'mallory' }, run)).toBeUndefined();
      recordRefusal(run, {
        action: 'approve',
        user: 'mallory',
        requestId: `r${i}`,
        at: 't',
        reason: 'mallory is not an approver (approvers: alice, bob, carol)',
      });
    }
    expect(unrecordedRefusal('approve', { user: 'mallory' }, run)).toBe(
      'mallory is not an approver (approvers: alice, bob, carol) (refused before; not recorded again)',
    );
    // An approver is still heard.
    expect(unrecordedRefusal('approve', { user: 'bob' }, run)).toBeUndefined();
  });

  it('counts repeats of the same refusal instead of appending them', () => {
    const run: Pick<RollbackStatus, 'refusals' | 'refusalsOmitted'> = { refusals: [] };
    for (let i = 0; i < 2_000; i++) {
      recordRefusal(run, {
        action: 'approve',
        user: 'mallory',
        requestId: `r${i}`,
        at: `t${i}`,
        reason: 'mallory is not an approver',
      });
    }
    expect(run.refusals).toHaveLength(1);
    expect(run.refusals[0]).toMatchObject({ user: 'mallory', count: 2_000, at: 't0', lastAt: 't1999' });
  });

  it('keeps at most a bounded number of distinct refusals and counts the rest', () => {
    const run: Pick<RollbackStatus, 'refusals' | 'refusalsOmitted'> = { refusals: [] };
    for (let i = 0; i < MAX_REFUSAL_RECORDS + 25; i++) {
      recordRefusal(run, {
        action: 'approve',
        user: `user${i}`,
        requestId: `r${i}`,
        at: 't',
        reason: 'not an approver',
      });
    }
    expect(run.refusals).toHaveLength(MAX_REFUSAL_RECORDS);
    expect(run.refusalsOmitted).toBe(25);
  });
});
