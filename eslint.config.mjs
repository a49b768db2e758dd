// Lint: strict TS everywhere, plus determinism rules for code that runs in the Temporal workflow sandbox.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

const nodeBuiltins = ['fs', 'path', 'child_process', 'crypto', 'os', 'http', 'https', 'net', 'stream', 'worker_threads', 'zlib', 'url', 'util', 'events', 'dns', 'tls', 'readline', 'process'];

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/.kaon/**', 'dist/**', 'scratch/**', 'bin/**', '**/*.py'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', {
        // node:test's test()/describe() return promises the runner itself awaits.
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite', 'before', 'after'] }],
      }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**'],
    rules: { 'no-console': 'error' },
  },
  {
    // Workflow sandbox: deterministic by construction. Implementations and Node built-ins stay out.
    files: ['src/workflow/**/*.ts', 'workflows/**/*.ts', 'src/definition/**/*.ts', 'src/observe/run-state.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: nodeBuiltins.flatMap((m) => [
          { name: m, message: 'Workflow code runs in the deterministic sandbox: no Node built-ins.' },
          { name: `node:${m}`, message: 'Workflow code runs in the deterministic sandbox: no Node built-ins.' },
        ]),
        patterns: [
          { group: ['**/*.impl', '**/*.impl.ts', '**/execution/**', '**/runtime/**', '**/data/store*', '@temporalio/worker', '@temporalio/activity', '@temporalio/client'], message: 'Workflow code may import step contracts only; implementations are resolved on the worker.' },
        ],
      }],
      'no-restricted-properties': ['error',
        { object: 'Math', property: 'random', message: 'Use uuid4() or a seeded generator from @temporalio/workflow; Math.random is only deterministic inside the sandbox by accident.' },
        { object: 'Date', property: 'now', message: 'Use workflow time deliberately; prefer values passed in as params.' },
      ],
      'no-restricted-globals': ['error', { name: 'setTimeout', message: 'Use sleep() from @temporalio/workflow.' }, { name: 'process', message: 'No process in the workflow sandbox.' }],
    },
  },
);
