// Fault hooks for tests: REWIND_FAULTS makes an agent fail, pause or tamper at a named point,
// so tests can drive compensation, crashes and verification failures through the real code.
// Unset in production; an agent that has it set says so loudly when it starts.
//
//   REWIND_FAULTS="after-restore:models=pause:30s;before-restore:config=fail"
import { appendFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import { parseDuration } from '../manifest/duration';
import { ErrorType } from '../domain/errors';
import { listDirectory } from '../components/files/listing';

// before/after-restore fire in a rollback's execute step; before/after-compensate in compensation.
export const FAULT_POINTS = ['before-snapshot', 'before-restore', 'after-restore', 'before-compensate', 'after-compensate'] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

type FaultAction =
  | { kind: 'fail' }
  | { kind: 'fail-attempts'; attempts: number }
  | { kind: 'pause'; ms: number }
  | { kind: 'tamper' };

interface FaultRule {
  point: FaultPoint;
  component: string;
  action: FaultAction;
}

export interface FaultContext {
  attempt: number;
  path: string;
  signal?: AbortSignal;
  onPause?: () => void;
}

export class Faults {
  private constructor(private readonly rules: FaultRule[]) {}

  static none(): Faults {
    return new Faults([]);
  }

  static parse(text: string | undefined): Faults {
    if (!text?.trim()) return Faults.none();
    return new Faults(text.split(';').filter((s) => s.trim()).map(parseRule));
  }

  get enabled(): boolean {
    return this.rules.length > 0;
  }

  describe(): string {
    return this.rules.map((r) => `${r.point}:${r.component}=${r.action.kind}`).join('; ');
  }

  async fire(point: FaultPoint, component: string, ctx: FaultContext): Promise<void> {
    for (const rule of this.rules) {
      if (rule.point !== point || (rule.component !== component && rule.component !== '*')) continue;
      const where = `${point} of ${component}`;
      switch (rule.action.kind) {
        case 'fail':
          throw ApplicationFailure.nonRetryable(`injected fault at ${where}`, ErrorType.InjectedFault);
        case 'fail-attempts':
          if (ctx.attempt <= rule.action.attempts) {
            throw ApplicationFailure.retryable(`injected fault at ${where} (attempt ${ctx.attempt})`, 'InjectedRetryableFault');
          }
          break;
        case 'pause': {
          const until = Date.now() + rule.action.ms;
          while (Date.now() < until) {
            ctx.onPause?.();
            await sleep(Math.min(500, until - Date.now()), undefined, ctx.signal ? { signal: ctx.signal } : {});
          }
          break;
        }
        case 'tamper': {
          const firstFile = (await listDirectory(ctx.path)).find((e) => e.type === 'file');
          if (firstFile) await appendFile(`${ctx.path}/${firstFile.path}`, 'tampered by REWIND_FAULTS\n');
          break;
        }
      }
    }
  }
}

function parseRule(text: string): FaultRule {
  const match = /^\s*([a-z-]+):([a-z0-9*-]+)=([a-z-]+)(?::(\S+))?\s*$/.exec(text);
  const point = match?.[1] as FaultPoint | undefined;
  if (!match || !point || !FAULT_POINTS.includes(point)) {
    throw new Error(`REWIND_FAULTS: cannot read "${text}" (expected point:component=action, points: ${FAULT_POINTS.join(', ')})`);
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
  if (!action) throw new Error(`REWIND_FAULTS: unknown action "${kind}" (fail, fail-attempts:N, pause:DURATION, tamper)`);
  return { point, component: component!, action };
}
