// Traces as Jaeger receives them: with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a local OTLP/HTTP
// receiver, one rollback (real workflow from the traced bundle, stub activities) gives one trace
// that spans the client's start, the workflow run and its activities on both task queues.
import { createServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { trace } from '@opentelemetry/api';
import { createLogger } from '../src/platform/logger';
import { freePort } from '../src/platform/temporal-dev-server';
import { installTracing, shutdownTracing } from '../src/platform/tracing';
import { eventually } from './support/harness';
import { createWorkflowTestEnv, type WorkflowTestEnv } from './support/workflow-test-worker';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
}
interface OtlpExport {
  resourceSpans: {
    resource: { attributes: { key: string; value: { stringValue?: string } }[] };
    scopeSpans: { spans: OtlpSpan[] }[];
  }[];
}

describe('tracing (OpenTelemetry, OTLP)', () => {
  let env: WorkflowTestEnv | undefined;
  let receiver: Server;
  const received: { service: string; span: OtlpSpan }[] = [];
  const contentTypes = new Set<string>();

  beforeAll(async () => {
    const port = await freePort();
    receiver = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (c: Buffer) => chunks.push(c));
      request.on('end', () => {
        contentTypes.add(`${request.method} ${request.url} ${request.headers['content-type']}`);
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport;
        for (const rs of body.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
          for (const ss of rs.scopeSpans) for (const span of ss.spans) received.push({ service, span });
        }
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(port, '127.0.0.1', resolve));
    // The exporter reads the standard variable itself, as in a deployed process.
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${port}`;
    installTracing('rewind-tracing-test');
  });
  afterAll(async () => {
    await env?.teardown();
    await shutdownTracing();
    receiver.close();
    delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  });

  it('names the trace in the log lines written inside a span', () => {
    const lines: Record<string, string>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, string>);
        done();
      },
    });
    const logger = createLogger('rewind-tracing-test', 'info', sink);
    logger.info('outside');
    trace.getTracer('test').startActiveSpan('restore', (span) => {
      logger.info('inside');
      expect(lines[1]).toMatchObject({ 'trace.id': span.spanContext().traceId, 'span.id': span.spanContext().spanId });
      span.end();
    });
    expect(lines[0]).not.toHaveProperty(['trace.id']);
  });

  it('one trace spans the client, the workflow and its activities', async () => {
    env = await createWorkflowTestEnv({ traced: true });
    const id = await env.start();
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    expect(await env.client.decide(id, 'approve', { user: 'bob' })).toMatchObject({ accepted: true });
    const view = await env.finalStatus(id);
    expect(view.status.state).toBe('completed');
    await shutdownTracing();

    const start = await eventually(
      () => received.find((r) => r.span.name === 'StartWorkflow:rollbackWorkflow'),
      'the client span',
      10_000,
    );
    const trace = received.filter((r) => r.span.traceId === start.span.traceId).map((r) => r.span.name);
    expect(trace).toEqual(
      expect.arrayContaining([
        'StartWorkflow:rollbackWorkflow',
        'RunWorkflow:rollbackWorkflow',
        'RunActivity:resolveRollback',
        'RunActivity:restoreComponent',
        'RunActivity:verifyComponent',
      ]),
    );
    // The agent's activities run on their own task queue and are in the same trace.
    expect(trace.filter((n) => n === 'RunActivity:restoreComponent')).toHaveLength(2);
    expect(received.every((r) => r.service === 'rewind-tracing-test')).toBe(true);
    expect([...contentTypes]).toEqual(['POST /v1/traces application/json']);
  });
});
