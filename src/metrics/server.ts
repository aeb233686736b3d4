// `/metrics` for the processes that are not the API (the control worker, the agents): a plain
// HTTP listener on the address the manifest gives (`metrics` section), answering Prometheus's
// text format. The API serves /metrics on its own port.
import { createServer, type Server } from 'node:http';
import { Registry } from 'prom-client';
import type { Logger } from '../platform/logger';
import { listenAddress } from '../manifest/fields';

export interface MetricsSource {
  registry: Registry;
  /** Brings the registry up to date before it is read. */
  refresh?: () => Promise<void>;
}

/** What Prometheus reads: every source's metrics, each refreshed first. */
export async function renderMetrics(sources: MetricsSource[]): Promise<{ contentType: string; body: string }> {
  await Promise.all(sources.map((s) => (s.refresh ? s.refresh() : Promise.resolve())));
  const merged = Registry.merge(sources.map((s) => s.registry));
  return { contentType: merged.contentType, body: await merged.metrics() };
}

/** Listens on `listen` (host:port) and answers GET /metrics; resolves once listening. */
export async function serveMetrics(
  listen: string,
  sources: MetricsSource[],
  logger: Logger,
  where = 'metrics',
): Promise<Server> {
  const { host, port } = listenAddress(listen, where);
  const server = createServer((request, response) => {
    const url = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' || url !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('rewind: only GET /metrics is served here\n');
      return;
    }
    renderMetrics(sources).then(
      ({ contentType, body }) => response.writeHead(200, { 'content-type': contentType }).end(body),
      (err: unknown) => {
        logger.error({ err }, 'metrics: could not render');
        response.writeHead(500, { 'content-type': 'text/plain' }).end('rewind: the metrics could not be read\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          err.code === 'EADDRINUSE'
            ? `the metrics address ${listen} is in use (another process listens there; change metrics in the manifest)`
            : `could not listen for metrics on ${listen}: ${err.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  logger.info({ metrics: `http://${listen}/metrics` }, 'serving metrics');
  return server;
}
