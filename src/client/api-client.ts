// A client of rewind's HTTP API for incident tooling: the same operations as RewindClient
// (which talks to Temporal directly), through the door that knows who is calling. Uses the
// platform's fetch; nothing else.
import type { DriftScanRequest } from '../domain/drift-scan';
import type { StoredFinding, StoredScan } from '../drift/report';
import type { DecisionOutcome } from '../domain/messages';
import type { RollbackStatus, RollbackTarget, Trigger } from '../domain/rollback';
import type { RollbackView } from './client';

/** What the API refused, and why: its status, `error` and `reason`. */
export class RewindApiError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly reason: string,
    readonly body: Record<string, unknown>,
  ) {
    super(`${status} ${error}: ${reason}`);
  }
}

export interface RewindApiClientOptions {
  /** The API's base URL, e.g. http://127.0.0.1:8787. */
  url: string;
  /** A bearer token (rewind tokens create). */
  token: string;
  /** Per request (default 30 s). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface StartRollbackInput {
  environment: string;
  target: RollbackTarget;
  components?: string[];
  reason?: string;
  trigger?: Trigger;
  dryRun?: boolean;
  /** undo, restore or pitr, where the component's kind offers it. */
  strategy?: string;
  acceptDataLoss?: boolean;
}

export interface Started {
  workflowId: string;
  /** The Idempotency-Key named a run that already existed. */
  existing: boolean;
  environment: string;
  requester: string;
  webUi: string;
}

export type Decided = DecisionOutcome & { workflowId: string; webUi: string };

const FINAL = new Set(['completed', 'compensated', 'rejected', 'timed-out', 'failed', 'cancelled']);

export interface RewindApiClient {
  startRollback(input: StartRollbackInput, options?: { idempotencyKey?: string }): Promise<Started>;
  approve(
    workflowId: string,
    options?: { comment?: string; acceptDataLoss?: boolean; idempotencyKey?: string },
  ): Promise<Decided>;
  reject(workflowId: string, options?: { comment?: string; idempotencyKey?: string }): Promise<Decided>;
  /** After a failed verification that waits (`verify.onFailure: ask`): keep the result. */
  accept(workflowId: string, options?: { comment?: string; idempotencyKey?: string }): Promise<Decided>;
  /** After a failed verification that waits: put everything back. */
  compensate(workflowId: string, options?: { comment?: string; idempotencyKey?: string }): Promise<Decided>;
  cancel(workflowId: string, options?: { reason?: string; idempotencyKey?: string }): Promise<Decided>;
  status(workflowId: string): Promise<RollbackView & { webUi: string }>;
  /** Recent rollbacks, newest first. */
  list(options?: {
    environment?: string;
    limit?: number;
  }): Promise<{ runs: (Record<string, unknown> & { workflowId: string; webUi: string })[] }>;
  /**
   * The run's status each time its state or phase changes, starting with the current one; ends
   * after the final state. Polls every `intervalMs` (default 1 s).
   */
  watch(workflowId: string, options?: { intervalMs?: number; signal?: AbortSignal }): AsyncIterable<RollbackStatus>;
  startDriftScan(
    input?: Pick<DriftScanRequest, 'from' | 'to' | 'components'> & { trigger?: DriftScanRequest['trigger'] },
  ): Promise<{
    workflowId: string;
    /** The id `GET /v1/drift-reports/:id` takes; absent when no worker answered within 3 s. */
    scanId?: string;
    attached: boolean;
    from: string;
    to: string;
    webUi: string;
  }>;
  /** A drift scan's report: a scan id, a unique beginning of one, or `latest`; `scan.status` is `running` until it ends. */
  driftReport(id: string): Promise<{
    scan: StoredScan;
    findings: StoredFinding[];
    /** What the scan sent to Slack; null when it sent nothing. */
    alert: { sent: 'alert' | 'resolved'; reason: string } | null;
    webUi: string;
  }>;
}

/** A client of the HTTP API. */
export function createRewindClient(options: RewindApiClientOptions): RewindApiClient {
  const base = options.url.replace(/\/$/, '');
  const doFetch = options.fetch ?? fetch;
  const request = async <T>(method: string, path: string, body?: unknown, key?: string): Promise<T> => {
    const response = await doFetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${options.token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(key ? { 'idempotency-key': key } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
    });
    const text = await response.text();
    let json: Record<string, unknown>;
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      throw new RewindApiError(response.status, 'bad answer', `not JSON: ${text.slice(0, 200)}`, {});
    }
    if (!response.ok) {
      const field = (name: string, fallback: string) => (typeof json[name] === 'string' ? json[name] : fallback);
      throw new RewindApiError(response.status, field('error', 'error'), field('reason', text), json);
    }
    return json as T;
  };
  const id = (workflowId: string) => encodeURIComponent(workflowId);

  return {
    startRollback: (input, { idempotencyKey } = {}) => request<Started>('POST', '/v1/rollbacks', input, idempotencyKey),
    approve: (workflowId, { idempotencyKey, ...body } = {}) =>
      request<Decided>('POST', `/v1/rollbacks/${id(workflowId)}/approve`, body, idempotencyKey),
    reject: (workflowId, { idempotencyKey, ...body } = {}) =>
      request<Decided>('POST', `/v1/rollbacks/${id(workflowId)}/reject`, body, idempotencyKey),
    accept: (workflowId, { idempotencyKey, ...body } = {}) =>
      request<Decided>('POST', `/v1/rollbacks/${id(workflowId)}/accept`, body, idempotencyKey),
    compensate: (workflowId, { idempotencyKey, ...body } = {}) =>
      request<Decided>('POST', `/v1/rollbacks/${id(workflowId)}/compensate`, body, idempotencyKey),
    cancel: (workflowId, { idempotencyKey, ...body } = {}) =>
      request<Decided>('POST', `/v1/rollbacks/${id(workflowId)}/cancel`, body, idempotencyKey),
    status: (workflowId) => request('GET', `/v1/rollbacks/${id(workflowId)}`),
    list: ({ environment, limit } = {}) => {
      const query = new URLSearchParams({
        ...(environment ? { environment } : {}),
        ...(limit ? { limit: String(limit) } : {}),
      }).toString();
      return request('GET', `/v1/rollbacks${query ? `?${query}` : ''}`);
    },
    startDriftScan: (input = {}) => request('POST', '/v1/drift-scans', input),
    driftReport: (scanId) => request('GET', `/v1/drift-reports/${id(scanId)}`),
    watch(workflowId, { intervalMs = 1_000, signal } = {}) {
      return {
        async *[Symbol.asyncIterator]() {
          let last = '';
          for (;;) {
            signal?.throwIfAborted();
            const { status } = await request<RollbackView>('GET', `/v1/rollbacks/${id(workflowId)}`);
            const now = `${status.state}/${status.phase}`;
            if (now !== last) {
              last = now;
              yield status;
            }
            if (FINAL.has(status.state)) return;
            await new Promise((resolve) => setTimeout(resolve, intervalMs));
          }
        },
      };
    },
  };
}
