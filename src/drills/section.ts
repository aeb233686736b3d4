// The manifest's `drills` section (seed 6.7): regular rollback drills on the regression
// environment, partial (one component) monthly and full quarterly by default, each measured
// against the time-to-roll-back goal.
import { z } from 'zod';
import { durationField, nameField } from '../manifest/fields';

export const drillsSectionSchema = z
  .strictObject({
    environment: nameField
      .optional()
      .describe('Where drills run. Default: "regression", when the manifest has it; else no drills.'),
    partial: z
      .strictObject({
        every: durationField('0s', '365d')
          .default('30d')
          .describe('A partial drill (one component) this often; 0s: by hand only.'),
        components: z
          .array(nameField)
          .min(1)
          .optional()
          .describe('The components partial drills take in turn. Default: every component, in turn.'),
      })
      .prefault({}),
    full: z
      .strictObject({
        every: durationField('0s', '365d')
          .default('90d')
          .describe('A full drill (every component) this often; 0s: by hand only.'),
      })
      .prefault({}),
    mttrGoal: durationField('1s', '1d')
      .default('15m')
      .describe('The time to roll back a drill is measured against (its rollback, start to end).'),
    acceptDataLoss: z
      .boolean()
      .default(true)
      .describe(
        'Drills approve themselves, also plans that lose data (a database restore): regression data is not kept.',
      ),
  })
  .prefault({});

export type DrillsSection = z.output<typeof drillsSectionSchema>;

/** Where drills run: the section's environment, else regression when the manifest has it. */
export function drillEnvironment(manifest: {
  drills: DrillsSection;
  environments: Record<string, unknown>;
}): string | undefined {
  if (manifest.drills.environment) return manifest.drills.environment;
  return 'regression' in manifest.environments ? 'regression' : undefined;
}
