// The `files` kind, pure half: a directory of config files, pickle files or anything else.
import { z } from 'zod';
import { dependsOnField, hostsField, durationField, localPathField } from '../../manifest/fields';
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
    ansible: z
      .strictObject({
        playbook: localPathField.describe('The playbook that writes these files. Relative to the manifest.'),
        inventory: z
          .string()
          .min(1)
          .optional()
          .describe('Inventory file or host list (ansible-playbook -i); default: localhost with a local connection.'),
        variable: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an Ansible variable name')
          .default('release')
          .describe('The extra variable that carries the release to apply.'),
        extraVars: z.record(z.string(), z.string()).default({}).describe('More extra variables, as given.'),
        command: z.array(z.string().min(1)).min(1).default(['ansible-playbook']),
        timeout: durationField('1s', '2h').default('10m'),
        cwd: localPathField.optional().describe('Folder the playbook runs in (ansible.cfg, roles).'),
      })
      .optional()
      .describe(
        'Apply the config with ansible-playbook and the target release instead of restoring the snapshot: plan shows --check --diff.',
      ),
    dependsOn: dependsOnField,
    hosts: hostsField,
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
  method: 'targeted' | 'whole-tree' | 'ansible';
  /** ansible: the release the playbook applied. */
  release?: string;
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
  driftAspects: [
    'content',
    'type',
    'mode',
    'link',
    'unreadable',
    'key',
    'line',
    'unparseable',
    'truncated',
    'pickle',
    'pickle-global',
    'pickle-stream',
  ],
  location: (component) => component.path,
  resolvePaths: (component, resolve) => ({
    ...component,
    path: resolve(component.path),
    ...(component.ansible
      ? {
          ansible: {
            ...component.ansible,
            playbook: resolve(component.ansible.playbook),
            // A host list ("web1,web2,") is not a path.
            ...(component.ansible.inventory && !component.ansible.inventory.includes(',')
              ? { inventory: resolve(component.ansible.inventory) }
              : {}),
            ...(component.ansible.cwd ? { cwd: resolve(component.ansible.cwd) } : {}),
          },
        }
      : {}),
  }),
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
      if (d.method === 'ansible') return `ansible-playbook applied release ${d.release ?? '?'}${note}`;
      const staged = d.staged ? `, ${d.staged} moved in from staging` : '';
      return `${count(d.filesRestored, 'file')} restored (${formatBytes(outcome.bytesWritten)}), ${d.filesDeleted} deleted, ${d.method}${staged}${note}`;
    },
  },
} satisfies ComponentKind<FilesComponent>;
