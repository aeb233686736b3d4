// Custom search attributes that make rollbacks findable in the Temporal Web UI, e.g.
// `RewindEnvironment = "production" AND RewindState = "awaiting-approval"`.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const environmentAttribute = defineSearchAttributeKey('RewindEnvironment', SearchAttributeType.KEYWORD);
export const phaseAttribute = defineSearchAttributeKey('RewindPhase', SearchAttributeType.KEYWORD);
export const stateAttribute = defineSearchAttributeKey('RewindState', SearchAttributeType.KEYWORD);
export const triggerAttribute = defineSearchAttributeKey('RewindTrigger', SearchAttributeType.KEYWORD);
export const targetAttribute = defineSearchAttributeKey('RewindTarget', SearchAttributeType.KEYWORD);

export const REWIND_SEARCH_ATTRIBUTES = [
  environmentAttribute,
  phaseAttribute,
  stateAttribute,
  triggerAttribute,
  targetAttribute,
] as const;
