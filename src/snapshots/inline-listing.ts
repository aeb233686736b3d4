// A small listing travels in its data snapshot's tags instead of a listing snapshot of its own:
// one restic run less per snapshot (about 0.7 s of key derivation), and reading it back needs no
// restic run either while the snapshot index is in step. Tags are encrypted inside the snapshot
// like everything else; the size bound keeps `restic snapshots` readable and every tag far
// below the length the kernel allows one argument (128 KiB).
import { gunzipSync, gzipSync } from 'node:zlib';

/** Longest encoded listing kept in a tag; larger ones get a listing snapshot as before. */
export const INLINE_LISTING_MAX_CHARS = 2_048;

/** The listing as a tag value, or undefined when it is too large for one. */
export function inlineListing(text: string): string | undefined {
  const encoded = gzipSync(Buffer.from(text, 'utf8'), { level: 9 }).toString('base64url');
  return encoded.length <= INLINE_LISTING_MAX_CHARS ? encoded : undefined;
}

export function readInlineListing(encoded: string): string {
  return gunzipSync(Buffer.from(encoded, 'base64url')).toString('utf8');
}
