// One structured logger for every process, writing JSON lines with Elastic Common Schema field
// names (`@timestamp`, `log.level`, `message`, `service.name`, `error.*`, `trace.id`), through Elastic's
// own pino formatter, so Filebeat ships them to Elasticsearch unchanged
// (deploy/logging/filebeat.yml). Secrets are redacted by key name before anything is written,
// so a password that ends up in a log object never reaches the log.
import { stripVTControlCharacters } from 'node:util';
import { ecsFormat } from '@elastic/ecs-pino-format';
import { isSpanContextValid, trace } from '@opentelemetry/api';
import pino, { type Logger } from 'pino';

export const REDACTED_KEYS = ['password', 'secret', 'token', 'apiKey', 'authorization', 'RESTIC_PASSWORD'];

export function createLogger(
  name: string,
  level = process.env.REWIND_LOG_LEVEL ?? 'info',
  destination?: pino.DestinationStream,
): Logger {
  const options: pino.LoggerOptions = {
    ...ecsFormat({ convertErr: true, serviceName: name }),
    level,
    redact: { paths: REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]), censor: '[redacted]' },
    base: { pid: process.pid },
    // Inside a traced span (OTEL_EXPORTER_OTLP_ENDPOINT set, src/platform/tracing.ts), the line
    // names its trace, so Kibana and Jaeger link to each other.
    mixin: () => {
      const span = trace.getActiveSpan()?.spanContext();
      return span && isSpanContextValid(span) ? { 'trace.id': span.traceId, 'span.id': span.spanId } : {};
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };

type SdkLevel = 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

// Messages the SDK logs as warnings that are expected here: agents run no workflows.
const EXPECTED_SDK_WARNINGS = /No workflows registered|No Nexus services registered/;

/** Routes the Temporal SDK's own log lines into the process's pino logger. */
export function sdkLogger(logger: Logger) {
  const log = (level: SdkLevel, message: string, meta?: Record<string, unknown>) => {
    const target = level === 'WARN' && EXPECTED_SDK_WARNINGS.test(message) ? 'DEBUG' : level;
    const fn = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' }[target] as 'info';
    // pino serialises an Error (message, type, stack) only under `err`.
    const { error, ...rest } = meta ?? {};
    // The SDK's core colours some of its lines for a terminal; a JSON log wants the text alone.
    logger[fn](
      { sdk: true, ...rest, ...(error !== undefined ? { err: error } : {}) },
      stripVTControlCharacters(message),
    );
  };
  return {
    log,
    trace: (m: string, meta?: Record<string, unknown>) => log('TRACE', m, meta),
    debug: (m: string, meta?: Record<string, unknown>) => log('DEBUG', m, meta),
    info: (m: string, meta?: Record<string, unknown>) => log('INFO', m, meta),
    warn: (m: string, meta?: Record<string, unknown>) => log('WARN', m, meta),
    error: (m: string, meta?: Record<string, unknown>) => log('ERROR', m, meta),
  };
}
