// One structured logger for every process. Secrets are redacted by key name before anything is
// written, so a password that ends up in a log object never reaches the log.
import pino, { type Logger } from 'pino';

export const REDACTED_KEYS = ['password', 'secret', 'token', 'apiKey', 'authorization', 'RESTIC_PASSWORD'];

export function createLogger(name: string, level = process.env.REWIND_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name,
    level,
    redact: { paths: REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]), censor: '[redacted]' },
    base: { pid: process.pid },
  });
}

export type { Logger };
