// Custom search attributes that make rollbacks findable in the Temporal Web UI, e.g.
// `RewindEnvironment = "production" AND RewindState = "awaiting-approval"`.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

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
