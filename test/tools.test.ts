// scripts/ensure-tools.sh: cache first, then a checksum-verified release download, then a Go
// build, and a message naming what to install when nothing works. Release downloads are served
// by a local HTTP server here; the Go build itself is exercised by every fresh CI machine.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../src/platform/temporal-dev-server';
import { eventually, REPO_ROOT } from './support/harness';
import { tempDir } from './support/temp';

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'ensure-tools.sh');
const dir = tempDir('rewind-tools-');
const arch = os.arch() === 'arm64' ? 'arm64' : 'amd64';

function fakeBinary(file: string, body: string): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}
const fakeTemporal = (file: string) => fakeBinary(file, 'exit 0');
const fakeRestic = (file: string, version: string) =>
  fakeBinary(file, `[ "$1" = version ] && echo "restic ${version} compiled with go1.26 on linux/${arch}"; exit 0`);

function run(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('bash', [SCRIPT], {
      env: { HOME: dir, PATH: '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stderr, ms: Date.now() - started }));
  });
}

describe('scripts/ensure-tools.sh', () => {
  it('uses binaries already in the cache', async () => {
    const cache = path.join(dir, 'cache-full');
    fakeTemporal(path.join(cache, 'temporal'));
    fakeRestic(path.join(cache, 'restic'), '0.19.1');
    const result = await run({ REWIND_TOOLS_DIR: cache, REWIND_TOOLS_NO_DOWNLOAD: '1' });
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`temporal: ${cache}/temporal (cached)`);
    expect(result.stderr).toContain(`restic: ${cache}/restic (cached)`);
  });

  it('names what to install when neither PATH, a download nor Go can provide it', async () => {
    const result = await run({ REWIND_TOOLS_DIR: path.join(dir, 'cache-empty'), REWIND_TOOLS_NO_DOWNLOAD: '1' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'tools: error: the temporal CLI is missing. Install it (https://docs.temporal.io/cli',
    );
  });

  it('refuses a restic older than 0.17 on PATH', async () => {
    const bin = path.join(dir, 'old-bin');
    fakeRestic(path.join(bin, 'restic'), '0.14.0');
    const result = await run({
      PATH: `${bin}:/usr/bin:/bin`,
      REWIND_TOOLS_DIR: path.join(dir, 'cache-old'),
      REWIND_TOOLS_NO_DOWNLOAD: '1',
      REWIND_TEMPORAL_BIN: fakeTemporal(path.join(dir, 'fake-temporal')),
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `tools: error: restic 0.14.0 at ${bin}/restic is too old: rewind needs restic >= 0.17 (for restore --overwrite if-changed --delete`,
    );
  });

  it('waits for another run holding the cache, instead of building the same tool twice', async () => {
    const cache = path.join(dir, 'cache-locked');
    fakeTemporal(path.join(cache, 'temporal'));
    fakeRestic(path.join(cache, 'restic'), '0.19.1');
    // Another run holds the lock for a moment.
    const holder = spawn('flock', [path.join(cache, '.lock'), 'sleep', '2'], { stdio: 'ignore' });
    const held = () => spawnSync('flock', ['-n', path.join(cache, '.lock'), 'true']).status !== 0;
    await eventually(() => held() || undefined, 'the other run to take the lock', 5_000);
    const result = await run({ REWIND_TOOLS_DIR: cache, REWIND_TOOLS_NO_DOWNLOAD: '1' });
    holder.kill();
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`waiting for another ensure-tools run to finish (lock ${cache}/.lock)`);
    expect(result.ms).toBeGreaterThanOrEqual(1_000);
  });

  it('gives up on an unreachable release server at once and moves on', async () => {
    const result = await run({
      REWIND_TOOLS_DIR: path.join(dir, 'cache-closed'),
      REWIND_TOOLS_MIRROR: `http://127.0.0.1:${await freePort()}`,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'temporal: no verified release download (unreachable, or checksum mismatch); trying the Go build',
    );
    expect(result.ms).toBeLessThan(15_000);
  });

  describe('from a release server', () => {
    let server: Server;
    let mirror: string;
    const files = new Map<string, Buffer>();

    beforeAll(async () => {
      const stage = path.join(dir, 'stage');
      fakeTemporal(path.join(stage, 'temporal'));
      execFileSync('tar', ['-czf', path.join(stage, 'cli.tar.gz'), '-C', stage, 'temporal']);
      const tarball = readFileSync(path.join(stage, 'cli.tar.gz'));
      const cliName = `temporal_cli_1.5.1_linux_${arch}.tar.gz`;
      files.set(`/temporalio/cli/releases/download/v1.5.1/${cliName}`, tarball);
      files.set(
        '/temporalio/cli/releases/download/v1.5.1/temporal_cli_1.5.1_checksums.txt',
        Buffer.from(`${createHash('sha256').update(tarball).digest('hex')}  ${cliName}\n`),
      );
      fakeRestic(path.join(stage, 'restic'), '0.19.1');
      const bz = execFileSync('bzip2', ['-c', path.join(stage, 'restic')]);
      const resticName = `restic_0.19.1_linux_${arch}.bz2`;
      files.set(`/restic/restic/releases/download/v0.19.1/${resticName}`, bz);
      // A tampered checksum list: the restic download must be refused.
      files.set(
        '/restic/restic/releases/download/v0.19.1/SHA256SUMS',
        Buffer.from(`${'0'.repeat(64)}  ${resticName}\n`),
      );
      server = createServer((req, res) => {
        const body = files.get(req.url ?? '');
        res.writeHead(body ? 200 : 404).end(body ?? 'not found');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise((resolve) => server.close(resolve)));

    it('installs a download whose checksum matches, and refuses one whose checksum does not', async () => {
      const cache = path.join(dir, 'cache-download');
      const result = await run({ REWIND_TOOLS_DIR: cache, REWIND_TOOLS_MIRROR: mirror });
      expect(result.stderr).toContain('temporal: downloaded v1.5.1');
      expect(existsSync(path.join(cache, 'temporal'))).toBe(true);
      expect(result.stderr).toContain(
        'restic: no verified release download (unreachable, or checksum mismatch); trying the Go build',
      );
      expect(existsSync(path.join(cache, 'restic'))).toBe(false);
      expect(result.code).toBe(1);
    });
  });
});
