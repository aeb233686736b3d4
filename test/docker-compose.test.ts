// No Docker engine runs here, so this checks docker-compose.yml's shape: the services, images,
// ports and commands a user's `docker compose up` depends on.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { REWIND_SEARCH_ATTRIBUTES } from '../src/domain/search-attributes';
import { loadManifest } from '../src/manifest/load';
import { REPO_ROOT } from './support/harness';

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  entrypoint?: string[];
  ports?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  volumes?: string[];
}

const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;

describe('docker-compose.yml', () => {
  it('declares Temporal on PostgreSQL, its schema and namespace setup, the Web UI, the worker, an agent and the API', () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        'postgresql',
        'rewind-agent-production',
        'rewind-api',
        'rewind-worker',
        'temporal',
        'temporal-schema',
        'temporal-setup',
        'temporal-ui',
      ].sort(),
    );
  });

  it('uses temporalio/server with admin-tools doing the schema setup, never the deprecated auto-setup image', () => {
    const images = Object.values(services).map((s) => s.image ?? '');
    expect(images.some((i) => i.includes('auto-setup'))).toBe(false);
    expect(services.temporal!.image).toMatch(/^temporalio\/server:\d+\.\d+\.\d+$/);
    expect(services['temporal-schema']!.image).toMatch(/^temporalio\/admin-tools:/);
    expect(services['temporal-schema']!.command).toEqual(['schema']);
    expect(services.temporal!.depends_on).toEqual({
      'temporal-schema': { condition: 'service_completed_successfully' },
    });
    expect(services.temporal!.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'postgresql' });
    expect(services['temporal-ui']!.image).toMatch(/^temporalio\/ui:/);
  });

  it('publishes the gRPC port and the Web UI', () => {
    expect(services.temporal!.ports).toContain('7233:7233');
    expect(services['temporal-ui']!.ports).toContain('8080:8080');
    expect(services['temporal-ui']!.environment!.TEMPORAL_ADDRESS).toBe('temporal:7233');
  });

  it('runs the control worker, the production agent and the API from the rewind image', () => {
    for (const name of ['rewind-worker', 'rewind-agent-production', 'rewind-api']) {
      expect(services[name]).toMatchObject({ build: '.', image: 'rewind:local' });
      expect(services[name]!.environment).toMatchObject({
        TEMPORAL_ADDRESS: 'temporal:7233',
        REWIND_MANIFEST: '/etc/rewind/rewind.yaml',
      });
      expect(services[name]!.depends_on).toEqual({ 'temporal-setup': { condition: 'service_completed_successfully' } });
    }
    expect(services['rewind-worker']!.command).toEqual(['worker']);
    expect(services['rewind-agent-production']!.command).toEqual(['agent', '--env', 'production']);
    expect(services['rewind-api']!.command).toEqual(['api', '--listen', '0.0.0.0:8787']);
    expect(services['rewind-api']!.ports).toContain('8787:8787');
    expect(existsSync(path.join(REPO_ROOT, 'Dockerfile'))).toBe(true);
  });

  it('registers every search attribute the workflows set', () => {
    const setup = readFileSync(path.join(REPO_ROOT, 'deploy', 'temporal-setup.sh'), 'utf8');
    expect(services['temporal-setup']!.command).toEqual(['namespace']);
    for (const key of REWIND_SEARCH_ATTRIBUTES) expect(setup).toContain(key.name);
  });

  it('mounts a valid manifest whose agent paths are mounted into the agent', () => {
    const { manifest } = loadManifest(path.join(REPO_ROOT, 'deploy', 'rewind.yaml'));
    const agentVolumes = services['rewind-agent-production']!.volumes!.map((v) => v.split(':')[1]);
    for (const component of Object.values(manifest.environments.production!.components)) {
      if (component.kind === 'files') expect(agentVolumes).toContain(component.path);
    }
    expect(agentVolumes).toContain(manifest.repository.path);
  });
});
