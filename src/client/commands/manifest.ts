// `rewind manifest validate|schema`: check the manifest, or print its JSON Schema.
import type { Command } from 'commander';
import { manifestJsonSchema } from '../../manifest/schema';
import { action, manifestOf, print } from './command-context';

export function registerManifestCommands(program: Command): void {
  const manifestCmd = program.command('manifest').description('check the manifest, or print its JSON Schema');

  manifestCmd
    .command('validate')
    .description('validate the manifest; with --check-paths also check every component path exists')
    .option('--check-paths', 'check that every component path exists')
    .action(
      action((opts: { checkPaths?: boolean }, cmd: Command) => {
        const loaded = manifestOf(cmd, opts.checkPaths ? 'all' : false);
        const envs = Object.entries(loaded.manifest.environments).map(([name, e]) => ({
          name,
          components: Object.keys(e.components),
        }));
        print(cmd, { valid: true, file: loaded.file, environments: envs }, () =>
          [`${loaded.file}: valid`, ...envs.map((e) => `  ${e.name}: ${e.components.join(', ')}`)].join('\n'),
        );
      }),
    );

  manifestCmd
    .command('schema')
    .description('print the JSON Schema of rewind.yaml (for editor completion)')
    .action(
      action(() => {
        process.stdout.write(`${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
      }),
    );
}
