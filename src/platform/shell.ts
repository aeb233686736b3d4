// Shell commands from the manifest (start, reload, smoke suites): `sh -c` with a deadline, the
// manifest's values in REWIND_* variables, and the last of their output for error messages.
import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const OUTPUT_LIMIT = 64 * 1024;

/** A POSIX shell word that stands for exactly `value`. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9._,+:/@=-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** How long the output may take to end after the shell exited (a detached server may hold it). */
const OUTPUT_GRACE_MS = 1_000;

/**
 * Runs `sh -c command`. Settles when the shell exits, not when its output closes: a start
 * command that leaves a server running in the background must not hold the step.
 */
export function runShell(
  command: string,
  opts: {
    values: Record<string, string | undefined>;
    timeoutMs: number;
    signal?: AbortSignal | undefined;
    cwd?: string;
  },
): Promise<CommandResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(opts.values)) if (v !== undefined) env[`REWIND_${k.toUpperCase()}`] = v;
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (b: Buffer) => (stdout = (stdout + b.toString()).slice(-OUTPUT_LIMIT)));
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-OUTPUT_LIMIT)));
    const kill = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, opts.timeoutMs);
    const onAbort = () => kill();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const ended = (stream: NodeJS.ReadableStream) =>
      new Promise<void>((done) => {
        stream.once('end', done);
        stream.once('close', done);
      });
    const outputRead = Promise.all([ended(child.stdout), ended(child.stderr)]);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      // The output is read to its end; but a server the command left running in the background
      // may hold the pipes open for good, so the wait for the end is bounded.
      let grace: NodeJS.Timeout | undefined;
      void Promise.race([outputRead, new Promise((r) => (grace = setTimeout(r, OUTPUT_GRACE_MS)))]).then(() => {
        clearTimeout(grace);
        child.stdout.destroy();
        child.stderr.destroy();
        resolve({ code, signal, stdout, stderr, timedOut });
      });
    });
  });
}

/** The last lines of a command's output, for an error message. */
export function outputTail(result: CommandResult): string {
  const text = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-5).join(' | ');
  return text ? `: ${text.slice(0, 600)}` : '';
}

export function describeExit(result: CommandResult, timeoutMs: number): string {
  if (result.timedOut) return `did not finish within ${timeoutMs} ms and was stopped`;
  if (result.signal) return `was killed by ${result.signal}`;
  return `exited with code ${result.code}`;
}
