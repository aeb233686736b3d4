// Manifest commands through the shell: the whole output of a command that exits at once is read
// (its exit can come before its output), a server left running in the background does not hold
// the step, and a deadline stops the command.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { runShell } from '../src/platform/shell';
import { tempDir } from './support/temp';

describe('runShell', () => {
  const dir = tempDir('rewind-shell-');

  it('reads the whole output of a command that exits at once, every time', async () => {
    const file = path.join(dir, 'status.json');
    const text = JSON.stringify({ deployed: { version: 'v1', padding: 'x'.repeat(4_000) } });
    writeFileSync(file, text);
    const runs = await Promise.all(
      Array.from({ length: 40 }, () => runShell(`cat ${file}`, { values: {}, timeoutMs: 10_000 })),
    );
    expect(runs.map((r) => r.stdout === text && r.code === 0)).toEqual(runs.map(() => true));
  });

  it('returns about a second after the shell exits when a background server holds its output', async () => {
    const started = Date.now();
    const result = await runShell('sleep 20 &', { values: {}, timeoutMs: 10_000 });
    expect(result.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('stops a command at its deadline and says so', async () => {
    const result = await runShell('sleep 20', { values: {}, timeoutMs: 300 });
    expect(result).toMatchObject({ timedOut: true, signal: 'SIGKILL' });
  });

  it('gives the values to the command as REWIND_* variables', async () => {
    const result = await runShell('echo "$REWIND_VERSION on $REWIND_COLOUR"', {
      values: { version: 'v1', colour: 'blue' },
      timeoutMs: 5_000,
    });
    expect(result.stdout).toBe('v1 on blue\n');
  });
});
