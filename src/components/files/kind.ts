// The `files` kind, pure half: a directory of config files, pickle files or anything else.
import { z } from 'zod';
import { dependsOnField, localPathField } from '../../manifest/fields';
import type { FingerprintSummary, KindDetails } from '../core';
import type { ComponentKind } from '../kind';
import { count, formatBytes } from '../../domain/format';

export const filesComponentSchema = z
  .strictObject({
    kind: z.literal('files'),
    path: localPathField.describe('Directory that holds the files. Relative paths are relative to the manifest.'),
    format: z
      .enum(['config', 'pickle', 'any'])
      .default('any')
      .describe('What the files are: config files, Python pickle files (never unpickled) or anything.'),
    dependsOn: dependsOnField,
    description: z.string().optional(),
  })
  .describe('A directory of files (config files, pickle files, any directory).');

export type FilesComponent = z.output<typeof filesComponentSchema>;

export interface FilesFingerprintDetails extends KindDetails {
  kind: 'files';
  files: number;
  dirs: number;
  symlinks: number;
}

export interface FilesPlanDetails extends KindDetails {
  kind: 'files';
  /** Entries whose content is equal but whose mode bits differ. */
  modeChanged: number;
}

export interface FilesRestoreDetails extends KindDetails {
  kind: 'files';
  /**
   * `targeted`: only the paths whose content differed were restored; `whole-tree`: restic
   * restored the whole snapshot (the outcome's note says why).
   */
  method: 'targeted' | 'whole-tree';
  filesRestored: number;
  filesSkipped: number;
  filesDeleted: number;
  /** Entries moved into place from what prepare staged (counted in filesRestored). */
  staged?: number;
}

const detailsOf = <D extends KindDetails>(value: { details?: KindDetails | undefined }): D | undefined =>
  value.details?.kind === 'files' ? (value.details as D) : undefined;

export const filesKind = {
  name: 'files',
  schema: filesComponentSchema,
  plansFromLiveState: true,
  strategies: [],
  location: (component) => component.path,
  resolvePaths: (component, resolve) => ({ ...component, path: resolve(component.path) }),
  localFolders: (component) => [{ key: 'path', dir: component.path, written: true }],
  refuse: () => undefined,
  stepOptions: () => ({}),
  legacyDetails(tags) {
    const stats = tags.get('fpstats')?.split('.').map(Number);
    if (tags.has('tables') || stats?.length !== 4 || !stats.every(Number.isFinite)) return undefined;
    return { kind: 'files', files: stats[0]!, dirs: stats[1]!, symlinks: stats[2]! } satisfies FilesFingerprintDetails;
  },
  present: {
    contents(fingerprint: FingerprintSummary) {
      const d = detailsOf<FilesFingerprintDetails>(fingerprint);
      if (!d) return formatBytes(fingerprint.bytes);
      return `${count(d.files, 'file')}, ${count(d.dirs, 'dir')}, ${count(d.symlinks, 'link')}, ${formatBytes(fingerprint.bytes)}`;
    },
    planCounts(plan) {
      const modeChanged = detailsOf<FilesPlanDetails>(plan)?.modeChanged ?? 0;
      return modeChanged ? ` (${modeChanged} mode only)` : '';
    },
    outcome(outcome) {
      const d = detailsOf<FilesRestoreDetails>(outcome);
      const note = outcome.note ? `: ${outcome.note}` : '';
      if (!d) return `restored${note}`;
      const staged = d.staged ? `, ${d.staged} moved in from staging` : '';
      return `${count(d.filesRestored, 'file')} restored (${formatBytes(outcome.bytesWritten)}), ${d.filesDeleted} deleted, ${d.method}${staged}${note}`;
    },
  },
} satisfies ComponentKind<FilesComponent>;
