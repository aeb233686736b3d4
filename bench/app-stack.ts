// A real nginx in front of two colours of a tiny HTTP app, on loopback and free ports, for the
// app kind's tests and bench:switch. nginx is Debian's (`.ci/run` installs nginx-light).
// Runs from the sources (tests) and from lib/bench (the benchmark).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** The repository: this file is bench/app-stack.ts, or lib/bench/app-stack.js once built. */
const REPO_ROOT = [path.resolve(__dirname, '..'), path.resolve(__dirname, '..', '..')].find((dir) =>
  existsSync(path.join(dir, 'test/fixtures/app/tiny-app.mjs')),
)!;

export const TINY_APP = path.join(REPO_ROOT, 'test/fixtures/app/tiny-app.mjs');

/** The nginx binary: NGINX_BIN, else Debian's. */
export const NGINX_BIN = process.env.NGINX_BIN ?? '/usr/sbin/nginx';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * How nginx is switched: `reload` rewrites the upstream include and reloads nginx; `marker`
 * renames a file nginx tests per request, with no reload.
 */
export type SwitchMode = 'reload' | 'marker';

export interface AppStack {
  dir: string;
  mode: SwitchMode;
  /** Where clients reach the app through nginx. */
  url: string;
  colours: { blue: string; green: string };
  upstreamFile: string;
  /** marker mode: the folder holding the active colour's file. */
  markerDir: string;
  nginxConf: string;
  /** The nginx command and options the manifest gives rewind. */
  nginxCommand: string[];
  /** The manifest's start command for the idle colour. */
  startCommand: string;
  /** Starts `version` on a colour now (as a deployment would) and waits until it answers. */
  startRelease(colour: 'blue' | 'green', version: string): Promise<void>;
  /** Stops whatever runs on a colour. */
  stopColour(colour: 'blue' | 'green'): Promise<void>;
  /** Points nginx at a colour the way a deployment would (without rewind). */
  activate(colour: 'blue' | 'green', version: string): Promise<void>;
  /** Makes `version`'s health check fail (503) or pass again. */
  setUnhealthy(version: string, unhealthy: boolean): void;
  /** Makes `version`'s pages fail (500) while its health check still passes, or work again. */
  setBroken(version: string, broken: boolean): void;
  /** The version nginx serves now, through a fresh connection. */
  served(): Promise<string>;
  teardown(): Promise<void>;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function answer(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000), headers: { connection: 'close' } });
  return (await res.text()).trim();
}

export async function startAppStack(dir: string, mode: SwitchMode = 'reload'): Promise<AppStack> {
  mkdirSync(dir, { recursive: true });
  const stateDir = path.join(dir, 'app-state');
  mkdirSync(stateDir, { recursive: true });
  const [listen, blue, green] = [await freePort(), await freePort(), await freePort()];
  const colours = { blue: `127.0.0.1:${blue}`, green: `127.0.0.1:${green}` };
  const upstreamFile = path.join(dir, 'app-upstream.conf');
  writeFileSync(upstreamFile, `server ${colours.blue};\n`);
  const markerDir = path.join(dir, 'active');
  mkdirSync(markerDir, { recursive: true });
  writeFileSync(path.join(markerDir, 'blue'), '');
  const upstreams =
    mode === 'reload'
      ? `upstream app {\n    include ${upstreamFile};\n    keepalive 32;\n  }`
      : `upstream app_blue {\n    server ${colours.blue};\n    keepalive 32;\n  }\n  upstream app_green {\n    server ${colours.green};\n    keepalive 32;\n  }`;
  const route =
    mode === 'reload'
      ? 'proxy_pass http://app;'
      : `set $rewind_colour blue;\n      if (-f ${markerDir}/green) {\n        set $rewind_colour green;\n      }\n      proxy_pass http://app_$rewind_colour;`;
  const nginxConf = path.join(dir, 'nginx.conf');
  const root = process.getuid?.() === 0;
  writeFileSync(
    nginxConf,
    `${root ? 'user root;\n' : ''}daemon off;
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp-body;
  proxy_temp_path ${dir}/tmp-proxy;
  fastcgi_temp_path ${dir}/tmp-fastcgi;
  uwsgi_temp_path ${dir}/tmp-uwsgi;
  scgi_temp_path ${dir}/tmp-scgi;
  ${upstreams}
  server {
    listen 127.0.0.1:${listen};
    keepalive_requests 100000;
    location / {
      ${route}
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  const nginxCommand = [NGINX_BIN, '-p', dir, '-c', nginxConf];
  const nginx: ChildProcess = spawn(NGINX_BIN, ['-p', dir, '-c', nginxConf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let nginxErr = '';
  nginx.stderr!.on('data', (b: Buffer) => (nginxErr += b.toString()));
  const url = `http://127.0.0.1:${listen}`;
  const startCommand = `${process.execPath} ${TINY_APP} --version {{version}} --address {{address}} --state-dir ${stateDir} >> ${dir}/app.log 2>&1 &`;

  const pidOf = (address: string) => {
    const file = path.join(stateDir, `app-${address.split(':')[1]}.pid`);
    return existsSync(file) ? Number(readFileSync(file, 'utf8')) : undefined;
  };

  const stack: AppStack = {
    dir,
    mode,
    url,
    colours,
    upstreamFile,
    markerDir,
    nginxConf,
    nginxCommand,
    startCommand,
    async startRelease(colour, version) {
      await stack.stopColour(colour);
      const child = spawn(
        process.execPath,
        [TINY_APP, '--version', version, '--address', colours[colour], '--state-dir', stateDir],
        { detached: true, stdio: 'ignore' },
      );
      child.unref();
      await waitFor(
        `${version} on ${colour}`,
        async () => (await answer(`http://${colours[colour]}/version`)) === version,
      );
    },
    async stopColour(colour) {
      const pid = pidOf(colours[colour]);
      if (pid === undefined) return;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
      rmSync(path.join(stateDir, `app-${colours[colour].split(':')[1]}.pid`), { force: true });
      await waitFor(`${colour} to stop`, async () => {
        try {
          await answer(`http://${colours[colour]}/version`);
          return false;
        } catch {
          return true;
        }
      });
    },
    async activate(colour, version) {
      if (mode === 'marker') {
        for (const c of ['blue', 'green']) rmSync(path.join(markerDir, c), { force: true });
        writeFileSync(path.join(markerDir, colour), '');
      } else {
        writeFileSync(upstreamFile, `server ${colours[colour]};\n`);
        execFileSync(NGINX_BIN, ['-p', dir, '-c', nginxConf, '-s', 'reload'], { stdio: 'ignore' });
      }
      await waitFor(`nginx to serve ${version}`, async () => {
        for (let i = 0; i < 5; i++) if ((await stack.served()) !== version) return false;
        return true;
      });
    },
    setUnhealthy(version, unhealthy) {
      const file = path.join(stateDir, `unhealthy-${version}`);
      if (unhealthy) writeFileSync(file, '');
      else rmSync(file, { force: true });
    },
    setBroken(version, broken) {
      const file = path.join(stateDir, `broken-${version}`);
      if (broken) writeFileSync(file, '');
      else rmSync(file, { force: true });
    },
    served: () => answer(`${url}/version`),
    async teardown() {
      for (const f of readdirSync(stateDir).filter((n) => n.endsWith('.pid'))) {
        try {
          process.kill(Number(readFileSync(path.join(stateDir, f), 'utf8')), 'SIGKILL');
        } catch {
          // gone already
        }
      }
      nginx.kill('SIGQUIT');
      await new Promise((r) => (nginx.exitCode !== null ? r(undefined) : nginx.once('exit', r)));
    },
  };
  await waitFor('nginx to listen', async () => {
    if (nginx.exitCode !== null) throw new Error(`nginx exited: ${nginxErr}`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(1_000) });
    } catch (err) {
      return !/ECONNREFUSED/.test(String((err as { cause?: unknown }).cause));
    }
    return true;
  });
  return stack;
}

/** The app component of the manifest for this stack. */
export function blueGreenComponent(stack: AppStack, extra: Record<string, unknown> = {}) {
  return {
    kind: 'app' as const,
    strategy: 'nginx-blue-green' as const,
    blueGreen: {
      ...(stack.mode === 'marker' ? { marker: stack.markerDir } : { upstreamFile: stack.upstreamFile }),
      nginx: stack.nginxCommand,
      url: stack.url,
      colours: { blue: { address: stack.colours.blue }, green: { address: stack.colours.green } },
      start: stack.startCommand,
      keepPrevious: '15m',
    },
    health: { path: '/healthz', successes: 3, interval: '50ms', timeout: '5s' },
    timeout: '10s',
    ...extra,
  };
}
