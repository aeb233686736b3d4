// The demo that `rewind start` writes when there is no manifest: a production and a regression
// environment, each with config files in several formats and pickle files written by Python's
// own pickle module (rewind never unpickles them; it only snapshots and restores their bytes).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

const CONFIG_FILES: Record<string, string> = {
  'app.yaml': 'service: checkout\nreplicas: 3\nrelease: v1\nfeatures:\n  new_pricing: false\n',
  'database.json':
    JSON.stringify({ host: 'db.internal', port: 5432, pool: 20, password: 'demo-password-not-real' }, null, 2) + '\n',
  'features.ini': '[flags]\nnew_pricing = false\ndark_mode = true\n',
  'logging.toml': '[logging]\nlevel = "info"\nformat = "json"\n',
  '.env': 'APP_ENV=production\nAPI_TOKEN=demo-token-not-real\n',
};

// Used when python3 is absent: pickle.dumps({'model': 'demo', 'version': 1}, protocol=2).
const FALLBACK_PICKLE = Buffer.from(
  '80027d71002858050000006d6f64656c7101580400000064656d6f7102580700000076657273696f6e71034b01752e',
  'hex',
);

export async function writeDemo(manifestFile: string): Promise<string[]> {
  const base = path.dirname(manifestFile);
  const demoDir = path.join(base, '.data', 'demo');
  const written: string[] = [];
  for (const env of ['production', 'regression']) {
    const configDir = path.join(demoDir, env, 'config');
    const modelsDir = path.join(demoDir, env, 'models');
    await mkdir(configDir, { recursive: true });
    await mkdir(modelsDir, { recursive: true });
    for (const [name, text] of Object.entries(CONFIG_FILES)) {
      await writeFile(
        path.join(configDir, name),
        env === 'regression' ? text.replace('production', 'regression') : text,
      );
    }
    await writePickle(path.join(modelsDir, 'classifier.pkl'), {
      model: 'classifier',
      version: 1,
      weights: [0.1, 0.2, 0.3],
    });
    await writePickle(path.join(modelsDir, 'scaler.pkl'), { model: 'scaler', version: 1, mean: 0.5, scale: 2.0 });
    written.push(configDir, modelsDir);
  }
  const passwordFile = path.join(base, '.data', 'repository-password');
  if (!existsSync(passwordFile))
    await writeFile(passwordFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
  await writeFile(manifestFile, DEMO_MANIFEST);
  return written;
}

async function writePickle(file: string, value: unknown): Promise<void> {
  try {
    execFileSync(
      'python3',
      [
        '-c',
        'import json,pickle,sys; pickle.dump(json.loads(sys.argv[2]), open(sys.argv[1], "wb"), protocol=4)',
        file,
        JSON.stringify(value),
      ],
      {
        stdio: 'ignore',
        timeout: 10_000,
      },
    );
  } catch {
    await writeFile(file, FALLBACK_PICKLE);
  }
}

const DEMO_MANIFEST = `# rewind manifest (demo, written by \`rewind start\`). Reference: README.md#manifest
# Editors: point yaml-language-server at rewind.schema.json (npm run schema) for completion.
repository:
  path: ./.data/snapshots            # the restic repository that holds every snapshot
  passwordFile: ./.data/repository-password
approvers: [alice, bob]
policy:
  approvalTimeout: 30m
environments:
  production:
    components:
      config: { kind: files, path: ./.data/demo/production/config, format: config }
      models: { kind: files, path: ./.data/demo/production/models, format: pickle, dependsOn: [config] }
  regression:
    components:
      config: { kind: files, path: ./.data/demo/regression/config, format: config }
      models: { kind: files, path: ./.data/demo/regression/models, format: pickle, dependsOn: [config] }
metrics:                             # Prometheus /metrics (README.md#monitoring); the API's is on its port
  worker: 127.0.0.1:9471             # rollbacks, drift, snapshots
  agents: { production: 127.0.0.1:9472, regression: 127.0.0.1:9473 }   # restic, pg_dump
drift:                               # production → regression, every hour (README.md#drift-scans)
  rules:
    - name: per-environment settings
      component: config
      subject: '.env:APP_ENV'
      allow: true
`;
