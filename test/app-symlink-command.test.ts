// The app kind's symlink and command strategies. Symlink: `current` is replaced atomically, so
// an agent killed with SIGKILL mid-switch leaves it on a complete release, and the retried step
// finishes the switch. Command: the manifest's commands move the system, exit codes decide
// retry or failure, and drift scans compare the running versions.
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { createTestEnv, eventually, runCli, type TestEnv } from './support/harness';

function release(root: string, version: string) {
  const dir = path.join(root, 'releases', version);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'app.txt'), `release ${version}\n`);
}

describe('symlink releases', () => {
  let env: TestEnv;
  let root: string;
  beforeAll(async () => {
    root = path.join(os.tmpdir(), `rewind-symlink-${process.pid}`);
    mkdirSync(root, { recursive: true });
    for (const v of ['v1', 'v2']) release(root, v);
    writeFileSync(path.join(root, 'reloads.log'), '');
    env = await createTestEnv({
      externalAgents: ['production'],
      policy: { heartbeatTimeout: '3s' },
      environments: {
        production: {
          app: {
            kind: 'app',
            strategy: 'symlink',
            symlink: {
              releases: path.join(root, 'releases'),
              current: path.join(root, 'current'),
              // Slow, so that the agent can be killed while it runs.
              reload: `sleep 2; echo "reloaded {{version}}" >> ${path.join(root, 'reloads.log')}`,
            },
            timeout: '30s',
          },
        },
      },
    });
  });
  afterAll(() => env.teardown());

  const current = () => readlinkSync(path.join(root, 'current'));

  it('kill -9 of the agent mid-switch: current always names a complete release, and the retry finishes the switch', async () => {
    symlinkSync('releases/v1', path.join(root, 'current'));
    const agent = env.spawnAgent('production');
    await env.snapshot('production', { version: 'v1' });
    unlinkSync(path.join(root, 'current'));
    symlinkSync('releases/v2', path.join(root, 'current'));

    // Watches `current` through the whole run: it must always resolve to a complete release.
    const seen = new Set<string>();
    const problems: string[] = [];
    let watching = true;
    // Bounded by time (the whole run) and by count; a count alone ran out before the switch on a fast machine.
    const watchUntil = Date.now() + 120_000;
    const watcher = (async () => {
      for (let i = 0; watching && i < 20_000_000 && Date.now() < watchUntil; i++) {
        try {
          const target = readlinkSync(path.join(root, 'current'));
          seen.add(target);
          if (!existsSync(path.join(root, target, 'app.txt'))) problems.push(`incomplete: ${target}`);
        } catch (err) {
          problems.push(`unreadable: ${(err as Error).message}`);
        }
        await new Promise((r) => setImmediate(r));
      }
    })();

    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob' });
    // The link names v1 and the reload is running: kill the agent now.
    await eventually(
      () => Promise.resolve(current() === 'releases/v1' ? true : undefined),
      'the link to switch',
      30_000,
    );
    agent.kill('SIGKILL');
    await new Promise((r) => agent.once('exit', r));
    env.spawnAgent('production');
    const { status } = await env.finalStatus(id);
    watching = false;
    await watcher;

    expect(status.state).toBe('completed');
    expect(status.steps.app!.outcome).toMatchObject({
      alreadyAtTarget: false,
      note: 'finished a switch an agent restart interrupted',
    });
    expect(current()).toBe('releases/v1');
    expect(problems).toEqual([]);
    expect([...seen].sort()).toEqual(['releases/v1', 'releases/v2']);
    // The restarted agent ran the reload for v1 itself (the killed one's may have finished too).
    expect(readFileSync(path.join(root, 'reloads.log'), 'utf8')).toMatch(/reloaded v1\n$/);
    // No temporary link is left behind.
    expect(readdirSync(root).filter((n) => n.includes('rewind-tmp'))).toEqual([]);
  });

  it('refuses a release that is not there before approval, leaving current untouched', async () => {
    release(root, 'v3');
    unlinkSync(path.join(root, 'current'));
    symlinkSync('releases/v3', path.join(root, 'current'));
    await env.snapshot('production', { version: 'v3' });
    unlinkSync(path.join(root, 'current'));
    symlinkSync('releases/v1', path.join(root, 'current'));
    rmSync(path.join(root, 'releases', 'v3'), { recursive: true });
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v3' } });
    const { status } = await env.finalStatus(id);
    expect(status.state).toBe('failed');
    expect(status.cause).toBe(
      `app: not possible: release v3 is not in ${path.join(root, 'releases')} (no folder ${path.join(root, 'releases', 'v3')}); choose another target`,
    );
    expect(status.approvals).toEqual([]);
    expect(current()).toBe('releases/v1');
  });
});

describe('command strategy', () => {
  let env: TestEnv;
  let state: string;
  beforeAll(async () => {
    state = path.join(os.tmpdir(), `rewind-command-${process.pid}`);
    mkdirSync(state, { recursive: true });
    // A pretend deployment system: a JSON file says which version runs.
    const app = (name: string, withRollback: boolean) => ({
      kind: 'app' as const,
      strategy: 'command' as const,
      commands: {
        status: `cat ${state}/${name}.json`,
        field: 'deployed.version',
        // Says "try later" (75) once, then switches; a release named "bad" fails for good (3).
        switch: `if [ {{version}} = bad ]; then echo "no image for {{version}}" >&2; exit 3; fi; if [ ! -e ${state}/${name}.busy ]; then touch ${state}/${name}.busy; exit 75; fi; rm ${state}/${name}.busy; echo '{"deployed":{"version":"'{{version}}'"}}' > ${state}/${name}.json; echo switch {{version}} >> ${state}/${name}.log`,
        ...(withRollback
          ? {
              rollback: `echo '{"deployed":{"version":"'{{version}}'"}}' > ${state}/${name}.json; echo rollback {{from}} to {{version}} >> ${state}/${name}.log`,
            }
          : {}),
        retryExitCodes: [75],
      },
      timeout: '10s',
    });
    env = await createTestEnv({
      environments: { production: { app: app('production', true) }, regression: { app: app('regression', false) } },
    });
  });
  afterAll(() => env.teardown());

  const deployed = (name: string, version: string) =>
    writeFileSync(path.join(state, `${name}.json`), JSON.stringify({ deployed: { version } }));
  const log = (name: string) => readFileSync(path.join(state, `${name}.log`), 'utf8');

  async function rollBack(environment: string, version: string) {
    const id = await env.startRollback({ environment, target: { kind: 'version', version } });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob' });
    return (await env.finalStatus(id)).status;
  }

  it('rolls back with the rollback command and reads status until it reports the target', async () => {
    deployed('production', 'v1');
    await env.snapshot('production', { version: 'v1' });
    deployed('production', 'v2');
    const status = await rollBack('production', 'v1');
    expect(status.state).toBe('completed');
    expect(status.steps.app!.outcome!.details).toMatchObject({ from: { version: 'v2' }, to: { version: 'v1' } });
    expect(status.steps.app!.verify).toBe('passed');
    expect(log('production')).toBe('rollback v2 to v1\n');
  });

  it('retries the switch command after a retry exit code (75)', async () => {
    deployed('regression', 'v1');
    await env.snapshot('regression', { version: 'v1' });
    deployed('regression', 'v2');
    const status = await rollBack('regression', 'v1');
    expect(status.state).toBe('completed');
    expect(log('regression')).toBe('switch v1\n');
    expect(JSON.parse(readFileSync(path.join(state, 'regression.json'), 'utf8'))).toEqual({
      deployed: { version: 'v1' },
    });
  });

  it("fails at once on any other exit code, with the command's own words, and changes nothing", async () => {
    deployed('regression', 'bad');
    await env.snapshot('regression', { version: 'bad' });
    deployed('regression', 'v2');
    const status = await rollBack('regression', 'bad');
    expect(status.state).toBe('compensated');
    expect(status.steps.app!.error).toMatch(/^switch command \(.*\) exited with code 3: no image for bad$/);
    expect(status.steps.app!.compensation).toBe('already at its state before the rollback');
    expect(JSON.parse(readFileSync(path.join(state, 'regression.json'), 'utf8'))).toEqual({
      deployed: { version: 'v2' },
    });
  });

  it('drift scans compare the versions the two environments run', async () => {
    deployed('production', 'v1');
    deployed('regression', 'v2');
    const cliEnv = { REWIND_MANIFEST: env.manifestFile, DATABASE_URL: await env.projectStoreUrl() };
    const scan = await runCli(['--json', 'drift', 'scan', '--wait'], { env: cliEnv, timeoutMs: 120_000 });
    expect(scan.stderr).toBe('');
    const { scanId } = JSON.parse(scan.stdout) as { scanId: string };
    const report = await runCli(['drift', 'report', scanId], { env: cliEnv });
    expect(report.stdout).toContain('`version`: v1 → v2');
  });
});

describe('command strategy with a fingerprint command', () => {
  let env: TestEnv;
  let state: string;
  beforeAll(async () => {
    state = path.join(os.tmpdir(), `rewind-command-fingerprint-${process.pid}`);
    mkdirSync(state, { recursive: true });
    env = await createTestEnv({
      environments: {
        production: {
          app: {
            kind: 'app',
            strategy: 'command',
            commands: {
              status: `echo >> ${state}/status-runs; cat ${state}/version`,
              // What really runs: the image, which a version label alone does not tell.
              fingerprint: `echo >> ${state}/fingerprint-runs; cat ${state}/image`,
              // Deploys the version's image, or for v1 a wrong one while ${state}/broken exists;
              // while ${state}/slow exists, the version shows a second later.
              switch: `if [ -e ${state}/broken ] && [ {{version}} = v1 ]; then echo wrong > ${state}/image; else echo image-{{version}} > ${state}/image; fi; if [ -e ${state}/slow ]; then (sleep 1.2; echo {{version}} > ${state}/version) > /dev/null 2>&1 & else echo {{version}} > ${state}/version; fi; echo switch {{version}} >> ${state}/log`,
            },
            timeout: '10s',
          },
        },
      },
    });
  });
  afterAll(() => env.teardown());

  const deploy = (version: string, image: string) => {
    writeFileSync(path.join(state, 'version'), `${version}\n`);
    writeFileSync(path.join(state, 'image'), `${image}\n`);
  };
  const read = (name: string) => readFileSync(path.join(state, name), 'utf8');

  async function rollBack(version: string) {
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version } });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob' });
    return (await env.finalStatus(id)).status;
  }

  it('keeps the hash of what the fingerprint command prints, and rolls back a hot-patched release of the same version', async () => {
    deploy('v1', 'image-v1');
    const section = await env.snapshot('production', { version: 'v1' });
    const details = section.components.app!.fingerprint.details as { version?: string; identity?: string };
    expect(details.version).toBe('v1');
    expect(details.identity).toMatch(/^[0-9a-f]{64}$/);
    // Someone patched the image in place: the label still says v1.
    deploy('v1', 'image-v1-hotfix');
    const status = await rollBack('v1');
    expect(status.state).toBe('completed');
    expect(status.steps.app!.outcome!.alreadyAtTarget).toBe(false);
    expect(status.steps.app!.verify).toBe('passed');
    expect(read('image')).toBe('image-v1\n');
    expect(read('log')).toBe('switch v1\n');
  });

  it('fails verification when the version is right but the fingerprint is not, and compensates', async () => {
    deploy('v2', 'image-v2');
    writeFileSync(path.join(state, 'broken'), '');
    try {
      const status = await rollBack('v1');
      expect(status.state).toBe('compensated');
      expect(status.cause).toMatch(
        /app differs from the target \(change fingerprint \(v1 runs, but the fingerprint command prints another thing \(sha256 [0-9a-f]{12}…\) than at the target snapshot \(sha256 [0-9a-f]{12}…\)\)\)/,
      );
    } finally {
      rmSync(path.join(state, 'broken'));
    }
    // Compensation put v2 back, with its own image.
    expect(read('version')).toBe('v2\n');
    expect(read('image')).toBe('image-v2\n');
  });

  it('waits for the version with the status command alone, not the fingerprint command each time', async () => {
    deploy('v2', 'image-v2');
    writeFileSync(path.join(state, 'slow'), '');
    writeFileSync(path.join(state, 'status-runs'), '');
    writeFileSync(path.join(state, 'fingerprint-runs'), '');
    try {
      const status = await rollBack('v1');
      expect(status.state).toBe('completed');
    } finally {
      rmSync(path.join(state, 'slow'));
    }
    const runs = (name: string) => read(name).length;
    // About five polls while the version lags; each full read (plan, verify) runs both commands.
    expect(runs('status-runs') - runs('fingerprint-runs')).toBeGreaterThanOrEqual(4);
    expect(runs('fingerprint-runs')).toBeGreaterThan(0);
  });
});
