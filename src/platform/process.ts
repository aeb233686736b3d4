// Runs a program to completion, keeping the end of its stderr for the error message, and
// stopping it when the signal aborts.
import { spawn } from 'node:child_process';

export class ProcessError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'ProcessError';
  }
}

export interface RunProgramOptions {
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  cwd?: string;
  /** Called with each chunk of stderr (pg_restore --verbose reports progress there). */
  onStderr?: (text: string) => void;
}

export function runProgram(command: string, args: string[], options: RunProgramOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    options.signal?.throwIfAborted();
    const child = spawn(command, args, {
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const onAbort = () => {
      child.kill('SIGINT');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (c: Buffer) => {
      if (stdout.length < 1 << 20) stdout += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      const text = c.toString('utf8');
      options.onStderr?.(text);
      stderr = (stderr + text).slice(-16 * 1024);
    });
    child.on('error', (err) => {
      options.signal?.removeEventListener('abort', onAbort);
      reject(new ProcessError(`could not run ${command}: ${err.message}`, null, ''));
    });
    child.on('close', (code) => {
      options.signal?.removeEventListener('abort', onAbort);
      if (code === 0) return resolve(stdout);
      const tail = stderr.trim().split('\n').slice(-3).join('; ');
      reject(new ProcessError(`${command.split('/').pop()} exited with ${String(code)}: ${tail}`, code, stderr));
    });
  });
}
