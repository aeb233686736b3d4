import { rmSync } from 'node:fs';
export default async function globalTeardown(): Promise<void> {
  await globalThis.rewindDevServer?.stop();
  // The suite folder holds the workflow bundle and the dev server's log: kept on request.
  const dir = process.env.REWIND_SUITE_DIR;
  if (dir && process.env.REWIND_TEST_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
}
