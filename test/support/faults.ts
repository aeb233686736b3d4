// Fault hooks for tests: REWIND_FAULTS makes an agent fail, pause or tamper at a named point,
// so tests can drive compensation, crashes and verification failures through the real code.
// This is a Temporal activity interceptor that only tests install: in-process agents through
// the harness, spawned agents through test/support/faults-preload.ts. The shipped agent never
// loads it, so REWIND_FAULTS means nothing to a production agent.
//
//   REWIND_FAULTS="after-restore:models=pause:30s;before-restore:config=fail"
import { appendFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ActivityInboundCallsInterceptor, ActivityInterceptorsFactory } from '@temporalio/worker';
import type { StepProgress } from '../../src/activities/progress';
import { listDirectory } from '../../src/components/files/listing';
import { parseDuration } from '../../src/manifest/duration';
import type { Manifest } from '../../src/manifest/schema';

// before/after-restore fire in a rollback's execute step; before/after-compensate in compensation.
export const FAULT_POINTS = [
  'before-snapshot',
  'before-restore',
  'after-restore',
  'before-compensate',
  'after-compensate',
] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

/** The failure type of an injected fault; non-retryable by itself, whatever the retry policy. */
export const INJECTED_FAULT = 'InjectedFault';
export const PAUSE_STAGE = 'paused by REWIND_FAULTS';

type FaultAction =
  { kind: 'fail' } | { kind: 'fail-attempts'; attempts: number } | { kind: 'pause'; ms: number } | { kind: 'tamper' };

export interface FaultRule {
  point: FaultPoint;
  component: string;
  action: FaultAction;
}

/** The rules in a REWIND_FAULTS text; none for an empty one. Throws on a rule it cannot read. */
export function parseFaults(text: string | undefined): FaultRule[] {
  if (!text?.trim()) return [];
  return text
    .split(';')
    .filter((s) => s.trim())
    .map(parseRule);
}

export function describeFaults(rules: readonly FaultRule[]): string {
  return rules.map((r) => `${r.point}:${r.component}=${r.action.kind}`).join('; ');
}

/** What the agent's activities receive as their first argument, as far as faults care. */
interface ComponentRequest {
  environment?: string;
  component?: string;
  purpose?: string;
}

/**
 * An activity interceptor factory that injects the faults of a REWIND_FAULTS text into an
 * agent's `snapshotComponent` and `restoreComponent`. The manifest tells `tamper` where a
 * files component lives.
 */
export function faultInterceptor(text: string | undefined, manifest: Manifest): ActivityInterceptorsFactory {
  const rules = parseFaults(text);

  const fire = async (point: FaultPoint, req: ComponentRequest): Promise<void> => {
    const component = req.component ?? '';
    for (const rule of rules) {
      if (rule.point !== point || (rule.component !== component && rule.component !== '*')) continue;
      const where = `${point} of ${component}`;
      const ctx = Context.current();
      switch (rule.action.kind) {
        case 'fail':
          throw ApplicationFailure.nonRetryable(`injected fault at ${where}`, INJECTED_FAULT);
        case 'fail-attempts': {
          const attempt = ctx.info.attempt;
          if (attempt <= rule.action.attempts) {
            throw ApplicationFailure.retryable(
              `injected fault at ${where} (attempt ${attempt})`,
              'InjectedRetryableFault',
            );
          }
          break;
        }
        case 'pause': {
          // Heartbeats keep flowing while paused, so a cancellation reaches the activity and
          // ends the pause (the sleep rejects with the abort).
          const progress: StepProgress = { component, stage: PAUSE_STAGE };
          const until = Date.now() + rule.action.ms;
          while (Date.now() < until) {
            ctx.heartbeat(progress);
            await sleep(Math.min(500, until - Date.now()), undefined, { signal: ctx.cancellationSignal });
          }
          break;
        }
        case 'tamper': {
          const dir = pathOf(manifest, req);
          if (!dir) break;
          const firstFile = (await listDirectory(dir)).find((e) => e.type === 'file');
          if (firstFile) await appendFile(`${dir}/${firstFile.path}`, 'tampered by REWIND_FAULTS\n');
          break;
        }
      }
    }
  };

  const inbound: ActivityInboundCallsInterceptor = {
    async execute(input, next) {
      const points = pointsOf(Context.current().info.activityType, input.args[0] as ComponentRequest | undefined);
      if (!points) return next(input);
      const req = input.args[0] as ComponentRequest;
      await fire(points.before, req);
      const result = await next(input);
      if (points.after && !(result as { alreadyAtTarget?: boolean } | undefined)?.alreadyAtTarget)
        await fire(points.after, req);
      return result;
    },
  };
  return () => ({ inbound });
}

function pointsOf(
  activityType: string,
  req: ComponentRequest | undefined,
): { before: FaultPoint; after?: FaultPoint } | undefined {
  if (activityType === 'snapshotComponent') return { before: 'before-snapshot' };
  if (activityType === 'restoreComponent') {
    if (req?.purpose === 'rollback') return { before: 'before-restore', after: 'after-restore' };
    if (req?.purpose === 'compensation') return { before: 'before-compensate', after: 'after-compensate' };
  }
  return undefined;
}

/** Where `tamper` writes: the directory of a files component. */
function pathOf(manifest: Manifest, req: ComponentRequest): string | undefined {
  const component = manifest.environments[req.environment ?? '']?.components[req.component ?? ''];
  return component?.kind === 'files' ? component.path : undefined;
}

function parseRule(text: string): FaultRule {
  const match = /^\s*([a-z-]+):([a-z0-9*-]+)=([a-z-]+)(?::(\S+))?\s*$/.exec(text);
  const point = match?.[1] as FaultPoint | undefined;
  if (!match || !point || !FAULT_POINTS.includes(point)) {
    throw new Error(
      `REWIND_FAULTS: cannot read "${text}" (expected point:component=action, points: ${FAULT_POINTS.join(', ')})`,
    );
  }
  const [, , component, kind, arg] = match;
  const action: FaultAction | undefined =
    kind === 'fail'
      ? { kind: 'fail' }
      : kind === 'fail-attempts'
        ? { kind: 'fail-attempts', attempts: Number(arg ?? 1) }
        : kind === 'pause'
          ? { kind: 'pause', ms: parseDuration(arg ?? '30s') }
          : kind === 'tamper'
            ? { kind: 'tamper' }
            : undefined;
  if (!action)
    throw new Error(`REWIND_FAULTS: unknown action "${kind}" (fail, fail-attempts:N, pause:DURATION, tamper)`);
  return { point, component: component!, action };
}
