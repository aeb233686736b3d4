// A rewind installation per test file: temp directories, a manifest with its own task queues,
// a restic repository, the control worker and the agents, all real, against the suite's
// Temporal dev server. Tests override what they need (faults, policy) and nothing else.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  lstatSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { stringify } from 'yaml';
import { createAgentActivities } from '../../src/activities/agent';
import { createAnnounceActivities } from '../../src/activities/announce';
import { createDrillActivities } from '../../src/activities/drills';
import { createRepositoryActivities } from '../../src/activities/repository';
import { createControlActivities } from '../../src/activities/control';
import { createDriftActivities } from '../../src/activities/drift';
import { createSyncActivities } from '../../src/activities/sync';
import { driftNotifier } from '../../src/drift/slack';
import { openProjectStore, type ProjectStore } from '../../src/store/project-store';
import { createDatabase, dropDatabase } from './postgres';
import { RewindClient, type RollbackView } from '../../src/client/client';
import type { CrossSectionResult } from '../../src/domain/snapshot';
import type { RollbackStatus } from '../../src/domain/rollback';
import { loadManifest, type LoadedManifest } from '../../src/manifest/load';
import { envTaskQueue, type ManifestInput } from '../../src/manifest/schema';
import { hostsAmong, hostTaskQueue } from '../../src/domain/hosts';
import { createLogger } from '../../src/platform/logger';
import { openColdRepository, openSnapshotStore } from '../../src/snapshots/open';
import type { SnapshotStore } from '../../src/snapshots/store';
import { workflowCode } from '../../src/workers/workflow-code';
import { faultInterceptor } from './faults';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** Runs the CLI from its TypeScript sources, from any working directory. */
const TSX = ['--import', pathToFileURL(path.join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')).href];
const CLI_ENTRY = path.join(REPO_ROOT, 'src/client/cli.ts');
const CLI = [...TSX, CLI_ENTRY];
/** Gives the workers of a spawned process the test fault hook when REWIND_FAULTS is set (./faults.ts). */
const FAULTS_PRELOAD = ['--import', pathToFileURL(path.join(REPO_ROOT, 'test/support/faults-preload.ts')).href];
export const TEST_PASSWORD = 'test-repository-password';

/** A files component (a temp directory), or a postgres one (`url` given). */
export type TestComponent =
  | { kind?: 'files'; format?: 'config' | 'pickle' | 'any'; dependsOn?: string[]; ansible?: Record<string, unknown> }
  | {
      kind: 'postgres';
      url: string;
      migrations?: string;
      strategy?: 'undo' | 'restore' | 'pitr';
      dependsOn?: string[];
      pitr?: { dataDir: string; archiveDir: string; baseBackupDir: string };
    }
  /** An app component, as the manifest has it (test/support/app-stack.ts makes one). */
  | ({ kind: 'app'; dependsOn?: string[] } & Record<string, unknown>);

export interface TestEnvOptions {
  /** Component layout per environment; paths are created under the temp dir. */
  environments?: Record<string, Record<string, TestComponent>>;
  approvers?: string[];
  policy?: ManifestInput['policy'];
  /** Per environment: faults (REWIND_FAULTS syntax) for its in-process agent, see ./faults.ts. */
  faults?: Record<string, string>;
  /** Environments whose agent the test runs itself (e.g. as a separate process); `env@host` for a host's agent. */
  externalAgents?: string[];
  allowSelfApproval?: Record<string, boolean>;
  /** The manifest's drift section. */
  drift?: ManifestInput['drift'];
  /** The manifest's api section (principals and roles). */
  api?: ManifestInput['api'];
  /** The manifest's slack section (rollback messages and approvals). */
  slack?: ManifestInput['slack'];
  /** The manifest's triggers section (Alertmanager). */
  triggers?: ManifestInput['triggers'];
  /** Other top-level manifest sections, as given (pagerduty, statusPage, snapshots …). */
  manifest?: Partial<Pick<ManifestInput, 'pagerduty' | 'statusPage' | 'snapshots' | 'drills'>>;
  /** Per environment: its `verify` section (checks, onFailure, waves). */
  verify?: Record<string, unknown>;
  /** Per environment: where its application version is read. */
  versions?: Record<string, { file?: string; url?: string; field?: string }>;
  /** Environment for the control worker's drift activities (e.g. the Slack token). */
  controlEnv?: NodeJS.ProcessEnv;
}

export interface TestEnv {
  dir: string;
  manifestFile: string;
  loaded: LoadedManifest;
  store: SnapshotStore;
  client: RewindClient;
  temporal: Client;
  /** Directory of a component. */
  componentPath(environment: string, component: string): string;
  snapshot(
    environment: string,
    options?: { version?: string; components?: string[]; reason?: string },
  ): Promise<CrossSectionResult>;
  startRollback(request: Record<string, unknown>): Promise<string>;
  waitFor(workflowId: string, until: (s: RollbackStatus) => boolean, timeoutMs?: number): Promise<RollbackView>;
  /** Waits for the run to close and returns its final status (from result or failure details). */
  finalStatus(workflowId: string, timeoutMs?: number): Promise<RollbackView>;
  /**
   * Runs `rewind agent --env NAME` from the sources, with the test fault preload (REWIND_FAULTS in
   * `env` then takes effect) unless `preload: false`, which runs the agent as shipped.
   */
  spawnAgent(
    environment: string,
    env?: NodeJS.ProcessEnv,
    options?: { preload?: boolean; host?: string },
  ): ChildProcess;
  /** The project store (a database of its own on the test server, made on first use). */
  projectStore(): Promise<ProjectStore>;
  /** Its URL, for CLI runs (DATABASE_URL). */
  projectStoreUrl(): Promise<string>;
  teardown(): Promise<void>;
}

const DEFAULT_ENVIRONMENTS: NonNullable<TestEnvOptions['environments']> = {
  production: { config: { format: 'config' }, models: { format: 'pickle', dependsOn: ['config'] } },
};

export async function createTestEnv(options: TestEnvOptions = {}): Promise<TestEnv> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rewind-test-'));
  const environments = options.environments ?? DEFAULT_ENVIRONMENTS;
  const taskQueue = `t-${randomBytes(4).toString('hex')}`;
  const manifestInput: ManifestInput = {
    repository: { path: './repo', passwordEnv: 'REWIND_TEST_PASSWORD' },
    dataDir: './data',
    approvers: options.approvers ?? ['alice', 'bob', 'carol'],
    policy: { approvalTimeout: '10m', heartbeatTimeout: '5s', ...options.policy },
    temporal: { taskQueue },
    ...(options.drift ? { drift: options.drift } : {}),
    ...(options.api ? { api: options.api } : {}),
    ...(options.slack ? { slack: options.slack } : {}),
    ...(options.triggers ? { triggers: options.triggers } : {}),
    ...options.manifest,
    environments: Object.fromEntries(
      Object.entries(environments).map(([env, components]) => [
        env,
        {
          ...(options.allowSelfApproval?.[env] !== undefined
            ? { allowSelfApproval: options.allowSelfApproval[env] }
            : {}),
          ...(options.versions?.[env] ? { version: options.versions[env] } : {}),
          ...(options.verify?.[env] ? { verify: options.verify[env] as never } : {}),
          components: Object.fromEntries(
            Object.entries(components).map(([name, c]) => {
              if (c.kind === 'app') return [name, { dependsOn: [], ...c }];
              if (c.kind === 'postgres') {
                return [
                  name,
                  {
                    kind: 'postgres' as const,
                    url: c.url,
                    dependsOn: c.dependsOn ?? [],
                    ...(c.migrations ? { migrations: c.migrations } : {}),
                    ...(c.strategy ? { strategy: c.strategy } : {}),
                    ...(c.pitr ? { pitr: c.pitr } : {}),
                  },
                ];
              }
              const p = path.join(dir, 'envs', env, name);
              mkdirSync(p, { recursive: true });
              return [
                name,
                {
                  kind: 'files' as const,
                  path: p,
                  format: c.format ?? 'any',
                  dependsOn: c.dependsOn ?? [],
                  ...(c.ansible ? { ansible: c.ansible as never } : {}),
                },
              ];
            }),
          ),
        },
      ]),
    ),
  };
  const manifestFile = path.join(dir, 'rewind.yaml');
  writeFileSync(manifestFile, stringify(manifestInput));
  process.env.REWIND_TEST_PASSWORD = TEST_PASSWORD;
  const loaded = loadManifest(manifestFile, { checkPaths: 'all' });
  const store = openSnapshotStore(loaded.manifest);
  await store.restic.ensureInitialized();
  const logger = createLogger('test', process.env.REWIND_TEST_LOG_LEVEL ?? 'warn');

  let storeUrl: Promise<string> | undefined;
  let openStore: Promise<ProjectStore> | undefined;
  const projectStoreUrl = () => (storeUrl ??= createDatabase('rewind_store'));
  const projectStore = () =>
    (openStore ??= projectStoreUrl().then((url) =>
      openProjectStore({ databaseUrl: url, dataDir: loaded.manifest.dataDir }),
    ));

  const address = process.env.TEMPORAL_ADDRESS!;
  const connection = await Connection.connect({ address });
  const temporal = new Client({ connection, namespace: 'default' });
  const nativeConnection = await NativeConnection.connect({ address });
  const workers: Worker[] = [
    await Worker.create({
      connection: nativeConnection,
      taskQueue,
      ...workflowCode(),
      activities: {
        ...createControlActivities({ manifest: loaded.manifest, store, logger, client: temporal }),
        ...createDriftActivities({
          manifest: loaded.manifest,
          logger,
          projectStore: () => projectStore(),
          ...driftNotifier(loaded.manifest, { ...process.env, ...options.controlEnv }),
        }),
        ...createSyncActivities({ manifest: loaded.manifest, projectStore: () => projectStore() }),
        ...createAnnounceActivities({
          manifest: loaded.manifest,
          projectStore: () => projectStore(),
          logger,
          env: { ...process.env, ...options.controlEnv },
        }),
        ...createDrillActivities({ manifest: loaded.manifest, store, projectStore: () => projectStore() }),
        ...createRepositoryActivities({
          manifest: loaded.manifest,
          store,
          cold: openColdRepository(loaded.manifest),
          client: temporal,
          projectStore: () => projectStore(),
          logger,
        }),
      },
    }),
  ];
  for (const env of Object.keys(environments)) {
    if (options.externalAgents?.includes(env)) continue;
    const faults = options.faults?.[env];
    const hosts = hostsAmong(Object.keys(loaded.manifest.environments[env]!.components)).filter(
      (h) => !options.externalAgents?.includes(`${env}@${h}`),
    );
    for (const taskQueue of [undefined, ...hosts].map((h) => hostTaskQueue(envTaskQueue(loaded.manifest, env), h)))
      workers.push(
        await Worker.create({
          connection: nativeConnection,
          taskQueue,
          activities: createAgentActivities({
            environment: env,
            manifest: loaded.manifest,
            store,
            logger,
          }),
          ...(faults ? { interceptors: { activity: [faultInterceptor(faults, loaded.manifest)] } } : {}),
        }),
      );
  }
  const running = workers.map((w) => w.run());
  const client = new RewindClient(temporal, loaded.manifest);
  const children: ChildProcess[] = [];

  const env: TestEnv = {
    dir,
    manifestFile,
    loaded,
    store,
    client,
    temporal,
    componentPath: (e, c) => {
      const component = loaded.manifest.environments[e]!.components[c]!;
      if (component.kind !== 'files') throw new Error(`${e}/${c} is not a files component`);
      return component.path;
    },
    async snapshot(environment, opts = {}) {
      const handle = await client.startSnapshot({ environment, requester: 'test', ...opts });
      return client.snapshotResult(handle.workflowId);
    },
    async startRollback(request) {
      const { workflowId } = await client.startRollback({ requester: 'alice', ...request });
      return workflowId;
    },
    waitFor: (workflowId, until, timeoutMs = 120_000) =>
      client.waitForRollback(workflowId, until, { timeoutMs, intervalMs: 150 }),
    async finalStatus(workflowId, timeoutMs = 120_000) {
      await temporal.workflow
        .getHandle(workflowId)
        .result()
        .catch(() => undefined);
      return client.waitForRollback(workflowId, () => false, { timeoutMs, intervalMs: 150 });
    },
    spawnAgent(environment, extraEnv = {}, { preload = true, host } = {}) {
      const args = preload ? [...TSX, ...FAULTS_PRELOAD, CLI_ENTRY] : CLI;
      const hostArgs = host !== undefined ? ['--host', host] : [];
      const child = spawn(process.execPath, [...args, 'agent', '--env', environment, ...hostArgs], {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          REWIND_MANIFEST: manifestFile,
          TEMPORAL_ADDRESS: address,
          REWIND_LOG_LEVEL: 'warn',
          ...extraEnv,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      return child;
    },
    projectStore,
    projectStoreUrl,
    async teardown() {
      // Waits (bounded) for killed agents to be gone, so that nothing they started is still
      // writing into the directory removed below.
      await Promise.allSettled(
        children
          .filter((child) => child.exitCode === null && child.signalCode === null)
          .map(
            (child) =>
              new Promise<void>((resolve) => {
                const timer = setTimeout(resolve, 10_000);
                child.once('exit', () => {
                  clearTimeout(timer);
                  resolve();
                });
                child.kill('SIGKILL');
              }),
          ),
      );
      workers.forEach((w) => w.shutdown());
      await Promise.allSettled(running);
      if (openStore) await (await openStore).close();
      if (storeUrl) await dropDatabase(await storeUrl);
      await nativeConnection.close();
      await connection.close();
      // A restic process an agent started may outlive it (a cancelled step's, on a loaded
      // machine): stop whatever still names the directory, then remove it.
      await stopProcessesNaming(dir);
      rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    },
  };
  return env;
}

/** Waits for a condition with a deadline, polling; never a fixed sleep. */
export async function eventually<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  content?: string;
  target?: string;
}

/** Every entry of a directory with its type, mode, bytes (base64) and link target. */
export function readTree(root: string): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const abs = path.join(dir, name);
      const relPath = rel ? `${rel}/${name}` : name;
      const st = lstatSync(abs);
      const mode = st.mode & 0o7777;
      if (st.isSymbolicLink()) out[relPath] = { type: 'symlink', mode, target: readlinkSync(abs) };
      else if (st.isDirectory()) {
        out[relPath] = { type: 'dir', mode };
        walk(abs, relPath);
      } else out[relPath] = { type: 'file', mode, content: readFileSync(abs).toString('base64') };
    }
  };
  walk(root, '');
  return out;
}

export function copyTree(from: string, to: string): void {
  cpSync(from, to, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
}

/** A pickle written by python3's own pickle module, as the real model files are. */
export function writePickle(file: string, value: unknown): void {
  const script = 'import json,pickle,sys; pickle.dump(json.loads(sys.argv[2]), open(sys.argv[1], "wb"), protocol=4)';
  const result = spawnSync('python3', ['-c', script, file, JSON.stringify(value)]);
  if (result.status !== 0) throw new Error(`python3 could not write the pickle: ${result.stderr.toString()}`);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the `rewind` command from the sources, as a user would, and collects its output. */
export function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; onStderr?: (text: string) => void } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, REWIND_LOG_LEVEL: 'warn', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      options.onStderr?.(stderr);
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `rewind ${args.join(' ')} did not finish within ${options.timeoutMs ?? 60_000} ms\n${stdout}\n${stderr}`,
        ),
      );
    }, options.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** SIGKILLs the processes whose command line names `dir` (Linux /proc), and waits (bounded) for them to be gone. */
async function stopProcessesNaming(dir: string): Promise<void> {
  const naming = () =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir);
        } catch {
          return false;
        }
      })
      .map(Number);
  for (const pid of naming()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (let i = 0; i < 50 && naming().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
}
