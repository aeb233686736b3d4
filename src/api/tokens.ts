// Bearer tokens for the API. A token is `rwd_<id>_<secret>`: the id finds its record, the
// secret (32 random bytes) is checked against the SHA-256 kept in the record. The secret is
// shown once, when it is made, and never stored: a leaked tokens file opens no door. A plain
// SHA-256 is enough for 256 random bits (there is nothing to guess), and is what GitHub and
// others keep of their tokens.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

const tokenRecordSchema = z.strictObject({
  id: z.string().regex(/^[a-f0-9]{12}$/),
  principal: z.string().min(1),
  /** What the token is for, for people: "laptop", "incident-bot". */
  name: z.string().max(100).default(''),
  sha256: z.string().regex(/^[a-f0-9]{64}$/),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime().optional(),
  revokedAt: z.iso.datetime().optional(),
});
export type TokenRecord = z.output<typeof tokenRecordSchema>;

const tokensFileSchema = z.strictObject({
  format: z.literal('rewind-api-tokens-v1'),
  tokens: z.array(tokenRecordSchema),
});

const TOKEN = /^rwd_([a-f0-9]{12})_([A-Za-z0-9_-]{43})$/;

export class TokenError extends Error {}

/** Where the tokens are: a file `rewind tokens` writes, or a variable holding the same JSON (read-only). */
export interface TokenSource {
  file: string;
  env?: string | undefined;
}

export function readTokens(source: TokenSource, env: NodeJS.ProcessEnv = process.env): TokenRecord[] {
  let text: string;
  let where: string;
  if (source.env) {
    where = `environment variable ${source.env}`;
    text = env[source.env] ?? '';
    if (!text) return [];
  } else {
    where = source.file;
    try {
      text = readFileSync(source.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new TokenError(`cannot read the tokens file ${source.file}: ${(err as Error).message}`);
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new TokenError(`the tokens in ${where} are not JSON: ${(err as Error).message}`);
  }
  const parsed = tokensFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new TokenError(
      `the tokens in ${where} are malformed at ${issue.path.join('.') || 'the top'}: ${issue.message}`,
    );
  }
  return parsed.data.tokens;
}

function writeTokens(source: TokenSource, tokens: TokenRecord[]): void {
  if (source.env)
    throw new TokenError(
      `the tokens come from the environment variable ${source.env} (api.tokensEnv): change them there; rewind only writes a tokens file`,
    );
  mkdirSync(path.dirname(source.file), { recursive: true });
  const temp = `${source.file}.tmp-${process.pid}`;
  writeFileSync(temp, `${JSON.stringify({ format: 'rewind-api-tokens-v1', tokens }, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, source.file);
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Makes a token for `principal`; the returned `token` is the only time its secret exists. */
export function createToken(
  source: TokenSource,
  principal: string,
  options: { name?: string; expiresAt?: Date; now?: Date } = {},
): { token: string; record: TokenRecord } {
  const tokens = readTokens(source);
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const record: TokenRecord = {
    id,
    principal,
    name: options.name ?? '',
    sha256: sha256(secret),
    createdAt: (options.now ?? new Date()).toISOString(),
    ...(options.expiresAt ? { expiresAt: options.expiresAt.toISOString() } : {}),
  };
  writeTokens(source, [...tokens, record]);
  return { token: `rwd_${id}_${secret}`, record };
}

export function revokeToken(source: TokenSource, id: string, now = new Date()): TokenRecord {
  const tokens = readTokens(source);
  const record = tokens.find((t) => t.id === id);
  if (!record) throw new TokenError(`no token ${id} (rewind tokens list)`);
  if (record.revokedAt) return record;
  record.revokedAt = now.toISOString();
  writeTokens(source, tokens);
  return record;
}

export type TokenCheck = { principal: string; tokenId: string } | { refused: string };

/**
 * Who presents `bearer`, or why no one does. Compared in constant time; the reasons name the
 * token's id at most, never its secret.
 */
export function checkToken(tokens: TokenRecord[], bearer: string | undefined, now = new Date()): TokenCheck {
  if (!bearer) return { refused: 'no bearer token (Authorization: Bearer rwd_…)' };
  const match = TOKEN.exec(bearer);
  if (!match) return { refused: 'not a rewind token (expected rwd_<id>_<secret>)' };
  const [, id, secret] = match as unknown as [string, string, string];
  const record = tokens.find((t) => t.id === id);
  const presented = Buffer.from(sha256(secret), 'hex');
  // Compare even when no record matches, so that a missing id costs the same as a wrong secret.
  const expected = Buffer.from(record?.sha256 ?? '0'.repeat(64), 'hex');
  if (!timingSafeEqual(presented, expected) || !record) return { refused: `unknown token ${id}` };
  if (record.revokedAt) return { refused: `token ${id} was revoked at ${record.revokedAt}` };
  if (record.expiresAt && Date.parse(record.expiresAt) <= now.getTime())
    return { refused: `token ${id} expired at ${record.expiresAt}` };
  return { principal: record.principal, tokenId: id };
}
