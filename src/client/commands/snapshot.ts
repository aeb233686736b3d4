// `rewind snapshot create|list|show|forget|prune`: take, list and retire cross-sections.
import { terminalSafe } from '../../domain/display-text';
import type { Command } from 'commander';
import { CROSS_SECTION_ID_PATTERN } from '../../domain/cross-section';
import { count, formatBytes, textTable } from '../../domain/format';
import { applyRetention, pruneRepository, type RetentionReport } from '../../retention/apply';
import { openColdRepository, openSnapshotStore } from '../../snapshots/open';
import { checkAgainstManifest, RequestError } from '../client';
import { describeContents, renderCrossSection, renderCrossSections } from '../render';
import { action, currentUser, list, manifestOf, nonEmpty, print, rewindClient } from './command-context';
import { warnWithoutAgent } from './rollback';

export function registerSnapshotCommands(program: Command): void {
  const snapshot = program
    .command('snapshot')
    .description('take and list cross-sections (snapshots of an environment)');

  snapshot
    .command('create')
    .description('take a cross-section of an environment')
    .requiredOption('--env <name>', 'environment')
    .option('--version <label>', 'release version label, e.g. v1.4.2', nonEmpty('--version'))
    .option('--reason <text>', 'why, for the record')
    .option('--components <list>', 'only these components (comma-separated)', list)
    .option('--wait', 'wait until the cross-section is taken')
    .option('--as <user>', 'who asks (default: $REWIND_USER or your login)', nonEmpty('--as'))
    .action(
      action(
        async (
          opts: { env: string; version?: string; reason?: string; components?: string[]; wait?: boolean; as?: string },
          cmd: Command,
        ) => {
          const client = await rewindClient(cmd);
          const handle = await client.startSnapshot({
            environment: opts.env,
            requester: currentUser(opts.as),
            ...(opts.version ? { version: opts.version } : {}),
            ...(opts.reason ? { reason: opts.reason } : {}),
            ...(opts.components ? { components: opts.components } : {}),
          });
          await warnWithoutAgent(client, opts.env);
          if (!opts.wait) {
            print(
              cmd,
              { workflowId: handle.workflowId },
              () => `started ${handle.workflowId}; add --wait to wait for the cross-section id`,
            );
            return;
          }
          const result = await client.snapshotResult(handle.workflowId);
          print(cmd, { workflowId: handle.workflowId, ...result }, () =>
            [
              `cross-section ${result.crossSectionId} of ${result.environment}${result.version ? ` (version ${terminalSafe(result.version)})` : ''}`,
              ...Object.values(result.components).map(
                (c) =>
                  `  ${terminalSafe(c.component)}: snapshot ${c.snapshotId.slice(0, 8)}, ${describeContents(c.fingerprint)}`,
              ),
            ].join('\n'),
          );
        },
      ),
    );

  snapshot
    .command('list')
    .description("list an environment's cross-sections, newest first")
    .requiredOption('--env <name>', 'environment')
    .option('--all', 'include safety cross-sections taken before rollbacks')
    .action(
      action(async (opts: { env: string; all?: boolean }, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        checkAgainstManifest(manifest, opts.env);
        const sections = (await openSnapshotStore(manifest).crossSections(opts.env)).filter(
          (s) => opts.all || (s.origin !== 'safety' && s.origin !== 'dry-run'),
        );
        print(cmd, sections, () => renderCrossSections(sections));
      }),
    );

  snapshot
    .command('show <id>')
    .description('show one cross-section: its components, snapshots and fingerprints')
    .option('--env <name>', 'only look in this environment (cross-section ids are unique, so it is not needed)')
    .action(
      action(async (id: string, opts: { env?: string }, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        if (opts.env !== undefined) checkAgainstManifest(manifest, opts.env);
        if (!CROSS_SECTION_ID_PATTERN.test(id)) {
          throw new RequestError(`"${terminalSafe(id)}" is not a cross-section id (like xs-20261128-130641-a1b2)`);
        }
        const found = await openSnapshotStore(manifest).crossSectionById(id);
        const section = opts.env === undefined || found?.environment === opts.env ? found : undefined;
        if (!section) {
          const where = opts.env ? ` in ${opts.env}` : '';
          throw new RequestError(`no cross-section ${id}${where} (rewind snapshot list --env ENV)`);
        }
        print(cmd, section, () => renderCrossSection(section));
      }),
    );

  snapshot
    .command('fetch <id>')
    .description('bring a cross-section back from the cold repository (snapshots.cold), so a rollback can target it')
    .action(
      action(async (id: string, _opts: unknown, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        if (!CROSS_SECTION_ID_PATTERN.test(id))
          throw new RequestError(`"${terminalSafe(id)}" is not a cross-section id (like xs-20261128-130641-a1b2)`);
        const cold = openColdRepository(manifest);
        if (!cold) throw new RequestError('the manifest has no cold repository (snapshots.cold)');
        const store = openSnapshotStore(manifest);
        const present = await store.crossSectionById(id);
        if (present) {
          print(cmd, { crossSectionId: id, fetched: false }, () => `${id} is already in the repository`);
          return;
        }
        const snapshots = (await cold.snapshots(['rewind', `xs=${id}`])).map((s) => s.id);
        if (snapshots.length === 0) throw new RequestError(`no cross-section ${id} in the cold repository`);
        await store.restic.copyFrom(cold, snapshots);
        const section = await store.crossSectionById(id);
        print(cmd, { crossSectionId: id, fetched: true, section }, () =>
          [`fetched ${id} from the cold repository`, ...(section ? [renderCrossSection(section)] : [])].join('\n'),
        );
      }),
    );

  snapshot
    .command('forget')
    .description('forget the cross-sections the retention tiers no longer keep (snapshots.keep in the manifest)')
    .option('--env <name>', 'only this environment (default: all)')
    .option('--dry-run', 'say what would be forgotten and why, and change nothing')
    .option('--all', 'list every verdict, kept ones too')
    .addHelpText(
      'after',
      "\nNever forgotten: cross-sections of workflows still running (a rollback's safety snapshot), what a\n" +
        'running rollback targets, and the newest cross-section of the newest snapshots.keep.releases versions\n' +
        'and of snapshots.keep.versions. The data stays in the repository until `rewind snapshot prune`.',
    )
    .action(
      action(async (opts: { env?: string; dryRun?: boolean; all?: boolean }, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        if (opts.env !== undefined) checkAgainstManifest(manifest, opts.env);
        const client = await rewindClient(cmd);
        const report = await applyRetention({
          client: client.client,
          manifest,
          restic: openSnapshotStore(manifest).restic,
          cold: openColdRepository(manifest),
          dryRun: Boolean(opts.dryRun),
          ...(opts.env ? { environments: [opts.env] } : {}),
        });
        print(cmd, report, () => renderRetention(report, Boolean(opts.all)));
      }),
    );

  snapshot
    .command('prune')
    .description(
      'forget what the retention tiers no longer keep, then remove the data nothing references (restic prune)',
    )
    .option('--dry-run', 'say what would be forgotten and removed, and change nothing')
    .action(
      action(async (opts: { dryRun?: boolean }, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        const client = await rewindClient(cmd);
        const restic = openSnapshotStore(manifest).restic;
        const cold = openColdRepository(manifest);
        const dryRun = Boolean(opts.dryRun);
        // Progress on stderr: a prune of a large repository takes minutes.
        const step = (text: string) => process.stderr.write(`${text} …\n`);
        step(dryRun ? 'deciding what the retention tiers drop' : 'forgetting what the retention tiers drop');
        const retention = await applyRetention({ client: client.client, manifest, restic, cold, dryRun });
        step(`restic prune${dryRun ? ' --dry-run' : ''} of the repository`);
        const pruned = await pruneRepository(restic, dryRun);
        if (cold) step(`restic prune${dryRun ? ' --dry-run' : ''} of the cold repository`);
        const coldPruned = cold ? await pruneRepository(cold, dryRun) : undefined;
        const sizes = (what: string, p: { bytesBefore: number; bytesAfter: number }) =>
          dryRun
            ? `would prune the ${what} (now ${formatBytes(p.bytesBefore)})`
            : `pruned the ${what}: ${formatBytes(p.bytesBefore)} → ${formatBytes(p.bytesAfter)}`;
        print(cmd, { ...retention, prune: pruned, ...(coldPruned ? { coldPrune: coldPruned } : {}) }, () =>
          [
            renderRetention(retention, false),
            sizes('repository', pruned),
            ...(coldPruned ? [sizes('cold repository', coldPruned)] : []),
          ].join('\n'),
        );
      }),
    );
}

function renderRetention(report: RetentionReport, all: boolean): string {
  const lines: string[] = [];
  for (const env of report.environments) {
    const verb = report.dryRun ? 'would forget' : 'forgot';
    const copied = env.copiedToCold
      ? `, ${report.dryRun ? 'would copy' : 'copied'} ${env.copiedToCold} to the cold repository`
      : '';
    lines.push(
      `${env.environment}: ${verb} ${count(env.forgotten, 'cross-section')} (${count(env.snapshotsForgotten, 'restic snapshot')}), kept ${env.kept}${copied}`,
    );
    const shown = env.verdicts.filter((v) => all || !v.keep);
    if (shown.length > 0)
      lines.push(
        textTable(
          ['CROSS-SECTION', 'TIME', 'ORIGIN', 'VERSION', 'VERDICT', 'WHY'],
          shown.map((v) =>
            [v.id, v.time.slice(0, 19), v.origin, v.version ?? '', v.keep ? 'keep' : 'forget', v.reason].map(
              terminalSafe,
            ),
          ),
        ),
      );
  }
  for (const env of report.cold ?? [])
    lines.push(
      `cold repository, ${env.environment}: ${report.dryRun ? 'would forget' : 'forgot'} ${env.forgotten}, kept ${env.kept}`,
    );
  return lines.join('\n');
}
