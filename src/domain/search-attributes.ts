// Custom search attributes that make rollbacks findable in the Temporal Web UI, e.g.
// `RewindEnvironment = "production" AND RewindState = "awaiting-approval"`.
import {
  defineSearchAttributeKey,
  SearchAttributeType,
  type SearchAttributePair,
  type SearchAttributeUpdatePair,
} from '@temporalio/common';
import { targetKeyword, type RollbackRequest, type RollbackStatus } from './rollback';

export const environmentAttribute = defineSearchAttributeKey('RewindEnvironment', SearchAttributeType.KEYWORD);
export const phaseAttribute = defineSearchAttributeKey('RewindPhase', SearchAttributeType.KEYWORD);
export const stateAttribute = defineSearchAttributeKey('RewindState', SearchAttributeType.KEYWORD);
export const triggerAttribute = defineSearchAttributeKey('RewindTrigger', SearchAttributeType.KEYWORD);
export const targetAttribute = defineSearchAttributeKey('RewindTarget', SearchAttributeType.KEYWORD);
/** Set when the run starts: a dry run ends `completed` too, and should not be mistaken for one. */
export const dryRunAttribute = defineSearchAttributeKey('RewindDryRun', SearchAttributeType.BOOL);

export const REWIND_SEARCH_ATTRIBUTES = [
  environmentAttribute,
  phaseAttribute,
  stateAttribute,
  triggerAttribute,
  targetAttribute,
  dryRunAttribute,
] as const;

/** What a running rollback keeps current in its search attributes. */
export function rollbackSearchAttributes(s: RollbackStatus): SearchAttributeUpdatePair[] {
  return [
    { key: environmentAttribute, value: s.environment },
    { key: phaseAttribute, value: s.phase },
    { key: stateAttribute, value: s.state },
    { key: triggerAttribute, value: s.trigger },
    { key: targetAttribute, value: targetKeyword(s.target) },
  ];
}

/** What a rollback is started with: findable from its first moment, before it upserts its own. */
export function startingRollbackSearchAttributes(
  request: Pick<RollbackRequest, 'environment' | 'trigger' | 'target' | 'dryRun'>,
): SearchAttributePair[] {
  return [
    { key: environmentAttribute, value: request.environment },
    { key: phaseAttribute, value: 'decide' },
    { key: stateAttribute, value: 'running' },
    { key: triggerAttribute, value: request.trigger },
    { key: targetAttribute, value: targetKeyword(request.target) },
    { key: dryRunAttribute, value: request.dryRun },
  ];
}
