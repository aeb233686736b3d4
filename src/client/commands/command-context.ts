// What every `rewind` command shares: the global options, the manifest and client they open,
// how they print, the option parsers, and the one place an error becomes a message and exit code.
import os from 'node:os';
import { type Command, InvalidArgumentError } from 'commander';
import { ManifestError, loadManifest, manifestPathFrom, type LoadedManifest } from '../../manifest/load';
import { connectClient, temporalSettings } from '../../platform/temporal';
import { installTracing, shutdownTracing } from '../../platform/tracing';
import { openSnapshotStore } from '../../snapshots/open';
import type { SnapshotStore } from '../../snapshots/store';
import { openProjectStore, type ProjectStore } from '../../store/project-store';
import type { RollbackDoor } from '../api-door';
import type { RewindApiClient } from '../api-client';
import { failureMessage, RequestError, RewindClient } from '../client';

interface GlobalOptions {
  manifest?: string;
  json?: boolean;
  api?: string;
}

export class UsageError extends Error {}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

export function manifestOf(
  cmd: Command,
  checkPaths: 'all' | string[] | false = false,
  agentHost?: string | null,
): LoadedManifest {
  return loadManifest(manifestPathFrom(globals(cmd).manifest), {
    checkPaths,
    ...(agentHost !== undefined ? { agentHost } : {}),
  });
}

export async function rewindClient(cmd: Command): Promise<RewindClient> {
  const { manifest } = manifestOf(cmd);
  // The repository lets the client refuse a missing target before starting a run; an operator
  // without its password still gets the same answer from the workflow.
  let store: SnapshotStore | undefined;
  try {
    store = openSnapshotStore(manifest);
  } catch {
    store = undefined;
  }
  installTracing('rewind-cli');
  return new RewindClient(await connectClient(temporalSettings(manifest.temporal.namespace)), manifest, store);
}

/**
 * The rollback commands' door: Temporal directly, or the HTTP API with `--api URL` (or
 * REWIND_API_URL) and the token in REWIND_API_TOKEN, for operators who have no Temporal access.
 */
export async function rollbackDoor(cmd: Command): Promise<RollbackDoor> {
  const url = globals(cmd).api ?? process.env.REWIND_API_URL;
  if (!url) {
    const { AuditedCliDoor, projectStoreAuditWriter } = await import('../cli-audit');
    return new AuditedCliDoor(await rewindClient(cmd), projectStoreAuditWriter(manifestOf(cmd).manifest));
  }
  const { ApiRollbackDoor } = await import('../api-door');
  return new ApiRollbackDoor(url, process.env.REWIND_API_TOKEN);
}

/**
 * The HTTP API, for the commands that can go through it (the rollback commands, `drift scan`
 * and `drift report`), when `--api URL` or REWIND_API_URL names it; undefined otherwise.
 */
export async function apiOf(cmd: Command): Promise<RewindApiClient | undefined> {
  const url = globals(cmd).api ?? process.env.REWIND_API_URL;
  if (!url) return undefined;
  const { apiClientFor } = await import('../api-door');
  return apiClientFor(url, process.env.REWIND_API_TOKEN);
}

/**
 * Runs `fn` with the project store (DATABASE_URL, or the embedded one under dataDir), closed
 * after. For reading: an embedded store that does not exist yet is not created.
 */
export async function withStore<T>(cmd: Command, fn: (store: ProjectStore) => Promise<T>): Promise<T> {
  const { manifest } = manifestOf(cmd);
  const store = await openProjectStore({
    databaseUrl: process.env.DATABASE_URL,
    dataDir: manifest.dataDir,
    existingOnly: true,
  });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

export function print(cmd: Command, json: unknown, human: () => string): void {
  process.stdout.write(globals(cmd).json ? `${JSON.stringify(json, null, 2)}\n` : `${human()}\n`);
}

export function currentUser(as: string | undefined): string {
  return as ?? process.env.REWIND_USER ?? os.userInfo().username;
}

export function nonEmpty(flag: string) {
  return (value: string): string => {
    if (!value.trim()) throw new InvalidArgumentError(`${flag} must not be empty`);
    return value;
  };
}

export function list(value: string): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw new InvalidArgumentError('expected a comma-separated list, e.g. config,models');
  return items;
}

export function port(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new UsageError(`${flag}: "${value}" is not a number from 1 to 65535`);
  return n;
}

/** Runs a command's action; any error becomes one clear message and exit code 1. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void) {
  return async (...args: A): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    try {
      await fn(...args);
    } catch (err) {
      reportError(cmd, err);
      process.exitCode = 1;
    } finally {
      await shutdownTracing();
    }
  };
}

export function reportError(cmd: Command, err: unknown): void {
  let message: string;
  if (err instanceof ManifestError) {
    message =
      err.issues.length === 1
        ? `${err.file}: ${err.issues[0]!.path ? `${err.issues[0]!.path}: ` : ''}${err.issues[0]!.message}`
        : err.message;
  } else if (err instanceof Error) {
    message = failureMessage(err);
  } else {
    message = String(err);
  }
  if (globals(cmd).json) process.stderr.write(`${JSON.stringify({ error: message })}\n`);
  else process.stderr.write(`error: ${message}\n`);
  if (
    process.env.REWIND_DEBUG &&
    err instanceof Error &&
    !(err instanceof RequestError) &&
    !(err instanceof ManifestError)
  ) {
    process.stderr.write(`${err.stack ?? ''}\n`);
  }
}
