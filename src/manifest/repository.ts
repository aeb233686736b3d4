// A restic repository in the manifest: where it is and where its password comes from. The
// manifest's `repository` holds every snapshot; `snapshots.cold` may hold the cold and archive tiers.
import { z } from 'zod';
import { envVarField, localPathField, localPathProblem } from './fields';

/** A restic repository given as a URL (`sftp:…`, `s3:…`, `rest:…`) rather than a local folder. */
export function isRepositoryUrl(p: string): boolean {
  return /^[a-z0-9]+:/i.test(p) && !p.startsWith('/');
}

export const repositorySchema = z
  .strictObject({
    path: z
      .string()
      .min(1)
      .superRefine((p, ctx) => {
        const problem = isRepositoryUrl(p) ? undefined : localPathProblem(p);
        if (problem) ctx.addIssue({ code: 'custom', message: `${p}: ${problem}` });
      })
      .describe('A restic repository (a directory, relative to the manifest, or a restic URL).'),
    passwordEnv: envVarField
      .optional()
      .describe('Environment variable holding the repository password. Default: REWIND_REPOSITORY_PASSWORD.'),
    passwordFile: localPathField.optional().describe('File holding the repository password.'),
  })
  .refine((r) => !(r.passwordEnv && r.passwordFile), 'set passwordEnv or passwordFile, not both');

export type RepositorySpec = z.output<typeof repositorySchema>;
