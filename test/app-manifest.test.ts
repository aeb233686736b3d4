// The manifest's app components and verify sections: what is refused, and how the refusal
// names the place. Nothing here starts a process.
import path from 'node:path';
import { ManifestError, parseManifest } from '../src/manifest/load';
import { tempDir } from './support/temp';

const dir = tempDir('rewind-app-manifest-');

function issuesOf(environment: Record<string, unknown>): string[] {
  const text = JSON.stringify({
    repository: { path: './repo', passwordEnv: 'REWIND_REPOSITORY_PASSWORD' },
    approvers: ['alice'],
    environments: { production: environment },
  });
  try {
    parseManifest(text, path.join(dir, 'rewind.yaml'), { checkPaths: false });
  } catch (err) {
    // Where on the (one-line) text does not matter here.
    if (err instanceof ManifestError)
      return err.issues.map((i) => `${i.path}: ${i.message}`.replace(/ \(line \d+, column \d+\)/, ''));
    throw err;
  }
  return [];
}

const blueGreen = {
  kind: 'app',
  strategy: 'nginx-blue-green',
  blueGreen: {
    upstreamFile: './upstream.conf',
    url: 'http://127.0.0.1:8080',
    colours: { blue: { address: '127.0.0.1:9001' }, green: { address: '127.0.0.1:9002' } },
    start: 'systemctl start app@{{colour}}',
  },
  health: { path: '/healthz' },
};

describe('app components', () => {
  it('accepts the three strategies', () => {
    expect(issuesOf({ components: { app: blueGreen } })).toEqual([]);
    expect(
      issuesOf({
        components: {
          app: { kind: 'app', strategy: 'symlink', symlink: { releases: './releases', current: './current' } },
        },
      }),
    ).toEqual([]);
    expect(
      issuesOf({
        components: {
          app: {
            kind: 'app',
            strategy: 'command',
            commands: { status: 'cat version', switch: 'deploy {{version}}', retryExitCodes: [75] },
          },
        },
      }),
    ).toEqual([]);
  });

  it('names what a strategy lacks or what belongs to another', () => {
    expect(issuesOf({ components: { app: { kind: 'app', strategy: 'symlink' } } })).toEqual([
      'environments.production.components.app.symlink: strategy symlink needs a symlink section',
    ]);
    expect(issuesOf({ components: { app: { ...blueGreen, commands: { status: 'x', switch: 'y' } } } })).toEqual([
      'environments.production.components.app.commands: belongs to another strategy; strategy nginx-blue-green reads blueGreen',
    ]);
    expect(issuesOf({ components: { app: { ...blueGreen, health: { url: 'http://127.0.0.1:1/h' } } } })).toEqual([
      'environments.production.components.app.health: nginx-blue-green needs health.path: the idle colour must prove healthy before traffic moves to it',
      'environments.production.components.app.health.url: nginx-blue-green checks each colour directly: give health.path, not health.url',
    ]);
  });

  it('refuses colours that are not two, or share an address', () => {
    const colours = (c: unknown) => ({
      components: { app: { ...blueGreen, blueGreen: { ...blueGreen.blueGreen, colours: c } } },
    });
    expect(issuesOf(colours({ blue: { address: '127.0.0.1:9001' } }))).toEqual([
      'environments.production.components.app.blueGreen.colours: must name exactly two colours, e.g. blue and green',
    ]);
    expect(issuesOf(colours({ blue: { address: '127.0.0.1:9001' }, green: { address: '127.0.0.1:9001' } }))).toEqual([
      'environments.production.components.app.blueGreen.colours: each colour needs its own address',
    ]);
    expect(issuesOf(colours({ blue: { address: 'localhost' }, green: { address: '127.0.0.1:9001' } }))).toEqual([
      'environments.production.components.app.blueGreen.colours.blue.address: must be host:port, e.g. 127.0.0.1:9001',
    ]);
  });
});

describe('paths that must exist', () => {
  it('refuses an upstream file whose folder is not there, with checkPaths, at its key', () => {
    const text = JSON.stringify({
      repository: { path: './repo', passwordEnv: 'REWIND_REPOSITORY_PASSWORD' },
      approvers: ['alice'],
      environments: {
        production: {
          components: {
            app: {
              ...blueGreen,
              blueGreen: { ...blueGreen.blueGreen, upstreamFile: '/nonexistent-rewind/app.upstream' },
            },
          },
        },
      },
    });
    expect(() => parseManifest(text, path.join(dir, 'rewind.yaml'), { checkPaths: 'all' })).toThrow(
      /environments\.production\.components\.app\.blueGreen\.upstreamFile: \/nonexistent-rewind does not exist/,
    );
  });
});

describe('command templates', () => {
  it('refuses a {{value}} a command is not given, at its key, with the values it has', () => {
    expect(
      issuesOf({
        components: {
          app: {
            kind: 'app',
            strategy: 'command',
            commands: { status: 'deploy-status {{version}}', switch: 'deploy {{verison}} {{from}}' },
          },
          web: { ...blueGreen, blueGreen: { ...blueGreen.blueGreen, start: 'systemctl start app@{{colur}}' } },
        },
      }),
    ).toEqual([
      'environments.production.components.app.commands.status: uses {{version}}, which this command has no value for (it has: {{component}}, {{environment}})',
      'environments.production.components.app.commands.switch: uses {{verison}}, which this command has no value for (it has: {{component}}, {{environment}}, {{version}}, {{from}}); did you mean "version"?',
      'environments.production.components.web.blueGreen.start: uses {{colur}}, which this command has no value for (it has: {{component}}, {{environment}}, {{version}}, {{colour}}, {{address}}, {{host}}, {{port}}); did you mean "colour"?',
    ]);
    expect(
      issuesOf({
        components: {
          app: {
            kind: 'app',
            strategy: 'symlink',
            symlink: { releases: './releases', current: './current' },
            version: { path: '/version' },
          },
        },
      }),
    ).toEqual([
      "environments.production.components.app.version: only nginx-blue-green reads version (the path each colour answers on); strategy symlink learns the version from the release folder's name",
    ]);
    // Braces that are not a value of rewind's, like kubectl's Go templates, are the command's own.
    expect(
      issuesOf({
        components: {
          app: {
            kind: 'app',
            strategy: 'command',
            commands: {
              status: "kubectl get deploy/app -o go-template='{{.metadata.labels.version}}'",
              switch: 'deploy {{ version }}',
            },
          },
        },
      }),
    ).toEqual([]);
  });
});

describe('verify sections', () => {
  const components = {
    config: { kind: 'files', path: './config', dependsOn: ['db'] },
    db: { kind: 'files', path: './db' },
  };

  it('refuses a check of no kind or two kinds, and a Prometheus check without a bound', () => {
    expect(
      issuesOf({
        components,
        verify: {
          checks: [
            { name: 'none' },
            { name: 'two', http: { url: 'http://127.0.0.1:1/' }, command: { run: 'true' } },
            { name: 'unbounded', prometheus: { url: 'http://127.0.0.1:9090', query: 'up' } },
            { name: 'never', prometheus: { url: 'http://127.0.0.1:9090', query: 'up', below: 0.1, above: 0.5 } },
          ],
        },
      }),
    ).toEqual([
      'environments.production.verify.checks.0: give exactly one of http, command or prometheus',
      'environments.production.verify.checks.1: give exactly one of http, command or prometheus',
      'environments.production.verify.checks.2.prometheus: give below or above (or both)',
      'environments.production.verify.checks.3.prometheus: can never pass: the value must be above `above` and below `below`, so `above` must be the smaller',
    ]);
  });

  it('refuses an unknown policy, unknown components in waves and checks, and a wave before what it depends on', () => {
    expect(issuesOf({ components, verify: { onFailure: 'shrug' } })[0]).toMatch(
      /^environments\.production\.verify\.onFailure: .*compensate.*ask.*accept-with-warning/,
    );
    expect(
      issuesOf({
        components,
        verify: {
          waves: [{ name: 'one', components: ['dbb'] }],
          checks: [{ name: 'x', after: ['confg'], command: { run: 'true' } }],
        },
      }),
    ).toEqual([
      'environments.production.verify.waves.0.components.0: unknown component "dbb" (this environment has: config, db)',
      'environments.production.verify.checks.0.after.0: unknown component "confg" (this environment has: config, db)',
    ]);
    expect(
      issuesOf({
        components,
        verify: {
          waves: [
            { name: 'one', components: ['config'] },
            { name: 'two', components: ['db'] },
          ],
        },
      }),
    ).toEqual(['environments.production.verify.waves.0.components: config depends on db, which comes in a later wave']);
  });
});
