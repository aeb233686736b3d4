// Loaded by tests only, after the tsx loader:
//   node --import <tsx loader> --import <this file> src/client/cli.ts agent --env production
// When REWIND_FAULTS is set, every worker this process creates gets the fault interceptor of
// ./faults.ts. Nothing under src/ imports this file, so a shipped agent ignores REWIND_FAULTS.
import { Worker, type WorkerOptions } from '@temporalio/worker';
import { loadManifest, manifestPathFrom } from '../../src/manifest/load';
import { describeFaults, faultInterceptor, parseFaults } from './faults';

const text = process.env.REWIND_FAULTS;
const rules = parseFaults(text);

if (rules.length > 0) {
  process.stderr.write(
    `WARNING: REWIND_FAULTS is set and the test fault preload is loaded: workers in this process inject faults (${describeFaults(rules)}). Tests only.\n`,
  );
  const create = Worker.create.bind(Worker);
  Worker.create = async (options: WorkerOptions): Promise<Worker> => {
    // The manifest the CLI reads: --manifest, else REWIND_MANIFEST, else ./rewind.yaml.
    const { manifest } = loadManifest(manifestPathFrom(manifestOption(process.argv)));
    const interceptor = faultInterceptor(text, manifest);
    return create({
      ...options,
      interceptors: { ...options.interceptors, activity: [...(options.interceptors?.activity ?? []), interceptor] },
    });
  };
}

function manifestOption(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--manifest') return argv[i + 1];
    if (arg.startsWith('--manifest=')) return arg.slice('--manifest='.length);
  }
  return undefined;
}
