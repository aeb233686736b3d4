// npm run bench:retention: the repository after 30 simulated days of hourly cross-sections of the
// demo (its config, and a model artifact retrained every hour), without retention and then with
// the default tiers applied (hot: hourly for 7 days; cold: daily for 90; archive: weekly for a
// year) and pruned, in the same run. Each cross-section is stored as an agent stores it (a tagged
// restic snapshot per component, its listing inline), backdated with `restic backup --time`.
//
//   REWIND_BENCH_DAYS=30 REWIND_BENCH_MODEL_KB=256 npm run bench:retention
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FilesFingerprintDetails } from '../src/components/files/kind';
import { crossSectionId, encodeTags } from '../src/domain/cross-section';
import { retentionVerdicts } from '../src/domain/retention';
import { loadManifest } from '../src/manifest/load';
import { keepPolicy } from '../src/retention/policy';
import { pruneRepository, repositoryBytes } from '../src/retention/apply';
import { inlineListing } from '../src/snapshots/inline-listing';
import { openSnapshotStore } from '../src/snapshots/open';
import { writeDemo } from '../src/workers/demo';
import { say } from './stack';

const DAYS = Number(process.env.REWIND_BENCH_DAYS ?? 30);
const MODEL_KB = Number(process.env.REWIND_BENCH_MODEL_KB ?? 256);
const HOUR = 3600_000;
const DETAILS: FilesFingerprintDetails = { kind: 'files', files: 1, dirs: 0, symlinks: 0 };
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'rewind-bench-retention-'));
  try {
    const manifestFile = path.join(work, 'rewind.yaml');
    await writeDemo(manifestFile);
    const { manifest } = loadManifest(manifestFile, { checkPaths: 'all' });
    const restic = openSnapshotStore(manifest).restic;
    await restic.ensureInitialized();
    const components = manifest.environments.production!.components as Record<string, { path: string }>;
    const config = components.config!.path;
    const models = components.models!.path;
    const model = path.join(models, 'classifier.pkl');
    const original = path.join(work, 'classifier.pkl.original');
    copyFileSync(model, original);

    const hours = DAYS * 24;
    const end = Date.now() - (Date.now() % HOUR);
    say(
      `${hours} hourly cross-sections of the demo's production (config, models; ${MODEL_KB} KiB of model retrained each hour) …`,
    );
    const started = Date.now();
    for (let h = hours - 1; h >= 0; h--) {
      const at = new Date(end - h * HOUR);
      const id = crossSectionId(at, randomBytes(2).toString('hex'));
      writeFileSync(path.join(config, 'generation.yaml'), `generation: ${hours - h}\nat: ${at.toISOString()}\n`);
      // A retrained model: new weights, incompressible, every hour.
      writeFileSync(path.join(models, 'weights.bin'), randomBytes(MODEL_KB * 1024));
      await Promise.all(
        ['config', 'models'].map((component) =>
          restic.run(
            [
              'backup',
              '.',
              '--host',
              'production',
              '--time',
              at.toISOString().slice(0, 19).replace('T', ' '),
              ...encodeTags({
                environment: 'production',
                component,
                crossSectionId: id,
                role: 'data',
                origin: 'schedule',
                members: ['config', 'models'],
                fingerprint: { digest: 'f'.repeat(64), bytes: 1, entries: 1, details: DETAILS },
                inlineListing: inlineListing('[]')!,
              }).flatMap((t) => ['--tag', t]),
            ],
            { cwd: component === 'config' ? config : models, extraEnv: { TZ: 'UTC' } },
          ),
        ),
      );
      if ((hours - h) % 120 === 0) say(`  ${hours - h}/${hours} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
    copyFileSync(original, model);

    const without = await repositoryBytes(restic);
    const sections = await openSnapshotStore(manifest).crossSections('production');
    const verdicts = retentionVerdicts(sections, keepPolicy(manifest.snapshots), {
      now: new Date(end),
      runningWorkflows: new Set(),
      targets: new Map(),
    });
    const gone = verdicts.filter((v) => !v.keep).map((v) => v.id);
    const ids = (await restic.snapshots(['rewind']))
      .filter((s) => gone.includes(s.labels.crossSectionId))
      .map((s) => s.id);
    const forgetStarted = Date.now();
    for (let i = 0; i < ids.length; i += 200) await restic.forget(ids.slice(i, i + 200));
    const pruned = await pruneRepository(restic, false);
    const maintenanceMs = Date.now() - forgetStarted;
    const tiers = (tier: string) => verdicts.filter((v) => v.keep && v.tier === tier).length;

    say('');
    say(`| repository after ${DAYS} days of hourly cross-sections | cross-sections | size on disk |`);
    say('| --- | --- | --- |');
    say(`| without retention | ${sections.length} | ${mb(without)} |`);
    say(
      `| with the default tiers, forgotten and pruned | ${verdicts.length - gone.length} (hot ${tiers('hourly')}, cold ${tiers('daily')}, archive ${tiers('weekly')}) | ${mb(pruned.bytesAfter)} |`,
    );
    say('');
    say(
      `forget and prune took ${(maintenanceMs / 1000).toFixed(1)} s; the simulation ${((forgetStarted - started) / 1000).toFixed(0)} s`,
    );
    if (!(pruned.bytesAfter < without)) throw new Error('retention did not make the repository smaller');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
