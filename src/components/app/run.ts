// What the app kind's strategies share: manifest commands run through the shell with their
// values quoted, and HTTP probes (version, health) with a deadline on every request.
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../../domain/errors';
import { describeExit, outputTail, runShell, shellQuote, type CommandResult } from '../../platform/shell';
import { TEMPLATE_PATTERN, VERSION_PATTERN } from './kind';

export { describeExit, outputTail, runShell, type CommandResult };

const OUTPUT_LIMIT = 64 * 1024;

export type TemplateValues = Record<string, string | undefined>;

/** The command with each `{{name}}` replaced by its value, shell-quoted; an unknown name is refused. */
export function renderCommand(template: string, values: TemplateValues): string {
  return template.replace(TEMPLATE_PATTERN, (_, name: string) => {
    const value = values[name];
    if (value === undefined)
      throw ApplicationFailure.nonRetryable(
        `command ${JSON.stringify(template)} uses {{${name}}}, which this step has no value for (it has: ${Object.keys(
          values,
        )
          .filter((k) => values[k] !== undefined)
          .join(', ')})`,
        ErrorType.InvalidRequest,
      );
    return shellQuote(value);
  });
}

/** Refuses a release name that is not plain (it becomes a command argument and a file name). */
export function checkVersion(version: string | undefined, what: string): string {
  if (version === undefined || !VERSION_PATTERN.test(version))
    throw ApplicationFailure.nonRetryable(
      `${what}: ${JSON.stringify(version ?? null)} is not a release name rewind can switch to (letters, digits, ".", "_", "+", "-")`,
      ErrorType.InvalidRequest,
    );
  return version;
}

/**
 * Runs a manifest command and fails the step unless it exits 0: retryably for `retryCodes`
 * and timeouts, otherwise at once, with the command's own last words.
 */
export async function runManifestCommand(
  what: string,
  template: string,
  opts: { values: TemplateValues; timeoutMs: number; signal?: AbortSignal | undefined; retryCodes?: readonly number[] },
): Promise<CommandResult> {
  const command = renderCommand(template, opts.values);
  const result = await runShell(command, opts);
  if (result.code === 0) return result;
  const message = `${what} (${command}) ${describeExit(result, opts.timeoutMs)}${outputTail(result)}`;
  const retry = result.timedOut || (result.code !== null && (opts.retryCodes ?? []).includes(result.code));
  throw retry
    ? ApplicationFailure.retryable(message, ErrorType.ComponentBusy)
    : ApplicationFailure.nonRetryable(message, ErrorType.ComponentUnavailable);
}

/** The version in a command's or endpoint's answer: its first line, or a dotted JSON field. */
export function versionFromText(text: string, field: string | undefined): string | undefined {
  if (field === undefined) {
    const line = text.trim().split('\n')[0]?.trim();
    return line ? line : undefined;
  }
  try {
    let value: unknown = JSON.parse(text);
    for (const key of field.split('.')) value = (value as Record<string, unknown> | null)?.[key];
    return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
  } catch {
    return undefined;
  }
}

export interface ProbeAnswer {
  ok: boolean;
  status?: number;
  body?: string;
  error?: string;
  ms: number;
}

/** One HTTP request with a deadline; never throws. A fresh connection each time. */
export async function probe(url: string, opts: { timeoutMs: number; method?: string }): Promise<ProbeAnswer> {
  const started = performance.now();
  try {
    const res = await fetch(url, {
      method: opts.method ?? 'GET',
      signal: AbortSignal.timeout(opts.timeoutMs),
      headers: { connection: 'close', 'user-agent': 'rewind' },
    });
    const body = (await res.text()).slice(0, OUTPUT_LIMIT);
    return { ok: true, status: res.status, body, ms: performance.now() - started };
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const error = cause?.code ?? cause?.message ?? (err as Error).message;
    return { ok: false, error, ms: performance.now() - started };
  }
}

export function describeProbe(answer: ProbeAnswer): string {
  if (!answer.ok) return answer.error ?? 'no answer';
  const body = answer.body?.trim().replace(/\s+/g, ' ').slice(0, 80);
  return `status ${answer.status}${body ? ` "${body}"` : ''}`;
}

export interface HealthSpec {
  status: number;
  body?: string | undefined;
  successes: number;
  intervalMs: number;
  timeoutMs: number;
}

export function healthy(answer: ProbeAnswer, spec: Pick<HealthSpec, 'status' | 'body'>): boolean {
  return answer.ok && answer.status === spec.status && (spec.body === undefined || !!answer.body?.includes(spec.body));
}

/**
 * Asks `url` until it answers healthily `successes` times in a row or the deadline passes;
 * returns why not, or undefined when healthy.
 */
export async function awaitHealthy(
  url: string,
  spec: HealthSpec,
  signal?: AbortSignal,
): Promise<{ problem?: string; attempts: number }> {
  const deadline = Date.now() + spec.timeoutMs;
  let inARow = 0;
  let attempts = 0;
  let last: ProbeAnswer | undefined;
  while (Date.now() < deadline && !signal?.aborted) {
    attempts++;
    last = await probe(url, { timeoutMs: Math.max(100, Math.min(5_000, deadline - Date.now())) });
    inARow = healthy(last, spec) ? inARow + 1 : 0;
    if (inARow >= spec.successes) return { attempts };
    await new Promise((r) => setTimeout(r, spec.intervalMs));
  }
  const wanted = `status ${spec.status}${spec.body !== undefined ? ` with "${spec.body}"` : ''}`;
  return {
    attempts,
    problem: `${url} did not answer ${wanted} ${spec.successes} times in a row within ${spec.timeoutMs} ms (last: ${last ? describeProbe(last) : 'not asked'})`,
  };
}
