// Manifests that parse but cannot work, or that would defeat the per-environment lock, are
// refused at load, each problem named by key, line and column, all of them in one error.
import { mkdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { ManifestError, parseManifest, type ManifestIssue } from '../src/manifest/load';
import { writeDemo } from '../src/workers/demo';
import { tempDir } from './support/temp';

const dir = tempDir('rewind-manifest-rules-');
const srv = path.join(dir, 'srv');
for (const d of ['a', 'b', 'c', 'a/config', 'shared/models']) mkdirSync(path.join(srv, d), { recursive: true });
const file = path.join(dir, 'rewind.yaml');

function problemsOf(text: string): ManifestIssue[] {
  try {
    parseManifest(text, file);
  } catch (err) {
    if (err instanceof ManifestError) return err.issues;
    throw err;
  }
  return [];
}
const issuesOf = (text: string) => problemsOf(text).map((i) => `${i.path}: ${i.message}`);

/** A manifest with two environments; `extra` goes under production's components. */
function manifest(
  options: { top?: string; policy?: string; approvers?: string; prod?: string; reg?: string } = {},
): string {
  return [
    'repository: { path: ./snapshots }',
    `approvers: ${options.approvers ?? '[alice, bob]'}`,
    ...(options.policy ? [`policy: ${options.policy}`] : []),
    ...(options.top ? [options.top] : []),
    'environments:',
    '  production:',
    '    components:',
    options.prod ?? `      config: { kind: files, path: ${srv}/a }`,
    '  regression:',
    '    components:',
    options.reg ?? `      config: { kind: files, path: ${srv}/b }`,
    '',
  ].join('\n');
}

describe('the manifest refuses folders that overlap', () => {
  it('accepts environments and components in separate folders', () => {
    expect(issuesOf(manifest())).toEqual([]);
  });

  it('refuses two environments sharing a folder, naming both keys, the line and the column', () => {
    expect(issuesOf(manifest({ reg: `      config: { kind: files, path: ${srv}/a }` }))).toEqual([
      `environments.regression.components.config.path: ${srv}/a is the same folder as environments.production.components.config.path (line 9, column 30); each environment's lock guards only its own rollbacks, so two rollbacks could write this folder at once`,
    ]);
  });

  it('refuses a component nested in another environment’s component', () => {
    const issues = problemsOf(manifest({ reg: `      config: { kind: files, path: ${srv}/a/config }` }));
    expect(issues).toEqual([
      {
        path: 'environments.regression.components.config.path',
        message: `${srv}/a/config is inside environments.production.components.config.path (${srv}/a) (line 9, column 30); each environment's lock guards only its own rollbacks, so two rollbacks could write this folder at once`,
        line: 9,
        column: 30,
      },
    ]);
  });

  it('refuses two components of one environment sharing or nesting folders', () => {
    const prod = [
      `      config: { kind: files, path: ${srv}/a }`,
      `      models: { kind: files, path: ${srv}/a/config }`,
      `      copy: { kind: files, path: ${srv}/a/ }`,
    ].join('\n');
    expect(issuesOf(manifest({ prod }))).toEqual([
      `environments.production.components.models.path: ${srv}/a/config is inside environments.production.components.config.path (${srv}/a) (line 7, column 30); restoring one would overwrite the other's files`,
      `environments.production.components.copy.path: ${srv}/a is the same folder as environments.production.components.config.path (line 8, column 28); restoring one would overwrite the other's files`,
    ]);
  });

  it('refuses a component that holds another, whichever comes first', () => {
    const prod = [
      `      models: { kind: files, path: ${srv}/a/config }`,
      `      config: { kind: files, path: ${srv}/a }`,
    ].join('\n');
    expect(issuesOf(manifest({ prod }))).toEqual([
      `environments.production.components.config.path: ${srv}/a holds environments.production.components.models.path (${srv}/a/config) (line 7, column 30); restoring one would overwrite the other's files`,
    ]);
  });

  it('sees through a symbolic link to the folder it names', () => {
    const link = path.join(dir, 'link-to-srv');
    symlinkSync(srv, link);
    expect(issuesOf(manifest({ reg: `      config: { kind: files, path: ${link}/a/config }` }))).toEqual([
      `environments.regression.components.config.path: ${link}/a/config (${srv}/a/config once links are followed) is inside environments.production.components.config.path (${srv}/a) (line 9, column 30); each environment's lock guards only its own rollbacks, so two rollbacks could write this folder at once`,
    ]);
  });

  it('refuses the repository inside a component, and a component inside the repository', () => {
    const text = manifest({ reg: `      config: { kind: files, path: ${dir}/snapshots/b }` }).replace(
      'path: ./snapshots',
      `path: ${srv}/a/repo`,
    );
    expect(issuesOf(text)).toEqual([
      `repository.path: ${srv}/a/repo is inside environments.production.components.config.path (${srv}/a) (line 1, column 15); a rollback of that component would overwrite the repository`,
    ]);
    expect(issuesOf(manifest({ reg: `      config: { kind: files, path: ./snapshots/b }` }))).toEqual([
      `environments.regression.components.config.path: ${dir}/snapshots/b is inside repository.path (${dir}/snapshots) (line 9, column 30); restoring it would write into the restic repository`,
    ]);
  });

  it('refuses dataDir inside a component, also when dataDir is the default', () => {
    expect(issuesOf(manifest({ top: `dataDir: ${srv}/a/state` }))).toContain(
      `dataDir: ${srv}/a/state is inside environments.production.components.config.path (${srv}/a) (line 3, column 1); a rollback of that component would overwrite rewind's plans, reports and agent state`,
    );
    expect(issuesOf(manifest({ prod: '      config: { kind: files, path: . }' }))).toEqual([
      `dataDir: ${dir}/.data (the default, ./.data) is inside environments.production.components.config.path (${dir}); a rollback of that component would overwrite rewind's plans, reports and agent state`,
      `repository.path: ${dir}/snapshots is inside environments.production.components.config.path (${dir}) (line 1, column 15); a rollback of that component would overwrite the repository`,
      `environments.regression.components.config.path: ${srv}/b is inside environments.production.components.config.path (${dir}) (line 9, column 30); each environment's lock guards only its own rollbacks, so two rollbacks could write this folder at once`,
    ]);
  });

  it('refuses a password file inside a component', () => {
    const text = manifest().replace('path: ./snapshots', `path: ./snapshots, passwordFile: ${srv}/b/pw`);
    expect(issuesOf(text)).toEqual([
      `repository.passwordFile: ${srv}/b/pw is inside environments.regression.components.config.path (${srv}/b) (line 1, column 34); a rollback of that component could delete or replace the password`,
    ]);
  });

  it('allows components inside dataDir, as the demo has them, and the demo manifest validates', async () => {
    const demo = path.join(dir, 'demo');
    mkdirSync(demo);
    await writeDemo(path.join(demo, 'rewind.yaml'));
    const { loadManifest } = await import('../src/manifest/load');
    expect(() => loadManifest(path.join(demo, 'rewind.yaml'), { checkPaths: 'all' })).not.toThrow();
  });

  it.each([
    ['the file system root', '/', '/: must not be the file system root'],
    ['a root spelt otherwise', '//./', '//./: must not be the file system root'],
    [
      'a relative path that climbs out',
      '../elsewhere',
      '../elsewhere: must not contain ".."; name the folder itself (rewind compares folders by name, and ".." after a symbolic link leads somewhere else)',
    ],
    [
      'an absolute path with ..',
      `${srv}/c/../b`,
      `${srv}/c/../b: must not contain ".."; name the folder itself (rewind compares folders by name, and ".." after a symbolic link leads somewhere else)`,
    ],
  ])('refuses %s as a component path', (_what, p, expected) => {
    expect(issuesOf(manifest({ prod: `      config: { kind: files, path: "${p}" }` }))).toEqual([
      `environments.production.components.config.path: ${expected} (line 6, column 30)`,
    ]);
  });

  it('refuses ".." and "/" in the other folders too', () => {
    const text = manifest({
      top: 'dataDir: ../state',
      reg: '      db: { kind: postgres, urlEnv: DB_URL, migrations: /, strategy: pitr, pitr: { dataDir: ./pg/../pg, archiveDir: ./wal, baseBackupDir: ./base } }',
    }).replace('path: ./snapshots', 'path: ../snapshots');
    expect(issuesOf(text).map((i) => i.replace(/: (\S+): .*?(\(line \d+, column \d+\))$/, ': $1 $2'))).toEqual([
      'repository.path: ../snapshots (line 1, column 15)',
      'dataDir: ../state (line 3, column 1)',
      'environments.regression.components.db.migrations: / (line 10, column 45)',
      'environments.regression.components.db.pitr.dataDir: ./pg/../pg (line 10, column 84)',
    ]);
  });

  it('does not mistake a restic URL for a path', () => {
    expect(issuesOf(manifest().replace('path: ./snapshots', 'path: "sftp:backup@host:/srv/../repo"'))).toEqual([]);
  });
});

describe('the manifest refuses approvals that cannot work', () => {
  it('refuses more required approvals than distinct approvers', () => {
    expect(issuesOf(manifest({ policy: '{ requiredApprovals: 3 }' }))).toEqual([
      'policy.requiredApprovals: 3 approvals needed, but only 2 distinct approvers (alice, bob) (line 3, column 11); no rollback could ever be approved',
    ]);
  });

  it('refuses blank and duplicate approvers, and counts only distinct ones', () => {
    expect(
      issuesOf(manifest({ approvers: '[alice, "", "  ", alice, " bob"]', policy: '{ requiredApprovals: 3 }' })),
    ).toEqual([
      'approvers.1: must not be blank (line 2, column 20)',
      'approvers.2: must not be blank (line 2, column 24)',
      'approvers.3: "alice" is listed twice (line 2, column 30)',
      'approvers.4: must not start or end with white space: " bob" (line 2, column 37)',
      'policy.requiredApprovals: 3 approvals needed, but only 2 distinct approvers (alice, bob) (line 3, column 11); no rollback could ever be approved',
    ]);
  });
});

describe('the manifest refuses durations that are zero or absurd', () => {
  it.each([
    ['approvalTimeout', '0s', 'must be from 1s to 7d, not 0s'],
    ['approvalTimeout', '8d', 'must be from 1s to 7d, not 8d'],
    ['approvalTimeout', '99999999999999999999d', 'must be from 1s to 7d, not 99999999999999999999d'],
    ['heartbeatTimeout', '0ms', 'must be from 1s to 1h, not 0ms'],
    ['heartbeatTimeout', '500ms', 'must be from 1s to 1h, not 500ms'],
    ['heartbeatTimeout', '2h', 'must be from 1s to 1h, not 2h'],
  ])('refuses policy.%s %s', (key, value, expected) => {
    expect(issuesOf(manifest({ policy: `{ ${key}: ${value} }` }))).toEqual([
      `policy.${key}: ${expected} (line 3, column 11)`,
    ]);
  });

  it.each([
    ['approvalTimeout', '1s'],
    ['approvalTimeout', '7d'],
    ['heartbeatTimeout', '1000ms'],
    ['heartbeatTimeout', '60m'],
  ])('accepts policy.%s %s at the edge of its range', (key, value) => {
    expect(issuesOf(manifest({ policy: `{ ${key}: ${value} }` }))).toEqual([]);
  });
});

describe('the manifest refuses names and lists that cannot be meant', () => {
  it('refuses a dependency listed twice', () => {
    const prod = [
      `      config: { kind: files, path: ${srv}/a }`,
      `      models: { kind: files, dependsOn: [config, config], path: ${srv}/c }`,
    ].join('\n');
    expect(issuesOf(manifest({ prod }))).toEqual([
      'environments.production.components.models.dependsOn.1: "config" is listed twice (line 7, column 50)',
    ]);
  });

  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'])(
    'refuses a component or environment named %s',
    (name) => {
      const component = issuesOf(manifest({ prod: `      ${name}: { kind: files, path: ${srv}/a }` }));
      expect(component).toHaveLength(1);
      expect(component[0]).toMatch(
        new RegExp(
          `^environments\\.production\\.components\\.${name}: invalid name "${name}": .* \\(line 6, column 7\\)$`,
        ),
      );
      const environment = issuesOf(manifest().replace('  regression:', `  ${name}:`));
      expect(environment).toHaveLength(1);
      expect(environment[0]).toMatch(
        new RegExp(`^environments\\.${name}: invalid name "${name}": .* \\(line 7, column 3\\)$`),
      );
    },
  );

  it('says why a name like constructor is refused', () => {
    expect(issuesOf(manifest({ prod: `      constructor: { kind: files, path: ${srv}/a }` }))).toEqual([
      'environments.production.components.constructor: invalid name "constructor": is a name every JavaScript object already has; choose another (line 6, column 7)',
    ]);
  });
});

describe('one pass, with suggestions', () => {
  it('reports three different problems in one error, in the order of the file', () => {
    const text = manifest({
      approvers: '[alice, alice]',
      policy: '{ approvalTimeout: 0s }',
      reg: `      config: { kind: files, path: ${srv}/a }`,
    });
    let error: unknown;
    try {
      parseManifest(text, file);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).message).toBe(
      [
        `invalid manifest ${file}:`,
        '  approvers.1: "alice" is listed twice (line 2, column 20)',
        '  policy.approvalTimeout: must be from 1s to 7d, not 0s (line 3, column 11)',
        `  environments.regression.components.config.path: ${srv}/a is the same folder as environments.production.components.config.path (line 10, column 30); each environment's lock guards only its own rollbacks, so two rollbacks could write this folder at once`,
      ].join('\n'),
    );
  });

  it('reports structural and semantic problems together', () => {
    const text = manifest({
      policy: '{ requiredApprovals: 5, heartbeatTimeout: soon }',
      reg: `      config: { kind: files, path: ${srv}/a, format: xml }`,
    });
    expect(issuesOf(text).map((i) => i.split(':')[0])).toEqual([
      'policy.requiredApprovals',
      'policy.heartbeatTimeout',
      'environments.regression.components.config.path',
      'environments.regression.components.config.format',
    ]);
  });

  it.each([
    [
      'a component key',
      manifest().replace(`path: ${srv}/b`, `paht: ${srv}/b`),
      'environments.regression.components.config.paht: unknown key (line 9, column 30); did you mean "path"?',
    ],
    [
      'a policy key',
      manifest({ policy: '{ requiredApproval: 1 }' }),
      'policy.requiredApproval: unknown key (line 3, column 11); did you mean "requiredApprovals"?',
    ],
    [
      'a top-level key',
      manifest().replace('approvers:', 'aprovers:'),
      'aprovers: unknown key (line 2, column 1); did you mean "approvers"?',
    ],
    [
      'a postgres key',
      manifest({ reg: '      db: { kind: postgres, urlEnv: DB_URL, migration: ./m }' }),
      'environments.regression.components.db.migration: unknown key (line 9, column 45); did you mean "migrations"?',
    ],
  ])('suggests the closest key for a misspelt %s, and says nothing more', (_what, text, expected) => {
    expect(issuesOf(text)).toEqual([expected]);
  });

  it('suggests nothing for a key far from every allowed one', () => {
    expect(issuesOf(manifest({ policy: '{ colour: blue }' }))).toEqual([
      'policy.colour: unknown key (line 3, column 11)',
    ]);
  });

  it('suggests a kind and a dependency close to the one written', () => {
    const prod = [
      `      config: { kind: fiels, path: ${srv}/a }`,
      `      models: { kind: files, dependsOn: [cofnig], path: ${srv}/c }`,
    ].join('\n');
    expect(issuesOf(manifest({ prod }))).toEqual([
      'environments.production.components.config.kind: unknown kind "fiels"; expected one of: files, postgres, app (line 6, column 17); did you mean "files"?',
      'environments.production.components.models.dependsOn.0: unknown component "cofnig" (this environment has: config, models) (line 7, column 42); did you mean "config"?',
    ]);
  });

  it('points a missing key at the mapping that lacks it', () => {
    expect(issuesOf(manifest({ reg: '      config: { kind: files }' }))).toEqual([
      'environments.regression.components.config.path: required (line 9, column 7)',
    ]);
  });
});

describe('the metrics and snapshots sections', () => {
  it('accepts listeners of their own and schedules of known environments', () => {
    const top = [
      'metrics: { worker: 127.0.0.1:9471, agents: { production: 127.0.0.1:9472 } }',
      'snapshots: { schedules: { production: { every: 1h } }, keep: { hourly: 2d, releases: 5, versions: [v41] } }',
    ].join('\n');
    expect(issuesOf(manifest({ top }))).toEqual([]);
  });

  it('names an unknown environment, two processes on one address, and bad tiers, all at once', () => {
    const top = [
      'api: { listen: 127.0.0.1:9471 }',
      'metrics: { worker: 127.0.0.1:9471, agents: { prodution: 127.0.0.1:9472 } }',
      'snapshots:',
      '  schedules: { staging: { every: 1h }, production: { every: 1m } }',
      '  keep: { hourly: 7 days, releases: -1 }',
      '  check: { readDataSubset: lots }',
    ].join('\n');
    expect(issuesOf(manifest({ top }))).toEqual([
      'metrics.worker: 127.0.0.1:9471 is already where api.listen listens (line 4, column 12)',
      'metrics.agents.prodution: unknown environment "prodution" (the manifest has: production, regression) (line 4, column 46); did you mean "production"?',
      'snapshots.schedules.staging: unknown environment "staging" (the manifest has: production, regression) (line 6, column 16)',
      'snapshots.schedules.production.every: must be from 5m to 7d, not 1m (line 6, column 54)',
      'snapshots.keep.hourly: must be a duration such as 90s, 30m or 2h (line 7, column 11)',
      'snapshots.keep.releases: Too small: expected number to be >=0 (line 7, column 27)',
      'snapshots.check.readDataSubset: must be a percentage such as 10% or a part such as 1/7 (line 8, column 12)',
    ]);
  });
});
