// A PostgreSQL cluster of the test's own: initdb on a free port, password authentication over
// TCP, removed afterwards. Its settings live in postgresql.conf, so a base backup of it (and a
// cluster recovered from one) comes back on the same port.
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, appendFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/platform/temporal-dev-server';
import { pgBin } from '../../src/components/postgres/tools';

export interface PrivateCluster {
  root: string;
  dataDir: string;
  port: number;
  password: string;
  /** URL of a database on the cluster, with the password. */
  url(database?: string, password?: string): string;
  stop(): void;
  remove(): void;
}

const asPostgres = (args: string[]) =>
  execFileSync('runuser', ['-u', 'postgres', '--', ...args], { stdio: 'pipe', timeout: 120_000 });

export async function createPrivateCluster(): Promise<PrivateCluster> {
  const bin = pgBin();
  const root = mkdtempSync(path.join(os.tmpdir(), 'rewind-cluster-'));
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
  chownSync(root, uid, gid);
  const dataDir = path.join(root, 'data');
  const password = 'cluster-secret';
  const pwfile = path.join(root, 'pwfile');
  writeFileSync(pwfile, `${password}\n`);
  chownSync(pwfile, uid, gid);
  asPostgres([
    bin.tool('initdb'),
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    `--pwfile=${pwfile}`,
  ]);
  const port = await freePort();
  appendFileSync(
    path.join(dataDir, 'postgresql.conf'),
    `\nport = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${root}'\nfsync = off\n`,
  );
  asPostgres([bin.tool('pg_ctl'), 'start', '-D', dataDir, '-w', '-t', '60', '-l', path.join(root, 'server.log')]);
  const cluster: PrivateCluster = {
    root,
    dataDir,
    port,
    password,
    url: (database = 'postgres', pw = password) =>
      `postgres://postgres:${encodeURIComponent(pw)}@127.0.0.1:${port}/${database}`,
    stop() {
      try {
        asPostgres([bin.tool('pg_ctl'), 'stop', '-D', dataDir, '-m', 'immediate', '-w']);
      } catch {
        // already stopped
      }
    },
    remove() {
      cluster.stop();
      // REWIND_TEST_KEEP=1 keeps the cluster's files (server.log, data directories) for a look.
      if (!process.env.REWIND_TEST_KEEP) rmSync(root, { recursive: true, force: true });
    },
  };
  return cluster;
}
