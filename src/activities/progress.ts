// Activity heartbeats that carry progress. Temporal throttles what reaches the server; the
// timer keeps a heartbeat flowing between progress reports, so cancellation is delivered.
import { Context } from '@temporalio/activity';

export interface StepProgress {
  component: string;
  stage: string;
  percent?: number;
  bytesDone?: number;
  bytesTotal?: number;
  filesDone?: number;
  filesTotal?: number;
}

export interface ProgressReporter {
  update(progress: Omit<StepProgress, 'component'>): void;
  stop(): void;
  readonly signal: AbortSignal;
  readonly attempt: number;
}

export function reportProgress(component: string, stage: string): ProgressReporter {
  const ctx = Context.current();
  let details: StepProgress = { component, stage };
  ctx.heartbeat(details);
  const timer = setInterval(() => ctx.heartbeat(details), 1_000);
  return {
    update(progress) {
      details = { component, ...progress };
      ctx.heartbeat(details);
    },
    stop() {
      clearInterval(timer);
    },
    signal: ctx.cancellationSignal,
    attempt: ctx.info.attempt,
  };
}
