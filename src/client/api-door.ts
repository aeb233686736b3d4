// The rollback commands' door when the CLI is pointed at the HTTP API (`--api URL`, with
// REWIND_API_TOKEN): the same operations as RewindClient, through the API, so operators need
// no access to Temporal. The actor is the token's principal; `--as` is not sent.
import { FINAL_STATES, type RollbackRequest } from '../domain/rollback';
import { createRewindClient, RewindApiError, type RewindApiClient } from './api-client';
import { RequestError, type DecisionResult, type DecisionVerb, type RewindClient, type RollbackView } from './client';

/** What the rollback commands use, from RewindClient or from the API. */
export type RollbackDoor = Pick<
  RewindClient,
  'startRollback' | 'decide' | 'cancel' | 'rollbackView' | 'waitForPlan' | 'listRollbacks' | 'agentsMissing'
>;

/** A client of the API at `url`, as the token's principal; refused without a token. */
export function apiClientFor(url: string, token: string | undefined): RewindApiClient {
  if (!token) throw new RequestError('--api needs a token in REWIND_API_TOKEN (rewind tokens create --principal NAME)');
  return createRewindClient({ url, token });
}

/** An API refusal, as the CLI says any other: one line, exit 1. */
export function asRequestError(err: unknown): unknown {
  if (err instanceof RewindApiError && err.status < 500) return new RequestError(`${err.reason} (API ${err.status})`);
  return err;
}

export class ApiRollbackDoor implements RollbackDoor {
  private readonly api: RewindApiClient;

  constructor(url: string, token: string | undefined) {
    this.api = apiClientFor(url, token);
  }

  async startRollback(input: unknown, options: { requestId?: string } = {}) {
    const { requester: _requester, ...request } = input as RollbackRequest;
    try {
      const started = await this.api.startRollback(
        request,
        options.requestId ? { idempotencyKey: options.requestId } : {},
      );
      return { workflowId: started.workflowId, existing: started.existing, request: input as RollbackRequest };
    } catch (err) {
      throw asRequestError(err);
    }
  }

  async decide(
    workflowId: string,
    action: DecisionVerb,
    decision: { user: string; comment?: string; requestId?: string; acceptDataLoss?: boolean },
  ): Promise<DecisionResult> {
    const options = {
      ...(decision.comment ? { comment: decision.comment } : {}),
      ...(decision.requestId ? { idempotencyKey: decision.requestId } : {}),
    };
    try {
      if (action === 'accept' || action === 'compensate') return await this.api[action](workflowId, options);
      return action === 'approve'
        ? await this.api.approve(workflowId, {
            ...options,
            ...(decision.acceptDataLoss ? { acceptDataLoss: true } : {}),
          })
        : await this.api.reject(workflowId, options);
    } catch (err) {
      // The run refused: the answer says where it is, as RewindClient's does.
      if (err instanceof RewindApiError && err.status === 409 && err.body.accepted === false)
        return { ...(err.body as unknown as DecisionResult), workflowId };
      throw asRequestError(err);
    }
  }

  async cancel(workflowId: string, by: { user: string; reason?: string; requestId?: string }): Promise<DecisionResult> {
    try {
      return await this.api.cancel(workflowId, {
        ...(by.reason ? { reason: by.reason } : {}),
        ...(by.requestId ? { idempotencyKey: by.requestId } : {}),
      });
    } catch (err) {
      throw asRequestError(err);
    }
  }

  async rollbackView(workflowId: string): Promise<RollbackView> {
    try {
      const { webUi: _link, ...view } = await this.api.status(workflowId);
      return view;
    } catch (err) {
      throw asRequestError(err);
    }
  }

  /** Until the run awaits approval or ended (the API has no long poll: it asks every 300 ms). */
  async waitForPlan(workflowId: string, { intervalMs = 300 }: { intervalMs?: number } = {}): Promise<RollbackView> {
    for (;;) {
      const view = await this.rollbackView(workflowId);
      if (view.status.state === 'awaiting-approval' || FINAL_STATES.includes(view.status.state)) return view;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }

  async listRollbacks(environment?: string, limit = 20) {
    try {
      const { runs } = await this.api.list({ ...(environment ? { environment } : {}), limit });
      return runs as unknown as Awaited<ReturnType<RewindClient['listRollbacks']>>;
    } catch (err) {
      throw asRequestError(err);
    }
  }

  /** The API does not say whether agents poll; the run's own status will. */
  agentsMissing(): Promise<string[]> {
    return Promise.resolve([]);
  }
}
