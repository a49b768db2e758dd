// The test runner: provisions the Temporal CLI, starts one real dev server for all test files, runs node's
// test runner over test/**/*.test.ts (or the files given), prints its pass/fail counts, and stops the server.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { startDevServer } from '../src/runtime/dev-server';

function findTests(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    // test/spark is its own slow tier (npm run test:spark), run after npm test in CI.
    if (statSync(p).isDirectory()) return name === 'fixtures' || name === 'support' || p === path.join(__dirname, 'spark') ? [] : findTests(p);
    return name.endsWith('.test.ts') ? [p] : [];
  });
}

async function main(): Promise<number> {
  const root = path.resolve(__dirname, '..');
  const args = process.argv.slice(2);
  const files = (args.length ? args.map((a) => path.resolve(a)) : findTests(path.join(root, 'test'))).sort();
  const server = await startDevServer({ port: 0, dbFile: null, headless: true, say: (m) => console.log(m) });
  console.log(`test: Temporal dev server at ${server.address}; ${files.length} test files`);
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-concurrency=${process.env.KAON_TEST_CONCURRENCY ?? 2}`, ...files], {
      stdio: 'inherit',
      cwd: root,
      env: { ...process.env, KAON_TEST_TEMPORAL_ADDRESS: server.address, NODE_NO_WARNINGS: '1' },
    });
    return await new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  } finally {
    await server.stop();
  }
}

main().then((code) => process.exit(code), (err) => {
  console.error(err);
  process.exit(1);
});
