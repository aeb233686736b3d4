// OpenTelemetry traces, on when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
// is set: the client's start and decisions, each workflow run and each activity, with Temporal's
// own interceptors (@temporalio/interceptors-opentelemetry), exported by OTLP over HTTP, which
// Jaeger and the OpenTelemetry Collector accept. The trace context travels in Temporal's headers,
// so one trace spans the CLI or API that started a rollback, the workflow and its activities on
// the worker and the agents. The standard OTEL_* variables configure the exporter (headers,
// timeout, OTEL_SERVICE_NAME).
import type * as OtlpHttp from '@opentelemetry/exporter-trace-otlp-http';
import type * as Resources from '@opentelemetry/resources';
import type { Resource } from '@opentelemetry/resources';
import type * as TraceBase from '@opentelemetry/sdk-trace-base';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type * as TraceNode from '@opentelemetry/sdk-trace-node';
import type * as TemporalOtel from '@temporalio/interceptors-opentelemetry';
import type { ClientInterceptors } from '@temporalio/client';
import type { WorkerOptions } from '@temporalio/worker';

export interface Tracing {
  resource: Resource;
  processor: SpanProcessor;
  /** Sends what is buffered; call before the process exits. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** Whether the environment asks for traces. */
export function tracingWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

let installed: Tracing | undefined;

/**
 * Registers the process's tracer provider (once) when the environment asks for traces; the
 * OpenTelemetry packages load only then, so a process without tracing does not pay for them.
 */
export function installTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): Tracing | undefined {
  if (installed || !tracingWanted(env)) return installed;
  /* eslint-disable @typescript-eslint/no-require-imports -- loaded only when tracing is on */
  const { Resource } = require('@opentelemetry/resources') as typeof Resources;
  const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base') as typeof TraceBase;
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node') as typeof TraceNode;
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof OtlpHttp;
  /* eslint-enable @typescript-eslint/no-require-imports */
  const resource = new Resource({ 'service.name': env.OTEL_SERVICE_NAME || serviceName });
  const processor = new BatchSpanProcessor(new OTLPTraceExporter());
  const provider = new NodeTracerProvider({ resource, spanProcessors: [processor] });
  // The global provider, W3C trace-context propagation and an AsyncLocalStorage context manager.
  provider.register();
  installed = {
    resource,
    processor,
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
  return installed;
}

/** The client interceptors that start a trace and carry it into Temporal's headers (none when off). */
export function tracingClientInterceptors(): ClientInterceptors | undefined {
  if (!installed) return undefined;
  const { OpenTelemetryWorkflowClientInterceptor } =
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@temporalio/interceptors-opentelemetry') as typeof TemporalOtel;
  return { workflow: [new OpenTelemetryWorkflowClientInterceptor()] };
}

/** The worker's activity interceptors and the sink its workflows' spans leave through (none when off). */
export function tracingWorkerOptions(): Pick<WorkerOptions, 'interceptors' | 'sinks'> {
  if (!installed) return {};
  const tracing = installed;
  const { OpenTelemetryActivityInboundInterceptor, OpenTelemetryActivityOutboundInterceptor, makeWorkflowExporter } =
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@temporalio/interceptors-opentelemetry') as typeof TemporalOtel;
  return {
    interceptors: {
      activity: [
        (ctx) => ({
          inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
          outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
        }),
      ],
    },
    sinks: { exporter: makeWorkflowExporter(tracing.processor, tracing.resource) },
  };
}

/** Sends the spans still buffered and stops tracing (a short command, before it exits). */
export async function shutdownTracing(): Promise<void> {
  await installed?.shutdown();
}

/** Whether this process traces (installTracing found the variables). */
export function tracingOn(): boolean {
  return installed !== undefined;
}

/** The workflow interceptors module, for the traced workflow bundle (ids that leave the run's randomness alone). */
export const WORKFLOW_TRACING_MODULE = require.resolve('../workflows/tracing-interceptors');
