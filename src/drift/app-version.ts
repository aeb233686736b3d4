// The running application's version, read where the manifest says (a file or an HTTP endpoint
// of the environment), for drift scans. The app component kind will report its own later.
import { readFile } from 'node:fs/promises';
import type { Environment } from '../manifest/schema';

export interface AppVersion {
  /** Where it was read: the file or URL. */
  source?: string;
  version?: string;
  /** Why it could not be read. */
  error?: string;
}

const MAX_BYTES = 64 * 1024;
const TIMEOUT_MS = 5_000;

function pick(text: string, field: string | undefined): string {
  if (!field) return text.split('\n')[0]!.trim();
  let value: unknown = JSON.parse(text);
  for (const part of field.split('.')) value = (value as Record<string, unknown> | null)?.[part];
  if (typeof value === 'string') return value.trim();
  if (typeof value === 'number') return String(value);
  throw new Error(`no text or number at field "${field}"`);
}

export async function readAppVersion(source: Environment['version']): Promise<AppVersion> {
  if (!source) return {};
  const where = source.file ?? source.url!;
  try {
    let text: string;
    if (source.file) {
      text = (await readFile(source.file)).subarray(0, MAX_BYTES).toString('utf8');
    } else {
      const response = await fetch(source.url!, { signal: AbortSignal.timeout(TIMEOUT_MS) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      text = (await response.text()).slice(0, MAX_BYTES);
    }
    const version = pick(text, source.field).slice(0, 200);
    if (!version) throw new Error('it is empty');
    return { source: where, version };
  } catch (err) {
    return { source: where, error: (err as Error).message.slice(0, 300) };
  }
}
