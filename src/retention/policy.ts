// The manifest's `snapshots` section: cross-sections on a schedule, how long each tier keeps
// them, and when the repository is pruned and checked.
import { z } from 'zod';
import type { KeepPolicy } from '../domain/retention';
import { parseDuration } from '../manifest/duration';
import { durationField, nameField } from '../manifest/fields';
import { repositorySchema } from '../manifest/repository';

const keepSchema = z
  .strictObject({
    hourly: durationField('0s', '3650d')
      .default('7d')
      .describe('Hot tier: the newest scheduled cross-section of each hour, this far back. 0s: off.'),
    daily: durationField('0s', '3650d')
      .default('90d')
      .describe('Cold tier: the newest scheduled cross-section of each day, this far back.'),
    weekly: durationField('0s', '3650d')
      .default('365d')
      .describe('Archive tier: the newest scheduled cross-section of each ISO week, this far back.'),
    event: durationField('0s', '3650d')
      .default('90d')
      .describe('Cross-sections taken on request (rewind snapshot create, a deploy hook), from now.'),
    safety: durationField('0s', '3650d')
      .default('30d')
      .describe("Safety cross-sections of rollbacks that have ended, from now (a running rollback's are always kept)."),
    releases: z
      .int()
      .min(0)
      .max(1000)
      .default(3)
      .describe('The newest cross-section of each of the newest N versions is kept whatever its age.'),
    versions: z
      .array(z.string().min(1).max(200))
      .default([])
      .describe('Versions whose newest cross-section is kept whatever its age.'),
  })
  .prefault({});

export const snapshotsSectionSchema = z
  .strictObject({
    schedules: z
      .record(nameField, z.strictObject({ every: durationField('5m', '7d').describe('How often, e.g. 1h.') }))
      .default({})
      .describe('Cross-sections taken by Temporal Schedules, by environment (rewind schedules apply).'),
    keep: keepSchema.describe('Retention tiers: what `rewind snapshot forget` and the prune schedule keep.'),
    prune: z
      .strictObject({
        every: durationField('0s', '30d')
          .default('1d')
          .describe('Forget by the tiers, then restic prune, this often (0s: only by hand).'),
      })
      .prefault({}),
    check: z
      .strictObject({
        every: durationField('0s', '30d').default('1d').describe('restic check this often (0s: only by hand).'),
        readDataSubset: z
          .string()
          .regex(/^(\d{1,3}(\.\d+)?%|\d+\/\d+)$/, 'must be a percentage such as 10% or a part such as 1/7')
          .default('10%')
          .describe('What part of the data a reading check reads (restic check --read-data-subset).'),
        readDataEvery: durationField('0s', '90d')
          .default('7d')
          .describe('How often the check also reads that part of the data (0s: never).'),
      })
      .prefault({}),
    cold: repositorySchema
      .optional()
      .describe(
        'A second repository for the cold and archive tiers: the prune schedule copies them there (restic copy), keeps them there by the daily and weekly rules, and keeps only the hot tier of scheduled cross-sections here.',
      ),
  })
  .prefault({});

/** Repositories are named in metrics and the store: the manifest's `repository` is `primary`, `snapshots.cold` is `cold`. */
export const PRIMARY_REPOSITORY = 'primary';
export const COLD_REPOSITORY = 'cold';

export type SnapshotsSection = z.output<typeof snapshotsSectionSchema>;

export function keepPolicy(section: SnapshotsSection): KeepPolicy {
  const { keep } = section;
  return {
    hourlyMs: parseDuration(keep.hourly),
    dailyMs: parseDuration(keep.daily),
    weeklyMs: parseDuration(keep.weekly),
    eventMs: parseDuration(keep.event),
    safetyMs: parseDuration(keep.safety),
    releases: keep.releases,
    pinned: keep.versions,
  };
}
