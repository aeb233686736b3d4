// Taking a cross-section from workflow code: one snapshot per component, in parallel, each on
// the environment's agent. Shared by snapshotWorkflow and the rollback's safety cross-section.
import { proxyActivities, uuid4, workflowInfo } from '@temporalio/workflow';
import type { AgentActivities } from '../activities/agent';
import { crossSectionId, type ComponentSnapshot } from '../domain/cross-section';
import { componentTaskQueue } from '../domain/hosts';
import type { CrossSectionRequest, CrossSectionResult, SnapshotContext } from '../domain/snapshot';
import { transfer } from './activity-options';

export async function takeCrossSection(
  ctx: SnapshotContext,
  request: CrossSectionRequest,
  onComponent: (component: string, state: 'running' | 'done' | 'failed', snapshot?: ComponentSnapshot) => void = () =>
    undefined,
): Promise<CrossSectionResult> {
  const id = request.crossSectionId ?? crossSectionId(new Date(), uuid4());
  const entries = await Promise.all(
    ctx.components.map(async (component): Promise<[string, ComponentSnapshot]> => {
      const agent = proxyActivities<AgentActivities>({
        ...transfer(componentTaskQueue(ctx.envTaskQueue, component), ctx.heartbeatTimeoutMs),
        activityId: `snapshot/${component}/${id}`,
      });
      onComponent(component, 'running');
      try {
        const snapshot = await agent.snapshotComponent({
          environment: ctx.environment,
          component,
          crossSectionId: id,
          members: ctx.components,
          origin: request.origin,
          workflowId: workflowInfo().workflowId,
          ...(request.version !== undefined ? { version: request.version } : {}),
          ...(request.reason !== undefined ? { reason: request.reason } : {}),
          ...(request.unlessAt?.[component] ? { unlessAt: request.unlessAt[component] } : {}),
        });
        onComponent(component, 'done', snapshot);
        return [component, snapshot];
      } catch (err) {
        onComponent(component, 'failed');
        throw err;
      }
    }),
  );
  return {
    crossSectionId: id,
    environment: ctx.environment,
    ...(request.version !== undefined ? { version: request.version } : {}),
    components: Object.fromEntries(entries),
  };
}
