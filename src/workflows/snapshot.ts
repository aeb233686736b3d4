// snapshotWorkflow: one cross-section of one environment (all or chosen components).
import { proxyActivities, setHandler } from '@temporalio/workflow';
import type { ControlActivities } from '../activities/control';
import { snapshotStatusQuery } from '../domain/messages';
import type { CrossSectionResult, SnapshotRequest, SnapshotStatus } from '../domain/snapshot';
import { quick } from './activity-options';
import { takeCrossSection } from './cross-section';

const control = proxyActivities<ControlActivities>(quick);

export async function snapshotWorkflow(request: SnapshotRequest): Promise<CrossSectionResult> {
  const status: SnapshotStatus = { environment: request.environment, state: 'running', components: {} };
  setHandler(snapshotStatusQuery, () => status);
  try {
    const ctx = await control.resolveSnapshot(request);
    for (const c of ctx.components) status.components[c] = 'pending';
    const result = await takeCrossSection(
      ctx,
      {
        origin: request.origin,
        ...(request.version !== undefined ? { version: request.version } : {}),
        ...(request.reason !== undefined ? { reason: request.reason } : {}),
      },
      (component, state) => {
        status.components[component] = state;
      },
    );
    status.state = 'completed';
    status.crossSectionId = result.crossSectionId;
    return result;
  } catch (err) {
    status.state = 'failed';
    throw err;
  }
}
