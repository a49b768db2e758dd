// Routing to worker pools with two real `kaon worker` processes: steps declare a queue, each worker serves only
// its queues, and a step whose pool has no worker waits (shown as 'waiting for worker') instead of failing.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { KaonClient } from '../../src/client';
import { CliProcess, cliEnv } from '../cli/cli-process';
import { pySquares } from '../fixtures/python-pipeline/workflows';
import { testEnv, type TestEnv } from '../support/temporal';

const project = ['--workflows', 'test/fixtures/python-pipeline/workflows.ts', '--activities', 'test/fixtures/python-pipeline/steps.ts'];
const workers: CliProcess[] = [];
let env: TestEnv | undefined;

after(async () => {
  for (const w of workers) w.kill();
  await env?.close();
});

test('a python-queue step waits for a python worker, then the run completes; each worker serves only its queues', async () => {
  env = await testEnv('routing');
  const childEnv = cliEnv({ TEMPORAL_ADDRESS: env.address, KAON_TASK_QUEUE: `routing-${randomUUID().slice(0, 8)}`, KAON_ARTIFACTS: `file://${env.artifactsDir}` });
  const kaon = new KaonClient(env.temporal, childEnv.KAON_TASK_QUEUE!, false);

  const general = new CliProcess(['worker', '--queues', 'default', ...project], { env: childEnv });
  workers.push(general);
  await general.waitFor(/ready/);
  assert.match(general.stdout, new RegExp(`task queue ${childEnv.KAON_TASK_QUEUE}:`));
  assert.doesNotMatch(general.stdout, /\.python:/, 'the general worker does not poll the python queue');

  const run = await kaon.start(pySquares, { xs: [2, 3], rows: 5 });
  let state = await run.progress();
  for (let i = 0; i < 100 && !state.steps.some((s) => s.status === 'waiting'); i++) {
    await new Promise((r) => setTimeout(r, 100));
    state = await run.progress();
  }
  const waiting = state.steps.filter((s) => s.status === 'waiting');
  assert.deepEqual(waiting.map((s) => s.key).sort(), ['pySquare[2]', 'pySquare[3]']);
  assert.ok(waiting.every((s) => s.note === 'waiting for worker' && s.queue === 'python'));
  // Still waiting a few seconds later: nothing failed or timed out.
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal((await run.status()).temporal, 'RUNNING');
  assert.ok((await run.progress()).steps.every((s) => s.status === 'waiting'));

  const python = new CliProcess(['worker', '--queues', 'python', ...project], { env: childEnv });
  workers.push(python);
  await python.waitFor(/ready/);
  assert.match(python.stdout, new RegExp(`task queue ${childEnv.KAON_TASK_QUEUE}\\.python:`));
  const result = await run.result();
  assert.deepEqual(result.ys, [4, 9]);
  assert.equal(result.rows, 5);
  const final = await run.progress();
  assert.ok(final.steps.every((s) => s.status === 'succeeded'));
});
