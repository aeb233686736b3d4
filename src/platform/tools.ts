// Finds the external binaries rewind drives, in the same order as scripts/ensure-tools.sh:
// $REWIND_<TOOL>_BIN, then PATH, then the cache folder that the script fills.
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export type ToolName = 'temporal' | 'restic';

export const RESTIC_MIN_VERSION = [0, 17] as const;

export class ToolMissingError extends Error {
  constructor(tool: ToolName, detail: string) {
    super(`${tool} not found: ${detail}. Run \`npm run tools\` (scripts/ensure-tools.sh) to install it.`);
    this.name = 'ToolMissingError';
  }
}

export function toolCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.REWIND_TOOLS_DIR ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'rewind', 'bin');
}

const resolved = new Map<ToolName, string>();

export function resolveTool(tool: ToolName, env: NodeJS.ProcessEnv = process.env): string {
  const cached = resolved.get(tool);
  if (cached) return cached;
  const override = env[`REWIND_${tool.toUpperCase()}_BIN`];
  const candidates = override ? [override] : [...pathCandidates(tool, env), path.join(toolCacheDir(env), tool)];
  for (const candidate of candidates) {
    if (isExecutable(candidate) && isUsable(tool, candidate)) {
      resolved.set(tool, candidate);
      return candidate;
    }
  }
  throw new ToolMissingError(
    tool,
    override
      ? `REWIND_${tool.toUpperCase()}_BIN=${override} is not usable`
      : `looked on PATH and in ${toolCacheDir(env)}`,
  );
}

function pathCandidates(tool: ToolName, env: NodeJS.ProcessEnv): string[] {
  return (env.PATH ?? '')
    .split(path.delimiter)
    .filter(Boolean)
    .map((dir) => path.join(dir, tool));
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function isUsable(tool: ToolName, file: string): boolean {
  if (tool === 'temporal') return true;
  try {
    const out = execFileSync(file, ['version'], { encoding: 'utf8', timeout: 10_000 });
    const match = /^restic (\d+)\.(\d+)/m.exec(out);
    if (!match) return false;
    const [major, minor] = [Number(match[1]), Number(match[2])];
    return major > RESTIC_MIN_VERSION[0] || (major === RESTIC_MIN_VERSION[0] && minor >= RESTIC_MIN_VERSION[1]);
  } catch {
    return false;
  }
}
