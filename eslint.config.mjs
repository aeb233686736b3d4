// Lint rules that carry the project's safety rules (see ../shared/STYLE.md):
// workflow code stays deterministic (no Node built-ins, no I/O modules), no floating promises,
// type-only imports are marked as such, and modules do not import each other in a cycle.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

const ioModules = [
  'pg',
  '@slack/web-api',
  '@temporalio/client',
  '@temporalio/worker',
  '@temporalio/activity',
  'pino',
  'yaml',
  'commander',
];

export default tseslint.config(
  { ignores: ['lib/**', 'node_modules/**', 'coverage/**', '.data/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    // Dependencies are not parsed for cycles: some ship minified bundles the parser cannot read.
    settings: { 'import-x/ignore': ['node_modules'] },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  {
    // Workflow code and the pure modules it imports run inside Temporal's deterministic sandbox.
    files: [
      'src/workflows/**/*.ts',
      'src/domain/**/*.ts',
      'src/manifest/schema.ts',
      'src/manifest/duration.ts',
      'src/manifest/fields.ts',
      'src/components/core.ts',
      'src/components/kind.ts',
      'src/components/registry.ts',
      'src/components/*/kind.ts',
    ],
    rules: {
      'import-x/no-nodejs-modules': 'error',
      'no-restricted-imports': [
        'error',
        {
          paths: ioModules.map((name) => ({
            name,
            message: 'I/O module: not allowed in workflow code or pure modules',
          })),
          patterns: [
            {
              group: ['**/activities', '**/activities/*'],
              allowTypeImports: true,
              message: 'workflows import activities with `import type` only',
            },
            {
              group: [
                '**/platform/*',
                '**/snapshots/*',
                '**/manifest/load',
                // A component kind's I/O half (matched by module name, as imports are relative):
                // only agents, and the CLI for postgres' facade, load it.
                '**/drivers',
                '**/driver',
                '**/change-list',
                '**/facade',
                '**/listing',
                '**/targeted-restore',
                ...['connect', 'dump', 'fingerprint', 'flyway', 'impact', 'migrator', 'pitr', 'tools'].flatMap((m) => [
                  `**/postgres/${m}`,
                  `./${m}`,
                ]),
              ],
              allowTypeImports: true,
              message: 'I/O module: not allowed in workflow code or pure modules',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
