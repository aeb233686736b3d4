// Runs an environment's verification checks on its agent, where the service is reachable:
// HTTP (status, body, p95 latency over N requests), a command (exit 0), a Prometheus instant
// query (through its HTTP API) compared with a bound. Never throws for a failed check: the
// result says what was measured and why it failed.
import { parseDuration } from '../manifest/duration';
import { describeExit, outputTail, runShell } from '../platform/shell';
import { checkKind, type Check, type CheckResult } from './section';

const BODY_LIMIT = 256 * 1024;

/** What a check measured: in words, as a number where there is one, and why it failed. */
interface Measured {
  value: string;
  measured?: number;
  problem?: string;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function errorCode(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const name = (err as Error).name;
  if (name === 'TimeoutError' || name === 'AbortError') return 'timed out';
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

async function httpCheck(h: NonNullable<Check['http']>, signal?: AbortSignal): Promise<Measured> {
  const timeoutMs = parseDuration(h.timeout);
  const latencies: number[] = [];
  let firstProblem: string | undefined;
  for (let i = 0; i < h.requests && !signal?.aborted; i++) {
    const started = performance.now();
    try {
      const res = await fetch(h.url, { method: h.method, signal: AbortSignal.timeout(timeoutMs) });
      const body = h.method === 'HEAD' ? '' : (await res.text()).slice(0, BODY_LIMIT);
      latencies.push(performance.now() - started);
      if (firstProblem === undefined && res.status !== h.status)
        firstProblem = `request ${i + 1}: status ${res.status}, expected ${h.status}`;
      else if (firstProblem === undefined && h.body !== undefined && !body.includes(h.body))
        firstProblem = `request ${i + 1}: the answer does not contain ${JSON.stringify(h.body)}`;
    } catch (err) {
      latencies.push(performance.now() - started);
      firstProblem ??= `request ${i + 1}: ${h.method} ${h.url}: ${errorCode(err)}`;
    }
  }
  const p95 = percentile(
    [...latencies].sort((a, b) => a - b),
    95,
  );
  const value = `p95 ${Math.round(p95)} ms over ${latencies.length} request${latencies.length === 1 ? '' : 's'}`;
  const measured = { value, measured: Math.round(p95) };
  if (firstProblem) return { ...measured, problem: firstProblem };
  if (h.p95 !== undefined && p95 > parseDuration(h.p95))
    return { ...measured, problem: `p95 latency ${Math.round(p95)} ms is over the budget of ${h.p95}` };
  return measured;
}

async function commandCheck(c: NonNullable<Check['command']>, signal?: AbortSignal): Promise<Measured> {
  const timeoutMs = parseDuration(c.timeout);
  const result = await runShell(c.run, { values: {}, timeoutMs, signal });
  const value = result.timedOut ? 'timed out' : result.signal ? `killed by ${result.signal}` : `exit ${result.code}`;
  const measured = { value, ...(typeof result.code === 'number' ? { measured: result.code } : {}) };
  if (result.code === 0) return measured;
  return { ...measured, problem: `${c.run} ${describeExit(result, timeoutMs)}${outputTail(result)}` };
}

/** The query's one number, or why there is none (unreachable, refused, no series, several). */
export async function prometheusValue(
  p: NonNullable<Check['prometheus']>,
  signal?: AbortSignal,
): Promise<{ value?: number; problem?: string; cannotAsk?: boolean }> {
  const url = `${p.url.replace(/\/$/, '')}/api/v1/query?query=${encodeURIComponent(p.query)}`;
  let res: Response;
  try {
    const timeout = AbortSignal.timeout(parseDuration(p.timeout));
    res = await fetch(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  } catch (err) {
    return { problem: `Prometheus at ${p.url} is unreachable: ${errorCode(err)}`, cannotAsk: true };
  }
  const text = (await res.text()).slice(0, BODY_LIMIT);
  let body: { status?: string; error?: string; data?: { resultType?: string; result?: unknown } };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    return {
      problem: `Prometheus at ${p.url} answered status ${res.status} with no JSON: ${text.slice(0, 120)}`,
      cannotAsk: true,
    };
  }
  if (body.status !== 'success')
    return {
      problem: `Prometheus refused the query ${JSON.stringify(p.query)}: ${body.error ?? `status ${res.status}`}`,
      cannotAsk: true,
    };
  const { resultType, result } = body.data ?? {};
  let raw: unknown;
  if (resultType === 'scalar') raw = (result as [number, string])[1];
  else if (resultType === 'vector') {
    const series = result as { value: [number, string] }[];
    if (series.length !== 1)
      return {
        problem: `the query ${JSON.stringify(p.query)} returned ${series.length} series; it must return exactly one number`,
      };
    raw = series[0]!.value[1];
  } else
    return { problem: `the query returned a ${resultType}; it must return one number (an instant vector or scalar)` };
  const value = Number(raw);
  return Number.isNaN(value) ? { problem: `the query's value is NaN (no data over its range?)` } : { value };
}

async function prometheusCheck(p: NonNullable<Check['prometheus']>, signal?: AbortSignal): Promise<Measured> {
  const read = await prometheusValue(p, signal);
  if (read.value === undefined) return { value: 'no value', problem: read.problem! };
  const value = String(Number(read.value.toPrecision(6)));
  const measured = { value, measured: read.value };
  if (p.below !== undefined && !(read.value < p.below))
    return { ...measured, problem: `${value} is not below ${p.below}` };
  if (p.above !== undefined && !(read.value > p.above))
    return { ...measured, problem: `${value} is not above ${p.above}` };
  return measured;
}

/** What passes a check, in words, for people reading a status or a report. */
export function expectationOf(check: Check): string {
  if (check.http)
    return [
      `status ${check.http.status}`,
      ...(check.http.body !== undefined ? [`body contains ${JSON.stringify(check.http.body)}`] : []),
      ...(check.http.p95 !== undefined ? [`p95 <= ${check.http.p95} over ${check.http.requests}`] : []),
    ].join(', ');
  if (check.command) return 'exit 0';
  const p = check.prometheus!;
  return [
    ...(p.above !== undefined ? [`above ${p.above}`] : []),
    ...(p.below !== undefined ? [`below ${p.below}`] : []),
  ].join(' and ');
}

export async function runCheck(check: Check, opts: { wave?: string; signal?: AbortSignal } = {}): Promise<CheckResult> {
  const started = Date.now();
  const measured = check.http
    ? await httpCheck(check.http, opts.signal)
    : check.command
      ? await commandCheck(check.command, opts.signal)
      : await prometheusCheck(check.prometheus!, opts.signal);
  return {
    name: check.name,
    kind: checkKind(check),
    passed: measured.problem === undefined,
    value: measured.value,
    ...(measured.measured !== undefined ? { measured: measured.measured } : {}),
    expected: expectationOf(check),
    ...(measured.problem !== undefined ? { problem: measured.problem } : {}),
    ...(opts.wave !== undefined ? { wave: opts.wave } : {}),
    at: new Date(started).toISOString(),
    ms: Date.now() - started,
  };
}

/**
 * Before approval: what would make a check unable to judge (Prometheus unreachable, a query it
 * refuses), so that a rollback does not switch traffic only to find it cannot verify it.
 * Thresholds are not judged here: the service may well be failing, that is why it rolls back.
 */
export async function preflightProblem(check: Check, signal?: AbortSignal): Promise<string | undefined> {
  if (!check.prometheus) return undefined;
  const read = await prometheusValue(check.prometheus, signal);
  return read.cannotAsk ? read.problem : undefined;
}
