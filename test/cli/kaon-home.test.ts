// KAON_HOME outside the project (issue 21): `kaon worker` (and `kaon dev`, which hosts the same worker) bundles the
// pipelines from an entry generated under <KAON_HOME>/gen, a folder with no node_modules above it, and runs a pipeline.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Connection } from '@temporalio/client';
import { connect } from '../../src/client';
import { cliSlow } from '../fixtures/cli-project/pipelines';
import { ROOT, testServer } from '../support/temporal';
import { CliProcess, cliEnv } from './cli-process';

const FIXTURE_FLAGS = ['--workflows', 'test/fixtures/cli-project/pipelines.ts', '--activities', 'test/fixtures/cli-project/steps.ts'];
const home = mkdtempSync(path.join(os.tmpdir(), 'kaon-home-'));
let worker: CliProcess | undefined;
after(async () => {
  worker?.kill();
  await worker?.exited;
  rmSync(home, { recursive: true, force: true });
});

test('`kaon worker` with KAON_HOME in a fresh temp folder outside the project bundles and runs a pipeline', { timeout: 180_000 }, async () => {
  assert.ok(path.relative(ROOT, home).startsWith('..'), `KAON_HOME ${home} lies outside the project`);
  const { address } = await testServer();
  const taskQueue = `kaon-home-${randomUUID().slice(0, 8)}`;
  worker = new CliProcess(['worker', ...FIXTURE_FLAGS], { env: cliEnv({ TEMPORAL_ADDRESS: address, KAON_TASK_QUEUE: taskQueue, KAON_HOME: home }) });
  await worker.waitFor(/^kaon worker: ready/m, 120_000);
  assert.doesNotMatch(worker.stderr, /Can't resolve|Module not found/);
  // The entry was generated where KAON_HOME says.
  assert.ok(readdirSync(path.join(home, 'gen')).some((f) => /^workflows-[0-9a-f]{12}\.ts$/.test(f)), 'the workflow entry is under <KAON_HOME>/gen');

  const connection = await Connection.connect({ address });
  try {
    const kaon = await connect({ connection, taskQueue });
    const run = await kaon.start(cliSlow, { ms: 10 });
    assert.deepEqual(await run.result(), { waited: 10, attempt: 1 });
  } finally {
    await connection.close();
  }
});
