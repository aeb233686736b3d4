// Components on several hosts: how `hosts:` expands into one component per host, what a host
// may override, how waves and checks name hosts, and what is refused, at its key. Nothing here
// starts a process.
import path from 'node:path';
import { ManifestError, parseManifest } from '../src/manifest/load';
import { chosenComponents, environmentProblem } from '../src/domain/rollback-rules';
import { componentTaskQueue } from '../src/domain/hosts';
import { envTaskQueue } from '../src/manifest/schema';
import { tempDir } from './support/temp';

const dir = tempDir('rewind-hosts-manifest-');

function load(environment: Record<string, unknown>) {
  const text = JSON.stringify({
    repository: { path: './repo', passwordEnv: 'REWIND_REPOSITORY_PASSWORD' },
    approvers: ['alice'],
    environments: { production: environment },
  });
  return parseManifest(text, path.join(dir, 'rewind.yaml'), { checkPaths: false }).manifest;
}

function issuesOf(environment: Record<string, unknown>): string[] {
  try {
    load(environment);
  } catch (err) {
    if (err instanceof ManifestError)
      return err.issues.map((i) => `${i.path}: ${i.message}`.replace(/ \(line \d+, column \d+\)/, ''));
    throw err;
  }
  return [];
}

const symlinkApp = (hosts: unknown) => ({
  kind: 'app',
  strategy: 'symlink',
  symlink: { releases: '/srv/app/releases', current: '/srv/app/current' },
  health: { url: 'http://127.0.0.1:8080/healthz' },
  dependsOn: ['config'],
  hosts,
});
const config = { kind: 'files', path: '/srv/app/config', format: 'config' };

describe('components on several hosts', () => {
  it('expands a list of hosts into one component per host, each with the dependencies of the component', () => {
    const manifest = load({
      components: {
        config,
        app: symlinkApp(['web1', 'web2']),
        worker: { ...config, path: '/srv/worker', dependsOn: ['app'] },
      },
    });
    const components = manifest.environments.production!.components;
    expect(Object.keys(components)).toEqual(['config', 'app@web1', 'app@web2', 'worker']);
    expect(components['app@web1']).toMatchObject({ kind: 'app', dependsOn: ['config'] });
    expect(components['app@web1']).not.toHaveProperty('hosts');
    // Depending on a component on several hosts is depending on every host of it.
    expect(components.worker!.dependsOn).toEqual(['app@web1', 'app@web2']);
  });

  it("merges a host's overrides over the component's values", () => {
    const manifest = load({
      components: {
        config,
        app: symlinkApp({
          web1: null,
          web2: { symlink: { current: '/srv/other/current' }, health: { url: 'http://10.0.0.2:8080/healthz' } },
        }),
      },
    });
    const components = manifest.environments.production!.components;
    expect(components['app@web1']).toMatchObject({
      symlink: { releases: '/srv/app/releases', current: '/srv/app/current' },
      health: { url: 'http://127.0.0.1:8080/healthz' },
    });
    expect(components['app@web2']).toMatchObject({
      symlink: { releases: '/srv/app/releases', current: '/srv/other/current' },
      health: { url: 'http://10.0.0.2:8080/healthz', status: 200 },
    });
  });

  it('routes each host to its own agent, and the rest to the environment agent', () => {
    const manifest = load({ components: { config, app: symlinkApp(['web1', 'web2']) } });
    const queue = envTaskQueue(manifest, 'production');
    expect(componentTaskQueue(queue, 'config')).toBe(queue);
    expect(componentTaskQueue(queue, 'app@web2')).toBe(`${queue}@web2`);
  });

  it('lets a request name the component (every host) or one host', () => {
    const manifest = load({ components: { config, app: symlinkApp(['web1', 'web2']) } });
    expect(chosenComponents(manifest, 'production', ['app'])).toEqual(['app@web1', 'app@web2']);
    expect(chosenComponents(manifest, 'production', ['app@web2', 'config'])).toEqual(['config', 'app@web2']);
    expect(environmentProblem(manifest, 'production', ['app@web3'])).toMatch(
      /has no component "app@web3" \(it has: config, app@web1, app@web2\)/,
    );
  });

  it('stages hosts in waves, naming one host or a whole component', () => {
    const manifest = load({
      components: { config, app: symlinkApp(['web1', 'web2', 'web3']) },
      verify: {
        waves: [
          { name: 'canary', components: ['config', 'app@web1'] },
          { name: 'rest', components: ['app@web2', 'app@web3'] },
        ],
        checks: [{ name: 'smoke', command: { run: 'true' }, after: ['app'] }],
      },
    });
    const verify = manifest.environments.production!.verify!;
    expect(verify.waves.map((w) => w.components)).toEqual([
      ['config', 'app@web1'],
      ['app@web2', 'app@web3'],
    ]);
    // `after: [app]` means after any wave holding a host of app.
    expect(verify.checks[0]!.after).toEqual(['app@web1', 'app@web2', 'app@web3']);
  });

  it('refuses bad hosts, bad overrides and waves that name hosts wrongly, at their keys', () => {
    expect(issuesOf({ components: { config, app: symlinkApp(['web1', 'web1']) } })).toEqual([
      'environments.production.components.app.hosts.1: "web1" is listed twice',
    ]);
    expect(issuesOf({ components: { config, app: symlinkApp(['Web_1']) } })[0]).toMatch(
      /^environments\.production\.components\.app\.hosts.*must be a host name/,
    );
    expect(issuesOf({ components: { config, app: symlinkApp({}) } })).toEqual([
      'environments.production.components.app.hosts: must name at least one host',
    ]);
    expect(
      issuesOf({
        components: {
          config,
          app: symlinkApp({ web1: { kind: 'files' }, web2: { health: { status: 'ok' } }, web3: { symlnk: {} } }),
        },
      }),
    ).toEqual([
      'environments.production.components.app.hosts.web1.kind: cannot differ per host (set it on app itself)',
      'environments.production.components.app.hosts.web2.health.status: expected number, got string "ok" (on host web2)',
      'environments.production.components.app.hosts.web3.symlnk: unknown key (on host web3); did you mean "symlink"?',
    ]);
    // Reported with the rest of the file's problems, not only once those are fixed.
    expect(
      issuesOf({
        components: {
          config: { ...config, format: 'yamll' },
          app: symlinkApp({ web1: {}, web2: { helth: { status: 200 } } }),
        },
      }),
    ).toEqual([
      expect.stringMatching(/^environments\.production\.components\.config\.format: .*"config"/),
      'environments.production.components.app.hosts.web2.helth: unknown key (on host web2); did you mean "health"?',
    ]);
    expect(
      issuesOf({
        components: { config, app: symlinkApp(['web1', 'web2']) },
        verify: {
          waves: [
            { name: 'canary', components: ['config', 'app@web1', 'config@web1', 'app@web9'] },
            { name: 'rest', components: ['app'] },
          ],
        },
      }),
    ).toEqual([
      'environments.production.verify.waves.0.components.2: config names no hosts, so it has no host "web1"',
      'environments.production.verify.waves.0.components.3: app has no host "web9" (its hosts: web1, web2)',
      'environments.production.verify.waves.1.components.0: app@web1 is already in an earlier wave (as app@web1)',
    ]);
    // A host cannot come before what it depends on.
    expect(
      issuesOf({
        components: { config, app: symlinkApp(['web1', 'web2']) },
        verify: {
          waves: [
            { name: 'canary', components: ['app@web1'] },
            { name: 'config', components: ['config'] },
          ],
        },
      }),
    ).toEqual([
      'environments.production.verify.waves.0.components: app@web1 depends on config, which comes in a later wave',
    ]);
  });
});
