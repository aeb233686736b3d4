// Schema fields that the manifest and the component kinds' fragments share. Pure.
import { z } from 'zod';

// Environment and component names become task queue names and restic tags, so keep them plain.
export const NAME_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;
export const nameField = z
  .string()
  .regex(NAME_PATTERN, 'must start with a lowercase letter and hold only a-z, 0-9 and "-" (40 characters at most)');

export const envVarField = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be the name of an environment variable');

export const dependsOnField = z
  .array(nameField)
  .default([])
  .describe('Components of the same environment that must be rolled back before this one.');
