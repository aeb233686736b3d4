// Temporary folders that a test file removes when it ends (REWIND_TEST_KEEP=1 keeps them, to
// look at after a failure). Call it at module or describe level, where afterAll is allowed.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  afterAll(() => {
    if (process.env.REWIND_TEST_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
