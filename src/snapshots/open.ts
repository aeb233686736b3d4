// Opens the manifest's snapshot repository.
import path from 'node:path';
import { passwordOf, repositoryPassword } from '../manifest/load';
import type { Manifest } from '../manifest/schema';
import { ResticRepository } from './restic';
import { SnapshotStore } from './store';

export function openSnapshotStore(manifest: Manifest, env: NodeJS.ProcessEnv = process.env): SnapshotStore {
  return new SnapshotStore(
    new ResticRepository({
      repository: manifest.repository.path,
      password: repositoryPassword(manifest, env),
      initLockFile: path.join(manifest.dataDir, 'locks', 'repository-init.lock'),
      indexFile: path.join(manifest.dataDir, 'cache', 'snapshot-index.json'),
    }),
  );
}

/** The manifest's second repository for the cold and archive tiers (snapshots.cold), if it has one. */
export function openColdRepository(
  manifest: Manifest,
  env: NodeJS.ProcessEnv = process.env,
): ResticRepository | undefined {
  const cold = manifest.snapshots.cold;
  if (!cold) return undefined;
  return new ResticRepository({
    repository: cold.path,
    password: passwordOf(cold, 'snapshots.cold', env),
    initLockFile: path.join(manifest.dataDir, 'locks', 'cold-repository-init.lock'),
    indexFile: path.join(manifest.dataDir, 'cache', 'cold-snapshot-index.json'),
  });
}
