// The app kind's three ways of putting a release into service. Each reads which release runs
// (`state`), switches to another (`switchTo`), and finishes a switch an agent restart cut short
// (`settle`). Every failure before traffic moves leaves traffic where it was.
import { createHash } from 'node:crypto';
import { open, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../../domain/errors';
import { parseDuration } from '../../manifest/duration';
import type { RestoreOutcome } from '../core';
import type { AppComponent, AppFollowUpDetails, AppRestoreDetails, AppStrategy } from './kind';
import {
  awaitHealthy,
  describeExit,
  describeProbe,
  outputTail,
  probe,
  runManifestCommand,
  runShell,
  versionFromText,
  type HealthSpec,
  type TemplateValues,
} from './run';
import { shellQuote } from '../../platform/shell';

export interface LiveState {
  /** The release in service; undefined when nothing answers. */
  version?: string;
  /** nginx-blue-green: the colour nginx sends traffic to. */
  colour?: string;
  /** command: the SHA-256 of what the fingerprint command printed (what runs, beyond its version). */
  identity?: string;
  /** Why the version could not be read, for plans and errors. */
  problem?: string;
}

export type SwitchDetails = Omit<AppRestoreDetails, 'kind' | 'strategy'>;

export interface SwitchContext {
  purpose: 'rollback' | 'compensation';
  signal?: AbortSignal | undefined;
  /** Step progress for the CLI and the Web UI. */
  stage(stage: string): void;
}

export interface AppStrategyDriver {
  state(): Promise<LiveState>;
  /** What a completed switch leaves for later (blue/green: stopping the previous colour), if anything. */
  laterFor?(from: LiveState, done: SwitchDetails): RestoreOutcome['later'];
  /** Does what `laterFor` asked, unless the component changed since; says what it did. */
  followUp?(details: AppFollowUpDetails, signal?: AbortSignal): Promise<string>;
  /** Puts `version` into service, from `from`. */
  switchTo(version: string, from: LiveState, ctx: SwitchContext): Promise<SwitchDetails>;
  /** The link or upstream already names `version` but the step was cut short: finish it. */
  settle(version: string, ctx: SwitchContext): Promise<void>;
  /** Before approval: whether `version` can be put into service, and how (StageOutcome's note). */
  available?(version: string): Promise<{ ok: boolean; note: string }>;
  /** Whether the public entry serves `version` (verify); undefined when there is nothing more to ask. */
  servedProblem?(version: string): Promise<string | undefined>;
}

export interface StrategyDeps {
  environment: string;
  component: string;
}

const fail = (message: string) => ApplicationFailure.nonRetryable(message, ErrorType.ComponentUnavailable);

function healthSpec(c: AppComponent): HealthSpec | undefined {
  if (!c.health) return undefined;
  return {
    status: c.health.status,
    body: c.health.body,
    successes: c.health.successes,
    intervalMs: parseDuration(c.health.interval),
    timeoutMs: parseDuration(c.health.timeout),
  };
}

export function strategyFor(c: AppComponent, deps: StrategyDeps): AppStrategyDriver {
  const make: Record<AppStrategy, () => AppStrategyDriver> = {
    'nginx-blue-green': () => blueGreen(c, deps),
    symlink: () => symlinkStrategy(c, deps),
    command: () => commandStrategy(c, deps),
  };
  return make[c.strategy]();
}

// ---- nginx-blue-green ----

const UPSTREAM_HEADER =
  '# Written by rewind: the active colour of this upstream. Edits are replaced at the next switch.';

function blueGreen(c: AppComponent, deps: StrategyDeps): AppStrategyDriver {
  const bg = c.blueGreen!;
  const versionSpec = { path: c.version?.path ?? '/version', field: c.version?.field };
  const colours = Object.entries(bg.colours).map(([name, v]) => ({ name, address: v.address }));
  const timeoutMs = parseDuration(c.timeout);
  const health = healthSpec(c)!;
  const urlOf = (address: string, p: string) => `http://${address}${p}`;
  const values = (version: string, colour: { name: string; address: string }): TemplateValues => {
    const at = colour.address.lastIndexOf(':');
    return {
      version,
      colour: colour.name,
      address: colour.address,
      host: colour.address.slice(0, at).replace(/^\[|\]$/g, ''),
      port: colour.address.slice(at + 1),
      component: deps.component,
      environment: deps.environment,
    };
  };

  async function versionAt(address: string): Promise<{ version?: string; problem?: string }> {
    const answer = await probe(urlOf(address, versionSpec.path), { timeoutMs: Math.min(5_000, timeoutMs) });
    if (!answer.ok || answer.status !== 200)
      return { problem: `${urlOf(address, versionSpec.path)}: ${describeProbe(answer)}` };
    const version = versionFromText(answer.body ?? '', versionSpec.field);
    return version ? { version } : { problem: `${urlOf(address, versionSpec.path)} answered no version` };
  }

  async function activeColour(): Promise<{ name: string; address: string } | undefined> {
    if (bg.marker !== undefined) {
      const names = await readdir(bg.marker).catch(() => [] as string[]);
      const active = colours.filter((col) => names.includes(col.name));
      return active.length === 1 ? active[0] : undefined;
    }
    let text: string;
    try {
      text = await readFile(bg.upstreamFile!, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const servers = [...text.matchAll(/^\s*server\s+(\S+?)\s*[;\s]/gm)].map((m) => m[1]);
    return colours.find((col) => servers.includes(col.address));
  }

  async function nginx(args: string[], what: string, signal?: AbortSignal) {
    const command = [...bg.nginx, ...args].map(shellQuote).join(' ');
    const result = await runShell(command, { values: {}, timeoutMs, signal });
    return {
      ok: result.code === 0,
      message: `${what} (${command}) ${describeExit(result, timeoutMs)}${outputTail(result)}`,
    };
  }

  /** Marker mode: renames the active colour's file to the new colour's (one of them exists at every instant). */
  async function moveMarker(from: string | undefined, to: string) {
    const dir = bg.marker!;
    if (from !== undefined) await rename(path.join(dir, from), path.join(dir, to));
    else {
      await writeFile(path.join(dir, `.${to}.rewind-tmp`), '');
      await rename(path.join(dir, `.${to}.rewind-tmp`), path.join(dir, to));
    }
    const handle = await open(dir, 'r');
    await handle.sync();
    await handle.close();
  }

  async function writeUpstream(text: string) {
    const tmp = `${bg.upstreamFile}.rewind-tmp`;
    await writeFile(tmp, text);
    const handle = await open(tmp, 'r');
    await handle.sync();
    await handle.close();
    await rename(tmp, bg.upstreamFile!);
  }

  /** nginx -t, then a graceful reload; on a refusal the previous upstream file is put back. */
  async function applyUpstream(previous: string | undefined, signal?: AbortSignal) {
    const putBack = async () => {
      if (previous === undefined) await rm(bg.upstreamFile!, { force: true });
      else await writeUpstream(previous);
    };
    const test = await nginx(['-t'], 'nginx -t', signal);
    if (!test.ok) {
      await putBack();
      throw fail(`${test.message}; the upstream file is put back and traffic is untouched`);
    }
    const reload = await nginx(['-s', 'reload'], 'nginx -s reload', signal);
    if (!reload.ok) {
      await putBack();
      throw fail(`${reload.message}; the upstream file is put back and traffic is untouched`);
    }
  }

  /** Reads the version through nginx until it names `version` several times in a row. */
  async function confirmServed(version: string, signal?: AbortSignal): Promise<string | undefined> {
    const url = `${bg.url.replace(/\/$/, '')}${versionSpec.path}`;
    const deadline = Date.now() + health.timeoutMs;
    let inARow = 0;
    let last = '';
    while (Date.now() < deadline && !signal?.aborted) {
      const answer = await probe(url, { timeoutMs: 5_000 });
      const seen =
        answer.ok && answer.status === 200 ? versionFromText(answer.body ?? '', versionSpec.field) : undefined;
      last = seen ?? describeProbe(answer);
      inARow = seen === version ? inARow + 1 : 0;
      if (inARow >= Math.max(3, health.successes)) return undefined;
      await new Promise((r) => setTimeout(r, 50));
    }
    return `${url} did not answer ${version} (last: ${last})`;
  }

  return {
    async state() {
      const active = await activeColour();
      if (!active)
        return {
          problem:
            bg.marker !== undefined
              ? `${bg.marker} holds no single file named after a colour (${colours.map((c) => c.name).join(' or ')})`
              : `${bg.upstreamFile} names neither colour's address`,
        };
      const read = await versionAt(active.address);
      return { colour: active.name, ...read };
    },

    async switchTo(version, from, ctx) {
      const active = colours.find((col) => col.name === from.colour);
      const idle = colours.find((col) => col !== active)!;
      let started = false;
      ctx.stage(`checking ${idle.name}`);
      const running = await versionAt(idle.address);
      if (running.version !== version) {
        ctx.stage(`starting ${version} on ${idle.name}`);
        await runManifestCommand(`start command for ${idle.name}`, bg.start, {
          values: values(version, idle),
          timeoutMs,
          signal: ctx.signal,
        }).catch((err: Error) => {
          throw fail(`${err.message}; traffic is untouched${active ? ` (still on ${active.name})` : ''}`);
        });
        started = true;
      }
      ctx.stage(`health-checking ${idle.name}`);
      const checked = await awaitHealthy(urlOf(idle.address, c.health!.path!), health, ctx.signal);
      const now = await versionAt(idle.address);
      if (checked.problem || now.version !== version) {
        const why = checked.problem ?? `${idle.name} runs ${now.version ?? `nothing (${now.problem})`}, not ${version}`;
        throw fail(
          `the idle colour ${idle.name} is not ready: ${why}; traffic was not switched${active ? ` and stays on ${active.name}` : ''}`,
        );
      }
      ctx.stage(`switching nginx to ${idle.name}`);
      const switchStarted = Date.now();
      if (bg.marker !== undefined) {
        // nginx reads the marker per request: no reload, so no client connection is closed.
        const test = await nginx(['-t'], 'nginx -t', ctx.signal);
        if (!test.ok) throw fail(`${test.message}; nothing was switched and traffic is untouched`);
        await moveMarker(active?.name, idle.name);
      } else {
        const previous = await readFile(bg.upstreamFile!, 'utf8').catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return undefined;
          throw err;
        });
        await writeUpstream(`${UPSTREAM_HEADER}\n# colour ${idle.name}, release ${version}\nserver ${idle.address};\n`);
        await applyUpstream(previous, ctx.signal);
      }
      ctx.stage(`confirming ${version} through nginx`);
      const problem = await confirmServed(version, ctx.signal);
      if (problem) throw fail(`nginx was switched to ${idle.name} but ${problem}`);
      const keepMs = parseDuration(bg.keepPrevious);
      return {
        from: { ...(from.version ? { version: from.version } : {}), ...(active ? { colour: active.name } : {}) },
        to: { version, colour: idle.name },
        started,
        switchMs: Date.now() - switchStarted,
        ...(active && keepMs > 0 && bg.stop !== undefined
          ? { previousKeptUntil: new Date(Date.now() + keepMs).toISOString() }
          : {}),
      };
    },

    async settle(version, ctx) {
      if (bg.marker === undefined) {
        ctx.stage('reloading nginx after an interrupted switch');
        await applyUpstream(await readFile(bg.upstreamFile!, 'utf8'), ctx.signal);
      }
      const problem = await confirmServed(version, ctx.signal);
      if (problem) throw fail(problem);
    },

    servedProblem: (version) => confirmServed(version),

    async available(version) {
      const active = await activeColour();
      if (active && (await versionAt(active.address)).version === version)
        return { ok: true, note: `${version} already serves, on ${active.name}: nothing to switch` };
      const idle = colours.find((col) => col !== active)!;
      const running = await versionAt(idle.address);
      return running.version === version
        ? { ok: true, note: `${version} already runs on the idle colour ${idle.name}` }
        : {
            ok: true,
            note: `${version} will be started on the idle colour ${idle.name} (it runs ${running.version ?? 'nothing'})`,
          };
    },

    laterFor(from, done) {
      if (bg.stop === undefined || from.colour === undefined || from.colour === done.to.colour) return undefined;
      const details: AppFollowUpDetails = {
        kind: 'app',
        colour: from.colour,
        ...(from.version !== undefined ? { version: from.version } : {}),
      };
      return {
        afterMs: parseDuration(bg.keepPrevious),
        what: `stop ${from.colour}${from.version ? ` (${from.version})` : ''}`,
        details,
      };
    },

    async followUp(d, signal) {
      const active = await activeColour();
      if (active?.name === d.colour) return `${d.colour} takes traffic again, so it was left running`;
      const colour = colours.find((c) => c.name === d.colour);
      if (!colour) return `the manifest names no colour ${d.colour} any more; nothing was stopped`;
      await runManifestCommand(`stop command for ${d.colour}`, bg.stop!, {
        values: values(d.version ?? 'unknown', colour),
        timeoutMs,
        signal,
      });
      return `stopped ${d.colour}${d.version ? ` (${d.version})` : ''}`;
    },
  };
}

// ---- symlink ----

function symlinkStrategy(c: AppComponent, deps: StrategyDeps): AppStrategyDriver {
  const s = c.symlink!;
  const timeoutMs = parseDuration(c.timeout);
  const health = healthSpec(c);
  const values = (version: string): TemplateValues => ({
    version,
    component: deps.component,
    environment: deps.environment,
  });

  async function afterLink(version: string, ctx: SwitchContext) {
    if (s.reload) {
      ctx.stage('reloading');
      await runManifestCommand('reload command', s.reload, { values: values(version), timeoutMs, signal: ctx.signal });
    }
    if (health && c.health?.url) {
      ctx.stage('health-checking');
      const checked = await awaitHealthy(c.health.url, health, ctx.signal);
      if (checked.problem) throw fail(`${version} is linked and reloaded but not healthy: ${checked.problem}`);
    }
  }

  return {
    async state() {
      let target: string;
      try {
        target = await readlink(s.current);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return { problem: `${s.current} does not exist` };
        if (code === 'EINVAL') return { problem: `${s.current} is not a symbolic link` };
        throw err;
      }
      const resolved = path.resolve(path.dirname(s.current), target);
      if (path.dirname(resolved) !== path.resolve(s.releases))
        return { problem: `${s.current} points at ${target}, outside ${s.releases}` };
      return { version: path.basename(resolved) };
    },

    async switchTo(version, from, ctx) {
      const release = path.join(s.releases, version);
      const info = await stat(release).catch(() => undefined);
      if (!info?.isDirectory())
        throw fail(`release ${version} is not in ${s.releases} (no folder ${release}); ${s.current} is untouched`);
      ctx.stage(`linking ${version}`);
      const started = Date.now();
      const dir = path.dirname(s.current);
      const tmp = path.join(dir, `.${path.basename(s.current)}.rewind-tmp`);
      await rm(tmp, { force: true });
      await symlink(path.relative(dir, release), tmp);
      // rename(2) replaces the link atomically: `current` names the old release or the new one, never neither.
      await rename(tmp, s.current);
      const handle = await open(dir, 'r');
      await handle.sync();
      await handle.close();
      await afterLink(version, ctx);
      return {
        from: from.version ? { version: from.version } : {},
        to: { version },
        switchMs: Date.now() - started,
      };
    },

    settle: (version, ctx) => afterLink(version, ctx),

    async available(version) {
      const release = path.join(s.releases, version);
      const info = await stat(release).catch(() => undefined);
      return info?.isDirectory()
        ? { ok: true, note: `release folder ${release} is there` }
        : { ok: false, note: `release ${version} is not in ${s.releases} (no folder ${release})` };
    },
  };
}

// ---- command ----

function commandStrategy(c: AppComponent, deps: StrategyDeps): AppStrategyDriver {
  const cmd = c.commands!;
  const timeoutMs = parseDuration(c.timeout);
  const health = healthSpec(c);
  const values = (version: string | undefined, from?: string): TemplateValues => ({
    ...(version !== undefined ? { version } : {}),
    ...(from !== undefined ? { from } : {}),
    component: deps.component,
    environment: deps.environment,
  });

  /** The running version, from the status command alone. */
  async function runningVersion(signal?: AbortSignal): Promise<LiveState> {
    const result = await runShell(cmd.status, { values: values(undefined), timeoutMs, signal });
    if (result.code !== 0) return { problem: `status command ${describeExit(result, timeoutMs)}${outputTail(result)}` };
    const version = versionFromText(result.stdout, cmd.field);
    if (!version) return { problem: `status command printed no version${cmd.field ? ` in field ${cmd.field}` : ''}` };
    return { version };
  }

  /** The running version and, with a fingerprint command, what identifies the system beyond it. */
  async function state(): Promise<LiveState> {
    const running = await runningVersion();
    const { version } = running;
    if (version === undefined || cmd.fingerprint === undefined) return running;
    const printed = await runShell(cmd.fingerprint, { values: values(undefined), timeoutMs });
    if (printed.code !== 0)
      return { version, problem: `fingerprint command ${describeExit(printed, timeoutMs)}${outputTail(printed)}` };
    // Only its hash is kept: the output may name things (registries, secrets) that need not travel.
    return { version, identity: createHash('sha256').update(printed.stdout.trim()).digest('hex') };
  }

  async function afterSwitch(version: string, ctx: SwitchContext) {
    ctx.stage(`waiting for status to report ${version}`);
    const deadline = Date.now() + timeoutMs;
    let now: LiveState = {};
    while (Date.now() < deadline && !ctx.signal?.aborted) {
      // The version alone: the fingerprint command is for plans and verify, not for each poll.
      now = await runningVersion(ctx.signal);
      if (now.version === version) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    if (now.version !== version)
      throw fail(`after the switch, status reports ${now.version ?? `nothing (${now.problem})`}, not ${version}`);
    if (health && c.health?.url) {
      ctx.stage('health-checking');
      const checked = await awaitHealthy(c.health.url, health, ctx.signal);
      if (checked.problem) throw fail(`${version} is in place but not healthy: ${checked.problem}`);
    }
  }

  return {
    state,
    async switchTo(version, from, ctx) {
      const started = Date.now();
      const useRollback = ctx.purpose === 'rollback' && cmd.rollback !== undefined;
      ctx.stage(useRollback ? 'running the rollback command' : `switching to ${version}`);
      await runManifestCommand(
        useRollback ? 'rollback command' : 'switch command',
        useRollback ? cmd.rollback! : cmd.switch,
        {
          values: values(version, from.version),
          timeoutMs,
          signal: ctx.signal,
          retryCodes: cmd.retryExitCodes,
        },
      );
      await afterSwitch(version, ctx);
      return { from: from.version ? { version: from.version } : {}, to: { version }, switchMs: Date.now() - started };
    },
    settle: (version, ctx) => afterSwitch(version, ctx),
  };
}
