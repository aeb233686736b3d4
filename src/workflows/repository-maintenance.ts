// repositoryMaintenanceWorkflow: what the maintenance schedules run on the control worker. `prune`
// forgets the cross-sections the retention tiers drop, then removes the data nothing references;
// `check` runs restic check (reading part of the data when due) and records the result.
import { proxyActivities } from '@temporalio/workflow';
import type { CheckResult, RepositoryActivities, RetentionSummary } from '../activities/repository';
import { quick } from './activity-options';

export interface MaintenanceRequest {
  task: 'prune' | 'check';
}

export interface MaintenanceResult {
  retention?: RetentionSummary;
  prune?: { bytesBefore: number; bytesAfter: number };
  check?: CheckResult;
}

/** Forget, prune and check hold the repository's lock for minutes on a large one: heartbeats show they live. */
const repository = proxyActivities<RepositoryActivities>({
  ...quick,
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '1 minute',
  retry: { ...quick.retry, maximumAttempts: 3 },
});

export async function repositoryMaintenanceWorkflow(request: MaintenanceRequest): Promise<MaintenanceResult> {
  if (request.task === 'check') return { check: await repository.checkRepository() };
  const retention = await repository.forgetByRetention();
  const prune = await repository.pruneSnapshots();
  return { retention, prune };
}
