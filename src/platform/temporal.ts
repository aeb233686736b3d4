// Connecting to Temporal, and registering rewind's search attributes on the namespace.
import { Connection, Client } from '@temporalio/client';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { REWIND_SEARCH_ATTRIBUTES } from '../domain/search-attributes';
import { tracingClientInterceptors } from './tracing';

export const DEFAULT_TEMPORAL_ADDRESS = 'localhost:7233';

export interface TemporalSettings {
  address: string;
  namespace: string;
}

export function temporalSettings(
  namespace: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): TemporalSettings {
  return {
    address: env.TEMPORAL_ADDRESS || DEFAULT_TEMPORAL_ADDRESS,
    namespace: env.TEMPORAL_NAMESPACE || namespace || 'default',
  };
}

/** `host:port` or `[v6]:port`, as Temporal's clients take it; else why not. */
export function temporalAddressProblem(address: string): string | undefined {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(address);
  if (m && Number(m[2]) >= 1 && Number(m[2]) <= 65535) return undefined;
  return `the Temporal address "${address}" is not host:port (e.g. 127.0.0.1:7233)`;
}

export async function connectClient(settings: TemporalSettings): Promise<Client> {
  // A malformed address would only fail after the connect timeout, saying less.
  const problem = temporalAddressProblem(settings.address);
  if (problem) throw new Error(`${problem}; check --address or TEMPORAL_ADDRESS`);
  const connection = await Connection.connect({ address: settings.address, connectTimeout: '5s' }).catch(
    (err: unknown) => {
      throw new Error(
        `cannot reach Temporal at ${settings.address} (${err instanceof Error ? err.message : String(err)}); ` +
          'start it with `npm start`, or pass --address (or set TEMPORAL_ADDRESS)',
      );
    },
  );
  const interceptors = tracingClientInterceptors();
  return new Client({ connection, namespace: settings.namespace, ...(interceptors ? { interceptors } : {}) });
}

/** Adds the Rewind* search attributes the namespace lacks; the Web UI can then filter runs by them. */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<string[]> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const missing = REWIND_SEARCH_ATTRIBUTES.filter((key) => !(key.name in (existing.customAttributes ?? {})));
  if (missing.length === 0) return [];
  try {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(
        missing.map((key) => [key.name, encodeSearchAttributeIndexedValueType(key.type)!]),
      ),
    });
  } catch (err) {
    // Another worker registered them first.
    if (!/already exists/i.test(err instanceof Error ? err.message : String(err))) throw err;
  }
  return missing.map((key) => key.name);
}
