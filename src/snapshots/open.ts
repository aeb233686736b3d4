// Opens the manifest's snapshot repository.
import path from 'node:path';
import { repositoryPassword } from '../manifest/load';
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
