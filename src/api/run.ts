// `rewind api`: the HTTP API as a process of its own (also started by `rewind start`).
import { installTracing } from '../platform/tracing';
import { statSync } from 'node:fs';
import { auditKey } from '../audit/audit-log';
import { RewindClient } from '../client/client';
import { repositoryPassword, type LoadedManifest } from '../manifest/load';
import { listenAddress } from '../manifest/fields';
import { createLogger } from '../platform/logger';
import { connectClient, temporalSettings } from '../platform/temporal';
import { openSnapshotStore } from '../snapshots/open';
import { lazyProjectStore } from '../store/project-store';
import { createApiServer } from './server';
import { readTokens, type TokenRecord, type TokenSource } from './tokens';

/** How long a stop may take before the process exits without finishing it. */
const STOP_GRACE_MS = 10_000;

/** The tokens, read again whenever their file changes: a revoked token stops working at once. */
export function tokenReader(source: TokenSource): () => TokenRecord[] {
  let seen: { mtimeMs: number; size: number } | undefined;
  let tokens: TokenRecord[] = [];
  return () => {
    if (source.env) return readTokens(source);
    let now: { mtimeMs: number; size: number } | undefined;
    try {
      const s = statSync(source.file);
      now = { mtimeMs: s.mtimeMs, size: s.size };
    } catch {
      now = undefined;
    }
    if (now?.mtimeMs !== seen?.mtimeMs || now?.size !== seen?.size) {
      tokens = now ? readTokens(source) : [];
      seen = now;
    }
    return tokens;
  };
}

export async function runApi(loaded: LoadedManifest, options: { listen?: string } = {}): Promise<void> {
  const { manifest } = loaded;
  const logger = createLogger('rewind-api');
  const tracing = installTracing('rewind-api');
  // The audit log's key comes from the repository password: without it, no row could be written.
  const key = auditKey(repositoryPassword(manifest));
  const source = { file: manifest.api.tokensFile!, env: manifest.api.tokensEnv };
  const tokens = tokenReader(source);
  tokens(); // a malformed tokens file is said now, not at the first request
  let snapshots;
  try {
    snapshots = openSnapshotStore(manifest);
  } catch {
    snapshots = undefined;
  }
  const client = new RewindClient(
    await connectClient(temporalSettings(manifest.temporal.namespace)),
    manifest,
    snapshots,
  );
  const projectStore = lazyProjectStore(manifest.dataDir);
  const app = await createApiServer({
    manifest,
    client,
    projectStore,
    auditKey: key,
    tokens,
    logger,
    ...(snapshots ? { crossSections: (environment: string) => snapshots.crossSections(environment) } : {}),
  });
  const { host, port } = listenAddress(options.listen ?? manifest.api.listen, 'api.listen');
  await app.listen({ host, port });
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? `${address.address}:${address.port}` : `${host}:${port}`;
  logger.info({ listen: bound, principals: Object.keys(manifest.api.principals).length }, 'rewind API listening');
  // For a person at a terminal; a log (rewind start's api.log) has the JSON line above.
  if (process.stdout.isTTY) process.stdout.write(`rewind API listening on ${urlOf(bound)}\n`);
  // Until SIGINT or SIGTERM: requests in flight finish, then the connections close. A step that
  // hangs (a store or Temporal that went away first, mid-call) does not keep the process: after
  // STOP_GRACE_MS it exits anyway, saying which step it was in.
  await new Promise<void>((resolve) => {
    const stop = () => {
      let step = 'closing the HTTP server';
      const force = setTimeout(() => {
        logger.warn({ step }, `did not stop within ${STOP_GRACE_MS} ms; exiting`);
        process.exit(1);
      }, STOP_GRACE_MS);
      force.unref();
      void (async () => {
        await app.close();
        step = 'closing the project store';
        await projectStore.close();
        step = 'closing the Temporal connection';
        await client.client.connection.close();
        step = 'sending the last traces';
        await tracing?.shutdown();
        clearTimeout(force);
        resolve();
      })();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

/** `::1:8787` → `http://[::1]:8787`. */
function urlOf(bound: string): string {
  const at = bound.lastIndexOf(':');
  const host = bound.slice(0, at);
  return `http://${host.includes(':') ? `[${host}]` : host}${bound.slice(at)}`;
}
