// The HTTP API for a test: the real server on a loopback port, over a test env's Temporal,
// project store and snapshot store, with the test password's audit key.
import type { FastifyInstance } from 'fastify';
import { auditKey } from '../../src/audit/audit-log';
import { tokenReader } from '../../src/api/run';
import { createApiServer } from '../../src/api/server';
import { createLogger } from '../../src/platform/logger';
import { TEST_PASSWORD, type TestEnv } from './harness';

export interface TestApi {
  app: FastifyInstance;
  /** `http://127.0.0.1:PORT` */
  base: string;
  close(): Promise<void>;
}

/** `variables`: what the API reads from its environment (Slack's signing secret, webhook credentials). */
export async function startTestApi(env: TestEnv, variables: NodeJS.ProcessEnv = {}): Promise<TestApi> {
  const { manifest } = env.loaded;
  const app = await createApiServer({
    manifest,
    client: env.client,
    projectStore: () => env.projectStore(),
    auditKey: auditKey(TEST_PASSWORD),
    tokens: tokenReader({ file: manifest.api.tokensFile! }),
    logger: createLogger('rewind-api-test', 'silent'),
    env: variables,
    crossSections: (environment) => env.store.crossSections(environment),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  return { app, base: `http://127.0.0.1:${port}`, close: () => app.close() };
}
