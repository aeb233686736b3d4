// What rewind exports to incident tooling: a client of the HTTP API (tokens, roles, audit), and
// the client that talks to Temporal directly (for the workers' own hosts), with their types.
export {
  createRewindClient,
  RewindApiError,
  type Decided,
  type RewindApiClient,
  type RewindApiClientOptions,
  type Started,
  type StartRollbackInput,
} from './client/api-client';
export { RewindClient, RequestError, type DecisionResult, type RollbackView } from './client/client';
export type { RollbackStatus, RollbackTarget, Phase, RollbackState } from './domain/rollback';
export type { DriftScanRequest, DriftScanSummary } from './domain/drift-scan';
