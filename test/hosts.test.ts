// A component on several hosts, rolled out host by host in waves: each host's steps run on the
// agent started for that host (`rewind agent --env E --host H`, here one in-process and one as
// a real process), the second wave's check failing compensates the first host too.
import { existsSync, mkdirSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { createTestEnv, eventually, runCli, type TestEnv } from './support/harness';
import { envTaskQueue } from '../src/manifest/schema';

const HOSTS = ['web1', 'web2'] as const;

describe('a component on several hosts', () => {
  let env: TestEnv;
  const root = path.join(os.tmpdir(), `rewind-hosts-${process.pid}`);
  const hostDir = (host: string) => path.join(root, host);
  const current = (host: string) => readlinkSync(path.join(hostDir(host), 'current'));
  const point = (host: string, version: string) => {
    rmSync(path.join(hostDir(host), 'current'), { force: true });
    symlinkSync(`releases/${version}`, path.join(hostDir(host), 'current'));
  };
  const broken = path.join(root, 'broken');

  beforeAll(async () => {
    for (const host of HOSTS)
      for (const version of ['v1', 'v2']) {
        const dir = path.join(hostDir(host), 'releases', version);
        mkdirSync(dir, { recursive: true });
        writeFileSync(path.join(dir, 'app.txt'), `${host} ${version}\n`);
      }
    env = await createTestEnv({
      // web2's agent is the real command, started below.
      externalAgents: ['production@web2'],
      environments: {
        production: {
          app: {
            kind: 'app',
            strategy: 'symlink',
            symlink: { releases: '/nowhere/releases', current: '/nowhere/current' },
            hosts: Object.fromEntries(
              HOSTS.map((h) => [
                h,
                { symlink: { releases: path.join(hostDir(h), 'releases'), current: path.join(hostDir(h), 'current') } },
              ]),
            ),
          },
        },
      },
      verify: {
        production: {
          waves: [
            { name: 'canary', components: ['app@web1'] },
            { name: 'rest', components: ['app@web2'] },
          ],
          checks: [{ name: 'smoke', after: ['app@web2'], command: { run: `test ! -e ${broken}` } }],
        },
      },
    });
    env.spawnAgent('production', {}, { host: 'web2', preload: false });
  });
  afterAll(async () => {
    await env?.teardown();
    rmSync(root, { recursive: true, force: true });
  });

  async function rollBackToV1() {
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v1' } });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob' });
    return { id, status: (await env.finalStatus(id)).status };
  }

  it('rolls back host by host, each on its own agent', async () => {
    for (const host of HOSTS) point(host, 'v1');
    const section = await env.snapshot('production', { version: 'v1' });
    expect(Object.keys(section.components).sort()).toEqual(['app@web1', 'app@web2']);
    for (const host of HOSTS) point(host, 'v2');

    const { id, status } = await rollBackToV1();
    expect(status.plan!.order).toEqual([['app@web1'], ['app@web2']]);
    expect(status.plan!.waves!.map((w) => [w.name, w.order])).toEqual([
      ['canary', [['app@web1']]],
      ['rest', [['app@web2']]],
    ]);
    expect(status.state).toBe('completed');
    expect(HOSTS.map(current)).toEqual(['releases/v1', 'releases/v1']);
    // The canary wave, verified, ended before the second started.
    expect(Date.parse(status.steps['app@web1']!.endedAt!)).toBeLessThanOrEqual(
      Date.parse(status.steps['app@web2']!.startedAt!),
    );
    expect(status.checks!.map((c) => [c.name, c.wave ?? 'verify', c.passed])).toEqual([['smoke', 'verify', true]]);
    // Each host's restore was given to that host's agent.
    const queues = new Map<string, string>();
    for (const event of (await env.temporal.workflow.getHandle(id).fetchHistory()).events ?? []) {
      const scheduled = event.activityTaskScheduledEventAttributes;
      if (event.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && scheduled)
        queues.set(scheduled.activityId!, scheduled.taskQueue!.name!);
    }
    const queue = envTaskQueue(env.loaded.manifest, 'production');
    expect(queues.get('restore/app@web1')).toBe(`${queue}@web1`);
    expect(queues.get('restore/app@web2')).toBe(`${queue}@web2`);
  });

  it("compensates the canary host when the second wave's check fails", async () => {
    for (const host of HOSTS) point(host, 'v2');
    writeFileSync(broken, '');
    try {
      const { status } = await rollBackToV1();
      expect(status.state).toBe('compensated');
      expect(status.cause).toMatch(/check smoke failed/);
      expect(status.steps['app@web1']).toMatchObject({ state: 'compensated' });
      expect(status.steps['app@web2']).toMatchObject({ state: 'compensated' });
      expect(HOSTS.map(current)).toEqual(['releases/v2', 'releases/v2']);
    } finally {
      unlinkSync(broken);
    }
  });

  it('refuses an agent for a host no component runs on, naming the hosts', async () => {
    const result = await runCli(['agent', '--env', 'production', '--host', 'web9'], {
      env: { REWIND_MANIFEST: env.manifestFile },
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/--host web9: no component of production runs on web9 \(its hosts: web1, web2\)/);
    expect(existsSync(path.join(hostDir('web1'), 'current'))).toBe(true);
  });
});

describe('an agent of a host that is not running', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({
      externalAgents: ['production@web2'],
      environments: {
        production: {
          app: {
            kind: 'app',
            strategy: 'command',
            commands: { status: 'echo v1', switch: 'true' },
            hosts: ['web1', 'web2'],
          },
        },
      },
    });
  });
  afterAll(() => env?.teardown());

  it('is named, with the command that starts it', async () => {
    // The in-process agents poll once they have started.
    const missing = await eventually(async () => {
      const now = await env.client.agentsMissing('production');
      return now.length === 1 ? now : undefined;
    }, 'the started agents to poll');
    expect(missing).toEqual(['rewind agent --env production --host web2']);
    const result = await runCli(
      ['--manifest', env.manifestFile, 'snapshot', 'create', '--env', 'production', '--version', 'v1', '--json'],
      { env: { TEMPORAL_ADDRESS: process.env.TEMPORAL_ADDRESS } },
    );
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(
      'warning: no agent serves production (or some of its hosts) right now; the run will wait until `rewind agent --env production --host web2` starts',
    );
    // It waits for that agent; this test does not start it.
    const { workflowId } = JSON.parse(result.stdout) as { workflowId: string };
    await env.temporal.workflow.getHandle(workflowId).terminate('test over');
  });
});
