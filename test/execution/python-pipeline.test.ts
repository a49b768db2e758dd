// python() steps inside a real pipeline on the real Temporal dev server: the worker resolves the `run` descriptors
// through createRunnerExecutors, on the steps' own 'python' queue.
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RunFailedError } from '../../src/client';
import { alive } from './fake-context';
import { createRunnerExecutors } from '../../src/execution';
import type { KaonWorker } from '../../src/runtime/worker';
import * as steps from '../fixtures/python-pipeline/steps';
import { pySquares, shSleep } from '../fixtures/python-pipeline/workflows';
import { testEnv, type TestEnv } from '../support/temporal';

const ROOT = path.resolve(__dirname, '..', '..');
let env: TestEnv;
let worker: KaonWorker;
let running: Promise<void>;
const lines: string[] = [];
const capture = (m: string) => void lines.push(m);

before(async () => {
  env = await testEnv('python-steps');
  worker = await env.worker({
    workflowsPath: path.join(ROOT, 'test/fixtures/python-pipeline/workflows.ts'),
    activities: steps,
    executors: createRunnerExecutors({ root: ROOT, log: { debug: capture, info: capture, warn: capture, error: capture } }),
  });
  running = worker.run();
});

after(async () => {
  worker.shutdown();
  await running;
  await env.close();
});

describe('python() steps on Temporal', () => {
  test('a pipeline of python() steps runs on the python queue and returns their outputs', { timeout: 120_000 }, async () => {
    assert.ok(worker.polled.some((q) => q.endsWith('python')), `worker polls the python queue: ${worker.polled.join(', ')}`);
    const run = await env.kaon.start(pySquares, { xs: [3, 4], rows: 5 });
    assert.deepEqual(await run.result(), { ys: [9, 16], argv: ['two words', '$HOME'], rows: 5 });
    const state = await run.progress();
    assert.equal(state.status, 'succeeded');
    const pyKeys = state.steps.map((s) => s.key).sort();
    assert.equal(pyKeys.length, 3, pyKeys.join(', '));
    for (const s of state.steps) assert.equal(s.attempts, 1);
  });

  test('exit 65 from a Python step fails the run after one attempt, with the script\'s message', { timeout: 120_000 }, async () => {
    const run = await env.kaon.start(pySquares, { xs: [1], rows: -2 });
    await assert.rejects(run.result(), (err: unknown) => {
      assert.ok(err instanceof RunFailedError, String(err));
      assert.match(err.message, /bad input: field 'rows' must be >= 0, got -2/);
      return true;
    });
    const state = await run.progress();
    const check = state.steps.find((s) => s.key.startsWith('pyCheckRows'));
    assert.ok(check, JSON.stringify(state.steps));
    assert.equal(check.status, 'failed');
    assert.equal(check.attempts, 1, 'non-retryable despite maximumAttempts: 3');
  });

  test('cancelling the run reaches the step through heartbeats and kills its process', { timeout: 120_000 }, async () => {
    const run = await env.kaon.start(shSleep, {});
    let pid: number | undefined;
    for (let i = 0; i < 300 && pid === undefined; i++) {
      const line = lines.find((l) => l.startsWith('sleeper '));
      if (line) pid = Number(line.split(' ')[1]);
      else await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(pid && alive(pid), 'the step process is running');
    await run.cancel();
    await assert.rejects(run.result());
    for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(alive(pid), false, `pid ${pid} was killed`);
    const state = await run.progress();
    assert.equal(state.status, 'cancelled');
  });
});
