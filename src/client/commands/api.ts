// `rewind api` (the HTTP API) and `rewind tokens create|list|revoke` (who may call it).
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { DURATION_PATTERN, parseDuration } from '../../manifest/duration';
import { didYouMean } from '../../manifest/fields';
import { textTable } from '../../domain/format';
import { terminalSafe } from '../../domain/display-text';
import { RequestError } from '../client';
import { action, manifestOf, print } from './command-context';

function duration(value: string): number {
  if (!DURATION_PATTERN.test(value)) throw new InvalidArgumentError('expected a duration such as 90d, 12h or 30m');
  return parseDuration(value);
}

export function registerApiCommands(program: Command): void {
  program
    .command('api')
    .description(
      'serve the HTTP API: rollbacks, approvals and drift scans for incident tooling and people (bearer tokens)',
    )
    .option('--listen <host:port>', "where to listen (default: the manifest's api.listen, 127.0.0.1:8787)")
    .action(
      action(async (opts: { listen?: string }, cmd: Command) => {
        const { runApi } = await import('../../api/run');
        await runApi(manifestOf(cmd), opts.listen ? { listen: opts.listen } : {});
      }),
    );

  const tokens = program
    .command('tokens')
    .description("the API's bearer tokens: each names a principal of the manifest's api.principals");

  tokens
    .command('create')
    .description('make a token for a principal; it is printed once and kept only as a hash')
    .requiredOption('--principal <name>', 'who the token speaks for (a key of api.principals)')
    .option('--name <text>', 'what it is for, e.g. laptop or incident-bot', '')
    .option('--expires <duration>', 'valid for this long, e.g. 90d (default: until revoked)', duration)
    .action(
      action(async (opts: { principal: string; name: string; expires?: number }, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        const known = Object.keys(manifest.api.principals);
        if (!known.includes(opts.principal)) {
          const hint = didYouMean(opts.principal, known);
          throw new RequestError(
            `--principal: "${terminalSafe(opts.principal)}" is not in api.principals (${known.length ? `the manifest has: ${known.join(', ')}` : 'the manifest names none'})${hint ? `; ${hint}` : ''}`,
          );
        }
        const { createToken } = await import('../../api/tokens');
        const { token, record } = createToken(source(manifest), opts.principal, {
          name: opts.name,
          ...(opts.expires ? { expiresAt: new Date(Date.now() + opts.expires) } : {}),
        });
        print(cmd, { token, ...withoutHash(record) }, () =>
          [
            `token ${record.id} for ${record.principal}${record.expiresAt ? `, valid until ${record.expiresAt}` : ''}:`,
            '',
            `  ${token}`,
            '',
            'It is shown this once; rewind keeps only its hash. Send it as "Authorization: Bearer <token>".',
          ].join('\n'),
        );
      }),
    );

  tokens
    .command('list')
    .description('the tokens (never their secrets)')
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        const { readTokens } = await import('../../api/tokens');
        const all = readTokens(source(manifest)).map(withoutHash);
        print(cmd, all, () =>
          all.length === 0
            ? 'no tokens (rewind tokens create --principal NAME)'
            : textTable(
                ['id', 'principal', 'name', 'created', 'expires', 'revoked'],
                all.map((t) => [
                  t.id,
                  t.principal,
                  terminalSafe(t.name),
                  t.createdAt,
                  t.expiresAt ?? '',
                  t.revokedAt ?? '',
                ]),
              ),
        );
      }),
    );

  tokens
    .command('revoke <id>')
    .description('stop a token from working (the API reads the change at once)')
    .action(
      action(async (id: string, _opts: unknown, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        const { revokeToken } = await import('../../api/tokens');
        const record = revokeToken(source(manifest), id);
        print(
          cmd,
          withoutHash(record),
          () => `token ${record.id} (${record.principal}) revoked at ${record.revokedAt}`,
        );
      }),
    );
}

function source(manifest: { api: { tokensFile?: string | undefined; tokensEnv?: string | undefined } }) {
  return { file: manifest.api.tokensFile!, env: manifest.api.tokensEnv };
}

function withoutHash<T extends { sha256: string }>(record: T): Omit<T, 'sha256'> {
  const { sha256: _hash, ...rest } = record;
  return rest;
}
