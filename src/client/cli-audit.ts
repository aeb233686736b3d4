// The CLI's own door (Temporal directly, without --api): what it starts, decides and cancels
// goes to the audit log as door `cli`. Nothing authenticates the actor here (it is --as,
// REWIND_USER or the login name), and the row says so; the API is the door that proves who
// acted (README: "Make the API the only door"). The row is written after the action: a store
// that cannot be reached is warned about on stderr, and never hides or undoes what happened.
import { appendAudit, auditKey, planEvidence, type AuditEntry } from '../audit/audit-log';
import type { RollbackRequest } from '../domain/rollback';
import { repositoryPassword } from '../manifest/load';
import type { Manifest } from '../manifest/schema';
import { openProjectStore } from '../store/project-store';
import type { RollbackDoor } from './api-door';
import { RequestError, type DecisionResult, type DecisionVerb, type RewindClient } from './client';

const IDENTITY = 'claimed: --as, REWIND_USER or the login name; not authenticated';

/** Writes one row; the default opens the project store for it. */
export type AuditWriter = (entry: AuditEntry) => Promise<void>;

export function projectStoreAuditWriter(manifest: Manifest, env: NodeJS.ProcessEnv = process.env): AuditWriter {
  return async (entry) => {
    const key = auditKey(repositoryPassword(manifest, env));
    const store = await openProjectStore({
      databaseUrl: env.DATABASE_URL,
      dataDir: manifest.dataDir,
      servedOnly: true,
    });
    try {
      await appendAudit(store, key, entry);
    } finally {
      await store.close();
    }
  };
}

export class AuditedCliDoor implements RollbackDoor {
  constructor(
    private readonly client: RewindClient,
    private readonly write: AuditWriter,
    private readonly warn: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  ) {}

  private async record(entry: Omit<AuditEntry, 'door'>): Promise<void> {
    try {
      await this.write({ ...entry, door: 'cli', detail: { ...entry.detail, identity: IDENTITY } });
    } catch (err) {
      this.warn(
        `warning: ${entry.action} of ${entry.runId ?? entry.environment ?? '?'} happened, but the audit log could not be written: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  async startRollback(input: unknown, options: { requestId?: string } = {}) {
    const started = await this.client.startRollback(input, options);
    // A keyed request that found its run started nothing: the first one was recorded.
    if (!started.existing) {
      const r: RollbackRequest = started.request;
      await this.record({
        actor: r.requester,
        action: 'rollback.start',
        outcome: 'accepted',
        runId: started.workflowId,
        environment: r.environment,
        ...(r.reason ? { reason: r.reason } : {}),
        detail: { target: r.target, dryRun: r.dryRun, ...(options.requestId ? { requestId: options.requestId } : {}) },
      });
    }
    return started;
  }

  async decide(
    workflowId: string,
    action: DecisionVerb,
    decision: { user: string; comment?: string; requestId?: string; acceptDataLoss?: boolean },
  ): Promise<DecisionResult> {
    const outcome = await this.client.decide(workflowId, action, decision);
    await this.recordDecision(`rollback.${action}`, decision.user, outcome);
    return outcome;
  }

  async cancel(workflowId: string, by: { user: string; reason?: string; requestId?: string }) {
    try {
      const outcome = await this.client.cancel(workflowId, by);
      await this.recordDecision('rollback.cancel', by.user, outcome);
      return outcome;
    } catch (err) {
      // The run refused (a RequestError says why); anything else (Temporal unreachable) is no decision.
      if (!(err instanceof RequestError)) throw err;
      await this.record({
        actor: by.user,
        action: 'rollback.cancel',
        outcome: 'refused',
        runId: workflowId,
        reason: err.message.slice(0, 2000),
      });
      throw err;
    }
  }

  /** The decision as the run answered it, with the plan the actor was shown. */
  private async recordDecision(action: string, user: string, outcome: DecisionResult): Promise<void> {
    const status = await this.client
      .rollbackView(outcome.workflowId)
      .then((v) => v.status)
      .catch(() => undefined);
    await this.record({
      actor: user,
      action,
      outcome: outcome.accepted ? 'accepted' : 'refused',
      runId: outcome.workflowId,
      ...(status ? { environment: status.environment } : {}),
      ...(outcome.reason ? { reason: outcome.reason.slice(0, 2000) } : {}),
      ...(status?.plan ? { evidence: { plan: planEvidence(status.plan) } } : {}),
    });
  }

  rollbackView(workflowId: string) {
    return this.client.rollbackView(workflowId);
  }
  waitForPlan(...args: Parameters<RewindClient['waitForPlan']>) {
    return this.client.waitForPlan(...args);
  }
  listRollbacks(...args: Parameters<RewindClient['listRollbacks']>) {
    return this.client.listRollbacks(...args);
  }
  agentsMissing(...args: Parameters<RewindClient['agentsMissing']>) {
    return this.client.agentsMissing(...args);
  }
}
