// The agent's activities for one environment of files components, on a real snapshot store,
// without Temporal: what tests of a single step need (run them with MockActivityEnvironment).
import { chmodSync, closeSync, openSync, readdirSync, readSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { createAgentActivities } from '../../src/activities/agent';
import { parseManifest } from '../../src/manifest/load';
import { createLogger } from '../../src/platform/logger';
import type { SnapshotStore } from '../../src/snapshots/store';

export function filesAgent(args: {
  /** Where the manifest (and, with `dataDir`, the agent's state) lives. */
  dir: string;
  repository: string;
  store: SnapshotStore;
  /** Component name → directory. */
  components: Record<string, string>;
  dataDir?: string;
}) {
  const components = Object.entries(args.components)
    .map(([name, dir]) => `      ${name}: { kind: files, path: ${dir} }\n`)
    .join('');
  const { manifest } = parseManifest(
    `repository: { path: ${args.repository} }\n${args.dataDir ? `dataDir: ${args.dataDir}\n` : ''}approvers: [a]\n` +
      `environments:\n  production:\n    components:\n${components}`,
    path.join(args.dir, 'rewind.yaml'),
  );
  return createAgentActivities({
    environment: 'production',
    manifest,
    store: args.store,
    logger: createLogger('test', 'silent'),
  });
}

/** Flips 16 bytes in the middle of the repository's largest pack, as a failing disk would. */
export function damageLargestPack(repository: string): { file: string; size: number } {
  const packs = readdirSync(path.join(repository, 'data')).flatMap((sub) =>
    readdirSync(path.join(repository, 'data', sub)).map((name) => path.join(repository, 'data', sub, name)),
  );
  const file = packs.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  const size = statSync(file).size;
  chmodSync(file, 0o600);
  const fd = openSync(file, 'r+');
  const middle = Math.floor(size / 2);
  const bytes = Buffer.alloc(16);
  readSync(fd, bytes, 0, bytes.length, middle);
  writeSync(fd, Buffer.from(bytes.map((b) => b ^ 0xff)), 0, bytes.length, middle);
  closeSync(fd);
  return { file, size };
}
