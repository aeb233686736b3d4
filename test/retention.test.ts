// Retention: the tiers' rules on whole cross-sections (hot hourly, cold daily, archive weekly),
// what is never forgotten, and `rewind snapshot forget|prune` on a real restic repository whose
// cross-sections carry the times the test gives them, with Temporal saying what runs.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { FilesFingerprintDetails } from '../src/components/files/kind';
import { crossSectionId, encodeTags, type CrossSection } from '../src/domain/cross-section';
import { retentionVerdicts, type KeepPolicy } from '../src/domain/retention';
import { loadManifest } from '../src/manifest/load';
import { openColdRepository, openSnapshotStore } from '../src/snapshots/open';
import type { ResticRepository } from '../src/snapshots/restic';
import { inlineListing } from '../src/snapshots/inline-listing';
import { runCli, TEST_PASSWORD } from './support/harness';
import { tempDir } from './support/temp';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const NOW = new Date('2026-11-30T12:30:00Z');
const FILES_DETAILS: FilesFingerprintDetails = { kind: 'files', files: 1, dirs: 0, symlinks: 0 };

const POLICY: KeepPolicy = {
  hourlyMs: 7 * DAY,
  dailyMs: 90 * DAY,
  weeklyMs: 365 * DAY,
  eventMs: 90 * DAY,
  safetyMs: 30 * DAY,
  releases: 3,
  pinned: [],
};
const NOTHING_RUNS = { now: NOW, runningWorkflows: new Set<string>(), targets: new Map<string, string>() };

let serial = 0;
function section(over: Partial<CrossSection> & { at: Date }): CrossSection {
  serial += 1;
  const { at, ...rest } = over;
  return {
    id: crossSectionId(at, (serial % 0x10000).toString(16).padStart(4, '0')),
    environment: 'production',
    time: at.toISOString(),
    origin: 'schedule',
    members: ['config'],
    components: {},
    complete: true,
    ...rest,
  };
}

describe('retention tiers', () => {
  it('keeps 30 days of hourly cross-sections as the newest of each hour for 7 days, then of each day', () => {
    const sections = Array.from({ length: 30 * 24 }, (_, i) => section({ at: new Date(NOW.getTime() - i * HOUR) }));
    const verdicts = retentionVerdicts(sections, POLICY, NOTHING_RUNS);
    const kept = verdicts.filter((v) => v.keep);
    // 7 days of hours (169 hour buckets within 7 d of the newest, both ends), then one per day.
    expect(kept.filter((v) => v.tier === 'hourly')).toHaveLength(7 * 24 + 1);
    const daily = kept.filter((v) => v.tier === 'daily');
    expect(daily.length).toBeGreaterThanOrEqual(22);
    expect(daily.length).toBeLessThanOrEqual(23);
    // Each kept daily one is the newest of its day: 23:30 UTC.
    expect(daily.every((v) => v.time.endsWith('T23:30:00.000Z'))).toBe(true);
    expect(kept.length).toBeLessThan(sections.length / 3);
    expect(verdicts.find((v) => !v.keep)?.reason).toMatch(/older than every tier keeps, or not the newest/);
  });

  it('keeps the newest of each ISO week for the archive tier, and nothing older than a year', () => {
    const sections = Array.from({ length: 400 }, (_, i) => section({ at: new Date(NOW.getTime() - i * DAY) }));
    const verdicts = retentionVerdicts(sections, POLICY, NOTHING_RUNS);
    const weekly = verdicts.filter((v) => v.tier === 'weekly');
    expect(weekly.length).toBeGreaterThanOrEqual(39);
    // ISO weeks end on Sunday: each kept weekly one is the newest of its week.
    expect(weekly.every((v) => new Date(v.time).getUTCDay() === 0)).toBe(true);
    expect(verdicts.filter((v) => Date.parse(v.time) < NOW.getTime() - 366 * DAY).every((v) => !v.keep)).toBe(true);
  });

  it('counts the tiers from the newest scheduled cross-section, so a stopped schedule does not drain the history', () => {
    const stoppedAt = NOW.getTime() - 200 * DAY;
    const sections = Array.from({ length: 48 }, (_, i) => section({ at: new Date(stoppedAt - i * HOUR) }));
    const kept = retentionVerdicts(sections, POLICY, NOTHING_RUNS).filter((v) => v.keep);
    expect(kept).toHaveLength(48);
  });

  it('never forgets what runs, what a running rollback targets, or the newest releases', () => {
    const old = new Date(NOW.getTime() - 400 * DAY);
    const running = section({ at: old, origin: 'safety', workflowId: 'rollback-production-1' });
    const target = section({ at: old, origin: 'manual', version: 'v1' });
    const releases = ['v7', 'v6', 'v5', 'v4'].map((version, i) =>
      section({ at: new Date(old.getTime() - (i + 1) * DAY), origin: 'manual', version }),
    );
    const pinned = section({ at: new Date(old.getTime() - 30 * DAY), origin: 'manual', version: 'v0' });
    const dryRun = section({ at: new Date(NOW.getTime() - HOUR), origin: 'dry-run' });
    const leftover = section({ at: new Date(NOW.getTime() - 2 * DAY), complete: false });
    const fresh = section({ at: new Date(NOW.getTime() - HOUR), complete: false });
    const endedSafety = section({
      at: new Date(NOW.getTime() - 40 * DAY),
      origin: 'safety',
      workflowId: 'rollback-production-0',
    });
    const verdicts = retentionVerdicts(
      [running, target, ...releases, pinned, dryRun, leftover, fresh, endedSafety],
      { ...POLICY, pinned: ['v0'] },
      {
        now: NOW,
        runningWorkflows: new Set(['rollback-production-1']),
        targets: new Map([[target.id, 'rollback-production-2']]),
      },
    );
    const verdict = (s: CrossSection) => verdicts.find((v) => v.id === s.id)!;
    expect(verdict(running)).toMatchObject({
      keep: true,
      reason: 'its workflow rollback-production-1 is still running',
    });
    expect(verdict(target)).toMatchObject({
      keep: true,
      reason: 'the running rollback rollback-production-2 targets it',
    });
    // v1 is the newest version; with it, v7 and v6 make the newest three.
    expect(releases.map((r) => verdict(r).keep)).toEqual([true, true, false, false]);
    expect(verdict(releases[0]!).reason).toBe('release v7 is among the newest 3 (snapshots.keep.releases)');
    expect(verdict(pinned)).toMatchObject({ keep: true, reason: 'version v0 is pinned (snapshots.keep.versions)' });
    expect(verdict(dryRun)).toMatchObject({ keep: false, reason: 'taken by a dry run that has ended' });
    expect(verdict(leftover).keep).toBe(false);
    expect(verdict(fresh).keep).toBe(true);
    expect(verdict(endedSafety)).toMatchObject({
      keep: false,
      reason: 'safety of an ended rollback, past snapshots.keep.safety',
    });
  });
});

interface StoredSection {
  at: Date;
  origin: 'schedule' | 'manual' | 'safety' | 'dry-run';
  version?: string;
  workflowId?: string;
}

/** A one-component cross-section of production whose restic snapshot has the given time. */
async function storeCrossSection(restic: ResticRepository, data: string, over: StoredSection): Promise<string> {
  const id = section({ at: over.at }).id;
  // Data of its own, which restic cannot compress away: prune has something to free.
  writeFileSync(
    path.join(data, 'app.yaml'),
    `at: ${over.at.toISOString()}\n${randomBytes(30_000).toString('base64')}\n`,
  );
  const tags = encodeTags({
    environment: 'production',
    component: 'config',
    crossSectionId: id,
    role: 'data',
    origin: over.origin,
    members: ['config'],
    ...(over.version ? { version: over.version } : {}),
    ...(over.workflowId ? { workflowId: over.workflowId } : {}),
    fingerprint: { digest: 'f'.repeat(64), bytes: 1, entries: 1, details: FILES_DETAILS },
    inlineListing: inlineListing('[]')!,
  });
  const time = over.at.toISOString().slice(0, 19).replace('T', ' ');
  await restic.run(['backup', '.', '--host', 'production', '--time', time, ...tags.flatMap((t) => ['--tag', t])], {
    cwd: data,
    extraEnv: { TZ: 'UTC' },
  });
  return id;
}

describe('rewind snapshot forget|prune on a real repository', () => {
  const dir = tempDir('rewind-retention-');
  const manifestFile = path.join(dir, 'rewind.yaml');
  const data = path.join(dir, 'data');
  let temporal: Client;
  const env = () => ({ REWIND_MANIFEST: manifestFile, REWIND_TEST_PASSWORD: TEST_PASSWORD });

  let restic: ResticRepository | undefined;
  async function store(over: StoredSection) {
    if (!restic) {
      restic = openSnapshotStore(loadManifest(manifestFile).manifest).restic;
      await restic.ensureInitialized();
    }
    return storeCrossSection(restic, data, over);
  }

  beforeAll(async () => {
    mkdirSync(data, { recursive: true });
    writeFileSync(
      manifestFile,
      [
        'repository: { path: ./repo, passwordEnv: REWIND_TEST_PASSWORD }',
        'approvers: [alice]',
        `temporal: { taskQueue: retention-${process.pid} }`,
        'environments:',
        '  production: { components: { config: { kind: files, path: ./data } } }',
        'snapshots:',
        '  keep: { hourly: 6h, daily: 3d, weekly: 0s, event: 30d, safety: 1d, releases: 1 }',
      ].join('\n'),
    );
    process.env.REWIND_TEST_PASSWORD = TEST_PASSWORD;
    const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    temporal = new Client({ connection });
  });
  afterAll(async () => {
    await temporal?.connection.close();
  });

  it('forgets exactly the cross-sections the tiers drop, keeps what runs, and prune frees the space', async () => {
    // Hours are clock hours: in an hour's first minutes, "now - 2 min" would fall in the hour
    // before; the cross-sections are then dated from five minutes before the hour instead.
    const intoHour = Date.now() % HOUR;
    const now = Date.now() - (intoHour < 3 * 60_000 ? intoHour + 5 * 60_000 : 0);
    const kept: string[] = [];
    const dropped: string[] = [];
    // The newest scheduled one and the newest of each of the 5 hours before it (hot).
    for (let h = 0; h < 6; h++) kept.push(await store({ at: new Date(now - h * HOUR - 60_000), origin: 'schedule' }));
    // A second one in the newest hour: not the newest of its hour.
    dropped.push(await store({ at: new Date(now - 2 * 60_000), origin: 'schedule' }));
    // Two days back: the newest of that day stays (cold), the other goes.
    kept.push(await store({ at: new Date(now - 2 * DAY), origin: 'schedule' }));
    dropped.push(await store({ at: new Date(now - 2 * DAY - HOUR), origin: 'schedule' }));
    // Ten days back: past every tier.
    dropped.push(await store({ at: new Date(now - 10 * DAY), origin: 'schedule' }));
    // A dry run's, and an ended rollback's safety past keep.safety: gone. A running one's: kept.
    dropped.push(await store({ at: new Date(now - HOUR), origin: 'dry-run' }));
    dropped.push(await store({ at: new Date(now - 3 * DAY), origin: 'safety', workflowId: 'rollback-ended' }));
    const runningId = `rollback-production-retention-${process.pid}`;
    kept.push(await store({ at: new Date(now - 3 * DAY), origin: 'safety', workflowId: runningId }));
    // The newest release stays whatever its age; an older release past keep.event goes.
    kept.push(await store({ at: new Date(now - 60 * DAY), origin: 'manual', version: 'v2' }));
    dropped.push(await store({ at: new Date(now - 70 * DAY), origin: 'manual', version: 'v1' }));

    // A rollback "running" (started, no worker on this queue): its safety cross-section is kept.
    const { manifest } = loadManifest(manifestFile);
    await temporal.workflow.start('rollbackWorkflow', {
      taskQueue: manifest.temporal.taskQueue,
      workflowId: runningId,
      args: [{}],
    });
    try {
      const preview = await runCli(['snapshot', 'forget', '--dry-run', '--json'], { env: env() });
      expect(preview.stderr).toBe('');
      expect(preview.code).toBe(0);
      const planned = JSON.parse(preview.stdout) as {
        dryRun: boolean;
        environments: { verdicts: { id: string; keep: boolean; reason: string }[]; forgotten: number }[];
      };
      expect(planned.dryRun).toBe(true);
      const verdicts = planned.environments[0]!.verdicts;
      expect(
        verdicts
          .filter((v) => !v.keep)
          .map((v) => v.id)
          .sort(),
      ).toEqual([...dropped].sort());
      expect(
        verdicts
          .filter((v) => v.keep)
          .map((v) => v.id)
          .sort(),
      ).toEqual([...kept].sort());
      // A dry run changes nothing.
      const restic = openSnapshotStore(manifest).restic;
      expect(await restic.snapshots(['rewind'])).toHaveLength(kept.length + dropped.length);

      const pruned = await runCli(['snapshot', 'prune', '--json'], { env: env(), timeoutMs: 120_000 });
      expect(pruned.stderr).toMatch(/^forgetting what the retention tiers drop …\nrestic prune of the repository …\n/);
      const result = JSON.parse(pruned.stdout) as {
        environments: { forgotten: number; snapshotsForgotten: number }[];
        prune: { bytesBefore: number; bytesAfter: number };
      };
      expect(result.environments[0]).toMatchObject({ forgotten: dropped.length, snapshotsForgotten: dropped.length });
      expect(result.prune.bytesAfter).toBeLessThan(result.prune.bytesBefore);
      const left = new Set(
        (await openSnapshotStore(manifest).restic.snapshots(['rewind'])).map((s) => s.labels.crossSectionId),
      );
      expect([...left].sort()).toEqual([...kept].sort());
    } finally {
      await temporal.workflow.getHandle(runningId).terminate('test over');
    }
  }, 180_000);

  it('refuses an unknown environment and changes nothing', async () => {
    const result = await runCli(['snapshot', 'forget', '--env', 'prod'], { env: env() });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/prod/);
  });
});

describe('a cold repository for the cold and archive tiers', () => {
  const dir = tempDir('rewind-cold-');
  const manifestFile = path.join(dir, 'rewind.yaml');
  const data = path.join(dir, 'data');
  const env = () => ({
    REWIND_MANIFEST: manifestFile,
    REWIND_TEST_PASSWORD: TEST_PASSWORD,
    REWIND_COLD_PASSWORD: 'cold-pw',
  });

  beforeAll(() => {
    mkdirSync(data, { recursive: true });
    writeFileSync(
      manifestFile,
      [
        'repository: { path: ./repo, passwordEnv: REWIND_TEST_PASSWORD }',
        'approvers: [alice]',
        `temporal: { taskQueue: cold-${process.pid} }`,
        'environments:',
        '  production: { components: { config: { kind: files, path: ./data } } }',
        'snapshots:',
        '  keep: { hourly: 6h, daily: 10d, weekly: 0s }',
        '  cold: { path: ./cold, passwordEnv: REWIND_COLD_PASSWORD }',
      ].join('\n'),
    );
    process.env.REWIND_TEST_PASSWORD = TEST_PASSWORD;
  });

  it('moves the cold tier to the second repository, keeps the hot one here, and fetches one back', async () => {
    const restic = openSnapshotStore(loadManifest(manifestFile).manifest).restic;
    await restic.ensureInitialized();
    const now = Date.now();
    const hot = await storeCrossSection(restic, data, { at: new Date(now - 60_000), origin: 'schedule' });
    const coldOnes = [
      await storeCrossSection(restic, data, { at: new Date(now - 2 * DAY), origin: 'schedule' }),
      await storeCrossSection(restic, data, { at: new Date(now - 3 * DAY), origin: 'schedule' }),
    ];
    const release = await storeCrossSection(restic, data, {
      at: new Date(now - 5 * DAY),
      origin: 'manual',
      version: 'v1',
    });

    const pruned = await runCli(['snapshot', 'prune', '--json'], { env: env(), timeoutMs: 120_000 });
    expect(pruned.stderr).toMatch(/^forgetting what the retention tiers drop …\nrestic prune of the repository …\n/);
    const result = JSON.parse(pruned.stdout) as {
      environments: { copiedToCold: number; forgotten: number }[];
      cold: { kept: number; forgotten: number }[];
    };
    expect(result.environments[0]).toMatchObject({ copiedToCold: 2, forgotten: 2 });
    expect(result.cold[0]).toMatchObject({ kept: 2, forgotten: 0 });
    const here = (await openSnapshotStore(loadManifest(manifestFile).manifest).crossSections('production')).map(
      (s) => s.id,
    );
    expect(here.sort()).toEqual([hot, release].sort());
    const { manifest } = loadManifest(manifestFile);
    const cold = openColdRepository(manifest, { ...process.env, ...env() })!;
    expect(new Set((await cold.snapshots(['rewind'])).map((s) => s.labels.crossSectionId))).toEqual(new Set(coldOnes));

    // Pruning again copies nothing twice and forgets nothing more.
    const again = JSON.parse(
      (await runCli(['snapshot', 'prune', '--json'], { env: env(), timeoutMs: 120_000 })).stdout,
    ) as {
      environments: { copiedToCold: number; forgotten: number }[];
    };
    expect(again.environments[0]).toMatchObject({ copiedToCold: 0, forgotten: 0 });
    expect(await cold.snapshots(['rewind'])).toHaveLength(2);

    const fetched = await runCli(['snapshot', 'fetch', coldOnes[0]!, '--json'], { env: env(), timeoutMs: 60_000 });
    expect(fetched.stderr).toBe('');
    expect(JSON.parse(fetched.stdout)).toMatchObject({
      crossSectionId: coldOnes[0],
      fetched: true,
      section: { complete: true },
    });
    const shown = await runCli(['snapshot', 'show', coldOnes[0]!], { env: env() });
    expect(shown.code).toBe(0);
    const missing = await runCli(['snapshot', 'fetch', 'xs-20200101-000000-0000'], { env: env() });
    expect(missing.stderr).toBe('error: no cross-section xs-20200101-000000-0000 in the cold repository\n');
  }, 180_000);
});
