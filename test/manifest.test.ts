// Bad manifests fail with an error that names the key, and nothing starts.
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ManifestError, parseManifest, repositoryPassword } from '../src/manifest/load';
import { manifestJsonSchema } from '../src/manifest/schema';
import { runCli } from './support/harness';
import { tempDir } from './support/temp';

const dir = tempDir('rewind-manifest-');
const configDir = path.join(dir, 'config');
const modelsDir = path.join(dir, 'models');
mkdirSync(configDir);
mkdirSync(modelsDir);
const linkedDir = path.join(dir, 'config-link');
symlinkSync(configDir, linkedDir);

const valid = `
repository: { path: ./snapshots, passwordEnv: REWIND_REPOSITORY_PASSWORD }
approvers: [alice, bob]
policy: { approvalTimeout: 30m }
environments:
  production:
    components:
      config: { kind: files, path: ${configDir}, format: config }
      models: { kind: files, path: ${modelsDir}, format: pickle, dependsOn: [config] }
`;

function issuesOf(text: string, checkPaths: 'all' | false = 'all'): string[] {
  try {
    parseManifest(text, path.join(dir, 'rewind.yaml'), { checkPaths });
  } catch (err) {
    if (err instanceof ManifestError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  return [];
}

describe('manifest validation', () => {
  it('accepts the documented shape and fills in defaults', () => {
    const { manifest } = parseManifest(valid, path.join(dir, 'rewind.yaml'), { checkPaths: 'all' });
    expect(manifest.repository.path).toBe(path.join(dir, 'snapshots'));
    expect(manifest.policy).toEqual({
      approvalTimeout: '30m',
      requiredApprovals: 1,
      heartbeatTimeout: '30s',
      planPreviewPaths: 20,
    });
    expect(manifest.temporal).toEqual({ namespace: 'default', taskQueue: 'rewind' });
    expect(manifest.environments.production!.components.config!.dependsOn).toEqual([]);
    expect(manifest.dataDir).toBe(path.join(dir, '.data'));
  });

  it.each([
    [
      'a missing key',
      valid.replace(`path: ${modelsDir}, `, ''),
      'environments.production.components.models.path: required',
    ],
    ['a missing section', valid.replace('approvers: [alice, bob]\n', ''), 'approvers: required'],
    [
      'a wrong type',
      valid.replace('approvers: [alice, bob]', 'approvers: alice'),
      'approvers: expected array, got string "alice"',
    ],
    [
      'a wrong duration',
      valid.replace('30m', 'half an hour'),
      'policy.approvalTimeout: must be a duration such as 90s, 30m or 2h',
    ],
    [
      'an unknown key',
      valid.replace('format: config }', 'format: config, paht: /x }'),
      'environments.production.components.config.paht: unknown key',
    ],
    ['an unknown top-level key', `${valid}\nextra: 1\n`, 'extra: unknown key'],
    [
      'an unknown kind',
      valid.replace('kind: files, path: ' + configDir, 'kind: s3, path: ' + configDir),
      'environments.production.components.config.kind: unknown kind "s3"; expected one of: files',
    ],
    [
      'an unknown format',
      valid.replace('format: config', 'format: xml'),
      'environments.production.components.config.format: Invalid option: expected one of "config"|"pickle"|"any"',
    ],
    [
      'a bad environment name',
      valid.replace('  production:', '  Production:'),
      'environments.Production: invalid name "Production": must start with a lowercase letter and hold only a-z, 0-9 and "-" (40 characters at most)',
    ],
    [
      'a dependency on an unknown component',
      valid.replace('dependsOn: [config]', 'dependsOn: [cofnig]'),
      'environments.production.components.models.dependsOn.0: unknown component "cofnig" (this environment has: config, models)',
    ],
    [
      'a dependency cycle',
      valid.replace('format: config }', 'format: config, dependsOn: [models] }'),
      'environments.production.components: dependency cycle: config -> models -> config',
    ],
    [
      'a path that does not exist',
      valid.replace(configDir, '/nonexistent/config'),
      'environments.production.components.config.path: /nonexistent/config does not exist',
    ],
    [
      'a files path that is a symbolic link',
      valid.replace(configDir, linkedDir),
      `environments.production.components.config.path: ${linkedDir} is a symbolic link (to ${configDir}); rewind writes the directory at this path and would replace the link with a directory: name the directory itself`,
    ],
    ['invalid YAML', 'approvers: [alice\n', 'YAML'],
    [
      'two environments sharing a folder',
      `${valid}  regression:\n    components:\n      config: { kind: files, path: ${configDir} }\n`,
      `environments.regression.components.config.path: ${configDir} is the same folder as environments.production.components.config.path (line 12, column 30); each environment's lock guards only its own rollbacks, so two rollbacks could write this folder at once`,
    ],
    [
      'a component nested in another',
      valid.replace(`path: ${modelsDir}`, `path: ${configDir}/nested`),
      `environments.production.components.models.path: ${configDir}/nested is inside environments.production.components.config.path (${configDir}) (line 9, column 30); restoring one would overwrite the other's files`,
    ],
    [
      'the repository inside a component',
      valid.replace('./snapshots', `${configDir}/repo`),
      `repository.path: ${configDir}/repo is inside environments.production.components.config.path (${configDir}) (line 2, column 15); a rollback of that component would overwrite the repository`,
    ],
    [
      'dataDir inside a component',
      valid.replace('approvers:', `dataDir: ${modelsDir}/state\napprovers:`),
      `dataDir: ${modelsDir}/state is inside environments.production.components.models.path (${modelsDir}) (line 3, column 1); a rollback of that component would overwrite rewind's plans, reports and agent state`,
    ],
    [
      'the file system root as a folder',
      valid.replace(configDir, '/'),
      'environments.production.components.config.path: /: must not be the file system root (line 8, column 30)',
    ],
    [
      'a path escaping with ..',
      valid.replace(configDir, '../config'),
      'environments.production.components.config.path: ../config: must not contain ".."; name the folder itself (rewind compares folders by name, and ".." after a symbolic link leads somewhere else) (line 8, column 30)',
    ],
    [
      'more required approvals than distinct approvers',
      valid.replace('approvalTimeout: 30m', 'approvalTimeout: 30m, requiredApprovals: 3'),
      'policy.requiredApprovals: 3 approvals needed, but only 2 distinct approvers (alice, bob) (line 4, column 33); no rollback could ever be approved',
    ],
    [
      'a blank approver',
      valid.replace('[alice, bob]', '[alice, "", bob]'),
      'approvers.1: must not be blank (line 3, column 20)',
    ],
    [
      'a duplicate approver',
      valid.replace('[alice, bob]', '[alice, bob, alice]'),
      'approvers.2: "alice" is listed twice (line 3, column 25)',
    ],
    [
      'a zero duration',
      valid.replace('approvalTimeout: 30m', 'approvalTimeout: 0m'),
      'policy.approvalTimeout: must be from 1s to 7d, not 0m (line 4, column 11)',
    ],
    [
      'an absurd duration',
      valid.replace('approvalTimeout: 30m', 'approvalTimeout: 30m, heartbeatTimeout: 30d'),
      'policy.heartbeatTimeout: must be from 1s to 1h, not 30d (line 4, column 33)',
    ],
    [
      'a dependency listed twice',
      valid.replace('dependsOn: [config]', 'dependsOn: [config, config]'),
      'environments.production.components.models.dependsOn.1: "config" is listed twice',
    ],
    [
      'a component named like an object prototype key',
      valid.replace('      models:', '      constructor:').replace('dependsOn: [config]', 'dependsOn: []'),
      'environments.production.components.constructor: invalid name "constructor": is a name every JavaScript object already has; choose another (line 9, column 7)',
    ],
    [
      'a component named __proto__, which would otherwise vanish',
      valid.replace('      models:', '      __proto__:').replace('dependsOn: [config]', 'dependsOn: []'),
      'environments.production.components.__proto__: invalid name "__proto__": is a name every JavaScript object already has; choose another (line 9, column 7)',
    ],
    [
      'a misspelt key, suggesting the right one',
      valid.replace('policy:', 'polcy:'),
      'polcy: unknown key (line 4, column 1); did you mean "policy"?',
    ],
    [
      'a drift rule naming an aspect no finding has',
      `${valid}drift: { rules: [{ subject: '**', aspect: contnet, allow: true }] }\n`,
      'drift.rules.0.aspect: no drift finding has the aspect "contnet" (aspects: component, content, key, line, link, migration, mode, pickle, pickle-global, pickle-stream, rows, sample, schema, truncated, type, unparseable, unreadable, version) (line 10, column 35); did you mean "content"?',
    ],
    [
      'a drift rule naming an environment the manifest lacks',
      `${valid}drift: { rules: [{ from: production, to: regresion, severity: info }] }\n`,
      'drift.rules.0.to: unknown environment "regresion" (the manifest has: production)',
    ],
  ])('rejects %s, naming the key', (_what, text, expected) => {
    expect(issuesOf(text)[0]).toContain(expected);
  });

  const withDb = (db: string) => valid.replace('      models:', `      db: ${db}\n      models:`);
  it.each([
    [
      'neither url nor urlEnv',
      '{ kind: postgres }',
      'environments.production.components.db: set exactly one of url or urlEnv (line 9, column 7)',
    ],
    [
      'both url and urlEnv',
      '{ kind: postgres, url: "postgres://a@h/d", urlEnv: DB_URL }',
      'environments.production.components.db: set exactly one of url or urlEnv (line 9, column 7)',
    ],
    [
      'a URL that is not postgres',
      '{ kind: postgres, url: "mysql://a@h/d" }',
      'environments.production.components.db.url: must be a postgres:// URL (line 9, column 29)',
    ],
    [
      'an unknown strategy',
      '{ kind: postgres, urlEnv: DB_URL, strategy: rewind }',
      'environments.production.components.db.strategy: Invalid option: expected one of "undo"|"restore"|"pitr" (line 9, column 45)',
    ],
    [
      'pitr without its section',
      '{ kind: postgres, urlEnv: DB_URL, strategy: pitr }',
      'environments.production.components.db: strategy pitr needs a pitr section (dataDir, archiveDir, baseBackupDir) (line 9, column 7)',
    ],
    [
      'a migrations folder that does not exist',
      '{ kind: postgres, urlEnv: DB_URL, migrations: ./no-such-folder }',
      `environments.production.components.db.migrations: ${path.join(dir, 'no-such-folder')} does not exist (line 9, column 45)`,
    ],
    [
      'an unknown key',
      '{ kind: postgres, urlEnv: DB_URL, migration: ./m }',
      'environments.production.components.db.migration: unknown key (line 9, column 45); did you mean "migrations"?',
    ],
  ])('rejects a postgres component with %s, naming the key', (_what, db, expected) => {
    expect(issuesOf(withDb(db))[0]).toBe(expected);
  });

  it('reports every problem at once', () => {
    const text = valid.replace(`path: ${modelsDir}, `, '').replace('approvers: [alice, bob]', 'approvers: []');
    expect(issuesOf(text)).toEqual([
      'approvers: must name at least one approver (line 3, column 1)',
      'environments.production.components.models.path: required (line 9, column 7)',
    ]);
  });

  it('names the password variable when it is unset, and never prints a password', () => {
    const { manifest } = parseManifest(valid, path.join(dir, 'rewind.yaml'));
    expect(() => repositoryPassword(manifest, {})).toThrow(
      'environment variable REWIND_REPOSITORY_PASSWORD is not set',
    );
    expect(repositoryPassword(manifest, { REWIND_REPOSITORY_PASSWORD: 'pw' })).toBe('pw');
  });

  it('exports a JSON Schema from the same zod schema, for editors', () => {
    const schema = manifestJsonSchema() as {
      properties: Record<string, unknown>;
      required: string[];
      additionalProperties: boolean;
    };
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['repository', 'approvers', 'policy', 'environments']),
    );
    expect(schema.required).toEqual(expect.arrayContaining(['repository', 'approvers', 'environments']));
    expect(schema.additionalProperties).toBe(false);
  });
});

describe('a bad manifest stops every command before anything starts', () => {
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, valid.replace(configDir, '/nonexistent/config'));

  it('the agent exits 1 with one line naming the key', async () => {
    const result = await runCli(['--manifest', bad, 'agent', '--env', 'production'], {
      env: { REWIND_REPOSITORY_PASSWORD: 'x' },
    });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      `error: ${bad}: environments.production.components.config.path: /nonexistent/config does not exist (line 8, column 30)`,
    );
  });

  it('`rewind start` exits 1 and starts no server', async () => {
    const workdir = path.join(dir, 'start-bad');
    mkdirSync(workdir);
    const manifest = path.join(workdir, 'rewind.yaml');
    writeFileSync(manifest, valid.replace(`path: ${modelsDir}, `, ''));
    const result = await runCli(['start', '--headless', '--port', '1'], {
      cwd: workdir,
      env: { REWIND_MANIFEST: manifest },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('environments.production.components.models.path: required');
    expect(result.stdout).not.toContain('starting the Temporal dev server');
    expect(existsSync(path.join(workdir, '.data', 'temporal.db'))).toBe(false);
  });

  it('`rewind start` says so when the Temporal port is taken, and starts nothing else', async () => {
    const workdir = path.join(dir, 'start-busy');
    mkdirSync(workdir);
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as AddressInfo).port;
    try {
      const result = await runCli(['start', '--headless', '--port', String(port)], {
        cwd: workdir,
        env: { REWIND_MANIFEST: '' },
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `error: could not start the Temporal dev server: port ${port} on 127.0.0.1 is in use by node (pid ${process.pid}); is rewind already running? Stop it, or choose another --port`,
      );
      expect(result.stderr).not.toContain('[worker]');
    } finally {
      busy.close();
    }
  });

  it("`rewind start` says so when the API's port is taken, and starts nothing", async () => {
    const workdir = path.join(dir, 'start-api-busy');
    mkdirSync(workdir);
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as AddressInfo).port;
    const manifest = path.join(workdir, 'rewind.yaml');
    writeFileSync(manifest, `${valid}api: { listen: "127.0.0.1:${port}" }\n`);
    try {
      const result = await runCli(['start', '--headless', '--port', '1'], {
        cwd: workdir,
        env: { REWIND_MANIFEST: manifest, REWIND_REPOSITORY_PASSWORD: 'x' },
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `error: cannot start the API: port ${port} on 127.0.0.1 is in use by node (pid ${process.pid}); is rewind already running? Stop it, or choose another api.listen in the manifest`,
      );
      expect(result.stdout).not.toContain('starting the Temporal dev server');
      expect(existsSync(path.join(workdir, '.data', 'temporal.db'))).toBe(false);
    } finally {
      busy.close();
    }
  });

  it('`rewind start` on a port where another Temporal server answers fails, and attaches nothing to it', async () => {
    const workdir = path.join(dir, 'start-other-server');
    mkdirSync(workdir);
    // The suite's own dev server plays someone else's.
    const port = Number(process.env.TEMPORAL_ADDRESS!.split(':').pop());
    const result = await runCli(['start', '--headless', '--port', String(port)], {
      cwd: workdir,
      env: { REWIND_MANIFEST: '' },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use by temporal \\(pid \\d+\\)`));
    expect(result.stdout).not.toContain('rewind is running');
    const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    try {
      const pollers = await connection.workflowService.describeTaskQueue({
        namespace: 'default',
        taskQueue: { name: 'rewind' },
        taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
      });
      expect(pollers.pollers ?? []).toEqual([]);
    } finally {
      await connection.close();
    }
  });

  it('`rewind manifest validate` lists every problem at once, each with its line and column', async () => {
    const several = path.join(dir, 'several.yaml');
    writeFileSync(
      several,
      valid
        .replace('[alice, bob]', '[alice, alice]')
        .replace('approvalTimeout: 30m', 'approvalTimeout: 0s')
        .replace(`path: ${modelsDir}`, `path: ${configDir}`)
        .replace('format: config }', 'format: config, paht: /x }'),
    );
    const result = await runCli(['--manifest', several, 'manifest', 'validate']);
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines[0]).toBe(`error: invalid manifest ${several}:`);
    expect(lines.slice(1)).toEqual([
      '  approvers.1: "alice" is listed twice (line 3, column 20)',
      '  policy.approvalTimeout: must be from 1s to 7d, not 0s (line 4, column 11)',
      expect.stringMatching(
        /^  environments\.production\.components\.config\.paht: unknown key \(line 8, column \d+\); did you mean "path"\?$/,
      ),
      `  environments.production.components.models.path: ${configDir} is the same folder as environments.production.components.config.path (line 9, column 30); restoring one would overwrite the other's files`,
    ]);
  });

  it('`rewind manifest validate --json` reports the problem as JSON', async () => {
    const result = await runCli(['--manifest', bad, 'manifest', 'validate', '--check-paths', '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stderr)).toEqual({
      error: `${bad}: environments.production.components.config.path: /nonexistent/config does not exist (line 8, column 30)`,
    });
  });
});
