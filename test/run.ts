// The test runner: provisions the Temporal CLI, starts one real dev server for all test files, runs node's
// test runner over test/**/*.test.ts (or the files given), prints its pass/fail counts, and stops the server.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { startDevServer } from '../src/runtime/dev-server';

/** Tiers run only when named (`npm run test:board`): the browser tests take minutes. */
// Own tiers, run after npm test in .ci/run: board (headless Chromium), mlflow (starting MLflow takes 30 s or more), spark,
// faults (kill -9 of workers and of the dev server; minutes, as a lost worker is noticed by a 60 s heartbeat timeout),
// user-install (npm pack, then a fresh install that resolves its dependencies today: minutes, and the network),
// r (every test that runs Rscript: npm test must pass on a machine without R).
const OWN_TIERS = new Set(['board', 'mlflow', 'spark', 'faults', 'user-install', 'r']);

function findTests(dir: string, top = true): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return name === 'fixtures' || name === 'support' || (top && OWN_TIERS.has(name)) ? [] : findTests(p, false);
    return name.endsWith('.test.ts') ? [p] : [];
  });
}

async function main(): Promise<number> {
  const root = path.resolve(__dirname, '..');
  const args = process.argv.slice(2);
  const files = (args.length ? args.map((a) => path.resolve(a)).flatMap((a) => (statSync(a).isDirectory() ? findTests(a, false) : [a])) : findTests(path.join(root, 'test'))).sort();
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
