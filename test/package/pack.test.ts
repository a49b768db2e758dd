// The published package, end to end: `npm pack` the repo, install the tarball into a fresh project (no tsx in its own
// code), run the first-pipeline example on `npx kaon worker` and get its result from a plain .mjs service that imports
// kaon/client. The TypeScript pipeline and step modules are the one thing tsx loads (inside the kaon worker).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { cliEnv, CliProcess } from '../cli/cli-process';
import { ROOT, testServer } from '../support/temporal';

const run = promisify(execFile);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

const SERVICE = `// A service: plain JavaScript, no TypeScript loader. It starts the pipeline by name and waits for the result.
import { connect } from 'kaon/client';

const kaon = await connect();
const run = await kaon.start('word-count', { text: 'the cat and the hat and the bat' });
console.log(JSON.stringify(await run.result()));
await kaon.close();
`;

let dir: string;
let tarball: string;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-pack-'));
  const packDir = path.join(dir, 'pack');
  mkdirSync(packDir);
  // npm pack runs prepare (the build) first.
  await run(NPM, ['pack', '--pack-destination', packDir, '--silent'], { cwd: ROOT, timeout: 120_000 });
  const tgz = readdirSync(packDir).find((f) => f.endsWith('.tgz'));
  assert.ok(tgz, 'npm pack wrote a tarball');
  tarball = path.join(packDir, tgz);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the packed kaon installs into a fresh project; a .mjs service gets first-pipeline\'s result from `npx kaon worker`', { timeout: 240_000 }, async () => {
  const project = path.join(dir, 'app');
  mkdirSync(project);
  writeFileSync(path.join(project, 'package.json'), `${JSON.stringify({
    name: 'kaon-pack-app',
    private: true,
    type: 'module',
    kaon: { workflows: 'examples/first-pipeline/workflows.ts', activities: 'examples/first-pipeline/index.ts' },
  }, null, 2)}\n`);
  // What the README says: install kaon (and zod, for step contracts).
  await run(NPM, ['install', tarball, 'zod', '--prefer-offline', '--no-audit', '--no-fund', '--silent'], { cwd: project, timeout: 180_000 });

  const installed = path.join(project, 'node_modules', 'kaon');
  const pkg = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8')) as { files: string[] };
  assert.ok(pkg.files.length > 0);
  assert.ok(existsSync(path.join(installed, 'dist', 'cli', 'main.js')), 'the tarball ships dist/');
  assert.ok(existsSync(path.join(installed, 'python', 'kaon_step.py')), 'the tarball ships the Python step helper');
  assert.ok(!existsSync(path.join(installed, 'src')), 'the tarball ships no TypeScript sources');

  cpSync(path.join(ROOT, 'examples', 'first-pipeline'), path.join(project, 'examples', 'first-pipeline'), { recursive: true });
  writeFileSync(path.join(project, 'service.mjs'), SERVICE);

  const { address } = await testServer();
  // KAON_HOME outside the project (issue 21): the workflow entry generated under it has no node_modules above it, and
  // in an installed project Kaon's dependencies are hoisted (no node_modules/kaon/node_modules to fall back on).
  const home = path.join(dir, 'kaon-home');
  const env = cliEnv({ TEMPORAL_ADDRESS: address, KAON_TASK_QUEUE: `pack-${randomUUID().slice(0, 8)}`, KAON_HOME: home, KAON_FROM_SOURCE: undefined });
  // `npx kaon worker`, as a user types it (npx finds the project's node_modules/.bin/kaon).
  const worker = new CliProcess([], { env, cwd: project, command: [NPM, 'exec', '--offline', '--', 'kaon', 'worker'] });
  try {
    await worker.waitFor(/^kaon worker: ready/m, 120_000);
    const { stdout } = await run(process.execPath, ['service.mjs'], { cwd: project, env, timeout: 90_000 });
    const result = JSON.parse(stdout.trim()) as { total: number; distinct: number; top: [string, number][] };
    assert.deepEqual(result, { total: 8, distinct: 5, top: [['the', 3], ['and', 2], ['cat', 1]] });
    // The worker ran Kaon's compiled JavaScript from the installed package.
    assert.doesNotMatch(worker.stderr, /\.ts:\d+/);
    assert.ok(readdirSync(path.join(home, 'gen')).length > 0, 'the workflow entry was generated under KAON_HOME');
    assert.ok(!existsSync(path.join(installed, 'node_modules', '@temporalio', 'workflow')), 'Kaon\'s dependencies are hoisted');
  } finally {
    worker.kill();
    await worker.exited;
  }
});
