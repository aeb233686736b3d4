// The workflow interceptors of the traced bundle (src/platform/tracing.ts): Temporal's
// OpenTelemetry interceptors, with span and trace ids that do not come from the workflow's
// random generator. Theirs draw ids from Math.random, which in a workflow is the run's seeded
// generator: every span would shift the random numbers the workflow itself draws (cross-section
// ids), so a run started without tracing could not be replayed by a worker with tracing on, and
// the other way round. These ids come from the run id and a count of spans instead: the same on
// every replay, and unique across runs.
// First: it gives the workflow sandbox the browser globals OpenTelemetry needs (performance).
import '@temporalio/interceptors-opentelemetry/lib/workflow/runtime';
import type { Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, SimpleSpanProcessor, type IdGenerator } from '@opentelemetry/sdk-trace-base';
import {
  OpenTelemetryInboundInterceptor,
  OpenTelemetryInternalsInterceptor,
  OpenTelemetryOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry/lib/workflow';
import { SpanExporter } from '@temporalio/interceptors-opentelemetry/lib/workflow/span-exporter';
import { workflowInfo, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

/** 64-bit FNV-1a of `text`, as 16 hex digits. */
function fnv1a64(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (let i = 0; i < text.length; i++) {
    hash ^= BigInt(text.charCodeAt(i));
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, '0');
}

/**
 * Ids from the run id and a count of spans. Whether or not the count is shared between runs in
 * the sandbox, the run id keeps ids apart; ids never reach commands, so replay is unaffected.
 */
class RunScopedIdGenerator implements IdGenerator {
  private spans = 0;
  generateTraceId(): string {
    const { runId } = workflowInfo();
    return fnv1a64(`trace/${runId}`) + fnv1a64(`trace/${runId}/${this.spans}`);
  }
  generateSpanId(): string {
    this.spans += 1;
    return fnv1a64(`span/${workflowInfo().runId}/${this.spans}`);
  }
}

// Spans leave through the library's exporter (a sink to the worker, which sends them on); only
// their ids are made here.
let tracer: Tracer | undefined;
function runScopedTracer(): Tracer {
  tracer ??= new BasicTracerProvider({
    idGenerator: new RunScopedIdGenerator(),
    spanProcessors: [new SimpleSpanProcessor(new SpanExporter())],
  }).getTracer('@temporalio/interceptor-workflow');
  return tracer;
}

class RunScopedInboundInterceptor extends OpenTelemetryInboundInterceptor {
  protected override readonly tracer = runScopedTracer();
}

class RunScopedOutboundInterceptor extends OpenTelemetryOutboundInterceptor {
  protected override readonly tracer = runScopedTracer();
}

export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [new RunScopedInboundInterceptor()],
  outbound: [new RunScopedOutboundInterceptor()],
  internals: [new OpenTelemetryInternalsInterceptor()],
});
