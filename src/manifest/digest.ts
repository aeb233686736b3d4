// The digest of the manifest a process runs: every request carries the client's, and the
// control worker refuses one made with another manifest (a component added to rewind.yaml
// while the workers kept the old one would otherwise be silently left out).
import { createHash } from 'node:crypto';
import type { Manifest } from './schema';

/** SHA-256 over the validated manifest with sorted keys: formatting and comments do not count. */
export function manifestDigest(manifest: Manifest): string {
  return createHash('sha256').update(canonicalJson(manifest)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
