// One Temporal dev server (built from source by scripts/ensure-tools.sh, never downloaded) and
// one workflow bundle for the whole suite; each test file isolates itself on its own task queues.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { ensureSearchAttributes } from '../../src/platform/temporal';
import { startDevServer, type DevServer } from '../../src/platform/temporal-dev-server';
import { resolveTool } from '../../src/platform/tools';
import { bundleWorkflows } from '../../src/workers/bundle-workflows';
import { BUNDLE_FILES } from '../../src/workers/workflow-code';

declare global {
  var rewindDevServer: DevServer | undefined;
}

export default async function globalSetup(): Promise<void> {
  resolveTool('restic');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rewind-suite-'));
  const bundle = path.join(dir, BUNDLE_FILES.plain);
  const [server] = await Promise.all([
    startDevServer({ headless: true, logFile: path.join(dir, 'temporal.log') }),
    bundleWorkflows(dir),
  ]);
  const connection = await Connection.connect({ address: server.address });
  await ensureSearchAttributes(connection, 'default');
  await connection.close();
  globalThis.rewindDevServer = server;
  process.env.TEMPORAL_ADDRESS = server.address;
  process.env.REWIND_WORKFLOW_BUNDLE = bundle;
  process.env.REWIND_SUITE_DIR = dir;
}
