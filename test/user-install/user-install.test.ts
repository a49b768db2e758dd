// The user-install tier (issue 21): Kaon as a user's install resolves it today. `npm pack` the repo once, install the
// tarball plus zod into a fresh project outside the repository with no lockfile (so every dependency, webpack
// included, resolves to its newest allowed version), KAON_HOME outside that project, `npm exec -- kaon worker`, then:
// a user's sweep (a Python step over configs, some failing, then fixed and resumed; a TS step at batch 1), ESM and
// CJS services, and a keyless run refused on a task queue marked encrypted.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { cliEnv, CliProcess, type CliResult } from '../cli/cli-process';
import { ROOT, testServer } from '../support/temporal';

const exec = promisify(execFile);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';

/** The user's project, as written by hand: step contracts, a TS implementation, a Python script, one pipeline. */
const FILES: Record<string, string> = {
  'activities/steps.ts': `import { z } from 'zod';
import { defineStep, python } from 'kaon';

export const score = defineStep({
  name: 'score', version: 1,
  input: z.object({ lr: z.number(), depth: z.number().int(), day: z.iso.date() }),
  output: z.object({ lr: z.number(), score: z.number(), pad: z.string() }),
  retry: { maximumAttempts: 2, initialInterval: '50ms' },
  run: python('activities/python/score.py'),
});

export const sized = defineStep({
  name: 'sized', version: 1,
  input: z.object({ i: z.number().int() }),
  output: z.object({ i: z.number().int(), pad: z.string() }),
});
`,
  'activities/index.ts': `import { implementStep } from 'kaon/worker';
import { sized } from './steps';
export * from './steps';
export const sizedImpl = implementStep(sized, ({ i }) => ({ i, pad: 'y'.repeat(2048) }));
`,
  'activities/python/score.py': `import kaon_step as k

def score(item):
    if item["lr"] < 0:
        raise ValueError("bad config lr=%s" % item["lr"])
    return {"lr": item["lr"], "score": item["lr"] * item["depth"], "pad": "x" * 2048}

k.run_items(score)
`,
  // m (the TS sweep's size) is a param so the services below can start a small run; the sweep test runs the defaults.
  // The services' 5 configs (i = 0..4) hold no bad lr, so their result does not depend on the sweep test's fix.
  'workflows/index.ts': `import { z } from 'zod';
import { definePipeline } from 'kaon/workflow';
import { score, sized } from '../activities/steps';

export const userSweep = definePipeline({
  name: 'user-sweep',
  params: z.object({ n: z.number().int().default(300), m: z.number().int().default(2000), day: z.iso.date().default('2026-12-08') }),
  async run(p, k) {
    if (!z.iso.date().safeParse(p.day).success) throw new Error('z.iso.date broken in the bundle');
    const grid = Array.from({ length: p.n }, (_, i) => ({ lr: i % 50 === 7 ? -1 : i / 100, depth: 1 + (i % 5) }));
    const py = await k.map(score, grid, { input: (c) => ({ lr: c.lr, depth: c.depth, day: p.day }), batch: 50, concurrency: 4, onFailure: 'ignore', label: 'score' });
    const ts = await k.map(sized, Array.from({ length: p.m }, (_, i) => ({ i })), { batch: 1, concurrency: 200, label: 'sized' });
    return { py: { ok: py.succeeded, failed: py.failed }, ts: { ok: ts.succeeded, failed: ts.failed } };
  },
});
`,
  'service.mjs': `import { connect } from 'kaon/client';

const kaon = await connect();
const run = await kaon.start('user-sweep', { n: 5, m: 5 });
console.log(JSON.stringify(await run.result()));
await kaon.close();
`,
  'service.cjs': `const { connect } = require('kaon/client');

(async () => {
  const kaon = await connect();
  const run = await kaon.start('user-sweep', { n: 5, m: 5 });
  console.log(JSON.stringify(await run.result()));
  await kaon.close();
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
`,
};

const queue = `user-install-${randomUUID().slice(0, 8)}`;
let dir: string;
let project: string;
let env: NodeJS.ProcessEnv;
let worker: CliProcess | undefined;

/** `npx kaon …` in the project, as a user types it. */
async function npxKaon(args: string[], extra: Record<string, string | undefined> = {}, timeoutMs = 300_000): Promise<CliResult> {
  const p = new CliProcess(['kaon', ...args], { env: { ...env, ...extra }, cwd: project, command: [NPX, '--offline'] });
  const timer = setTimeout(() => p.kill(), timeoutMs);
  try {
    return await p.exited;
  } finally {
    clearTimeout(timer);
  }
}

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-user-install-'));
  const packDir = path.join(dir, 'pack');
  mkdirSync(packDir);
  // npm pack runs prepare (the build) first.
  await exec(NPM, ['pack', '--pack-destination', packDir, '--silent'], { cwd: ROOT, timeout: 180_000 });
  const tgz = readdirSync(packDir).find((f) => f.endsWith('.tgz'));
  assert.ok(tgz, 'npm pack wrote a tarball');

  project = path.join(dir, 'app');
  mkdirSync(project);
  writeFileSync(path.join(project, 'package.json'), `${JSON.stringify({ name: 'user-install-app', version: '1.0.0', private: true, type: 'commonjs' }, null, 2)}\n`);
  // No lockfile and no --prefer-offline: dependencies resolve as a user's install resolves them today.
  await exec(NPM, ['install', path.join(packDir, tgz), 'zod', '--no-audit', '--no-fund', '--silent'], { cwd: project, timeout: 300_000 });
  const version = (name: string): string => (JSON.parse(readFileSync(path.join(project, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  console.log(`user-install: resolved webpack ${version('webpack')}, zod ${version('zod')}, @temporalio/worker ${version('@temporalio/worker')}`);
  for (const [file, text] of Object.entries(FILES)) {
    mkdirSync(path.dirname(path.join(project, file)), { recursive: true });
    writeFileSync(path.join(project, file), text);
  }

  const { address } = await testServer();
  env = cliEnv({
    TEMPORAL_ADDRESS: address,
    KAON_TASK_QUEUE: queue,
    // Outside the project: the generated workflow entry has no node_modules above it.
    KAON_HOME: path.join(dir, 'kaon-home'),
    KAON_FROM_SOURCE: undefined,
    KAON_ENCRYPTION_KEY_FILE: undefined,
    KAON_ENCRYPTION: undefined,
  });
  worker = new CliProcess([], { env, cwd: project, command: [NPM, 'exec', '--offline', '--', 'kaon', 'worker'] });
  await worker.waitFor(/^kaon worker: ready/m, 180_000);
});

after(async () => {
  if (worker) {
    worker.kill();
    await worker.exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a user\'s sweep: Python items fail on bad configs, the item shows why, and a resume after the fix re-runs only those', { timeout: 900_000 }, async () => {
  const first = await npxKaon(['run', 'user-sweep', '--wait', '--json']);
  assert.equal(first.code, 0, `${first.stdout}\n${first.stderr}`);
  const outcome = JSON.parse(first.stdout) as { id: string; status: string; result: unknown };
  assert.equal(outcome.status, 'succeeded');
  assert.deepEqual(outcome.result, { py: { ok: 294, failed: 6 }, ts: { ok: 2000, failed: 0 } });

  const item = await npxKaon(['status', outcome.id, '--item', 'score[7]']);
  assert.equal(item.code, 0, `${item.stdout}\n${item.stderr}`);
  assert.match(item.stdout, /^status {2}failed/m);
  assert.match(item.stdout, /bad config lr=-1/);

  // The user fixes the script: a negative lr is clamped instead of refused.
  const script = path.join(project, 'activities/python/score.py');
  writeFileSync(script, readFileSync(script, 'utf8').replace('raise ValueError("bad config lr=%s" % item["lr"])', 'item = dict(item, lr=0.0)'));
  const resumed = await npxKaon(['resume', outcome.id, '--wait']);
  assert.equal(resumed.code, 0, `${resumed.stdout}\n${resumed.stderr}`);
  assert.match(resumed.stdout, /sweep score: reused 294 of 300 items; re-ran 6\b/);
  assert.doesNotMatch(resumed.stdout, /failed again/);
});

test('an ESM service (import) and a CJS service (require) each start the pipeline by name and get its result', { timeout: 300_000 }, async () => {
  for (const service of ['service.mjs', 'service.cjs']) {
    const { stdout } = await exec(process.execPath, [service], { cwd: project, env, timeout: 240_000 });
    assert.deepEqual(JSON.parse(stdout.trim()), { py: { ok: 5, failed: 0 }, ts: { ok: 5, failed: 0 } }, service);
  }
});

test('a task queue marked with `kaon encryption require` refuses a keyless `kaon run` naming the setting', { timeout: 180_000 }, async () => {
  const mark = await npxKaon(['encryption', 'require', '--task-queue', queue]);
  assert.equal(mark.code, 0, `${mark.stdout}\n${mark.stderr}`);
  try {
    const refused = await npxKaon(['run', 'user-sweep']);
    assert.equal(refused.code, 1, `${refused.stdout}\n${refused.stderr}`);
    assert.doesNotMatch(refused.stdout, /started user-sweep run/);
    assert.match(refused.stderr, /\[KAON_ENCRYPTION_REQUIRED\]/);
    assert.match(refused.stderr, new RegExp(`task queue "${queue}", is marked encrypted \\(namespace data kaon\\.encryption\\.queue\\.${queue}=required\\)`));
    assert.match(refused.stderr, /To fix: set KAON_ENCRYPTION_KEY_FILE/);
  } finally {
    const off = await npxKaon(['encryption', 'off', '--task-queue', queue]);
    assert.equal(off.code, 0, `${off.stdout}\n${off.stderr}`);
  }
});
