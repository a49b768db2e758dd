// Fairness: every step and child of a run carries the run's fairness key, and the dev server honours them
// (matching.enableFairness). A small pipeline started while a 10,000-item sweep saturates the worker pool
// completes in a bounded time, not behind the sweep's backlog.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as activities from '../fixtures/scale';
import { manifestSweep, smallPipeline } from '../fixtures/scale/workflows';
import { runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
before(async () => {
  // A pool of 20 slots for 20 ms items: ~1,000 items/s at best, while the sweep keeps 2,000 items queued.
  ({ env, stop } = await runningWorker('fair', { workflowsPath: path.join(__dirname, '../fixtures/scale/workflows.ts'), activities, workerOptions: { maxConcurrentActivityTaskExecutions: 20 } }));
});
after(() => stop());

test('a small pipeline started during a 10,000-item sweep completes in seconds, long before the sweep', async (t) => {
  const sweep = await env.kaon.start(manifestSweep, { n: 10_000, concurrency: 2000, ms: 20 });
  // Wait until the sweep has a backlog: its items are running.
  for (let i = 0; i < 200; i++) {
    const e = (await sweep.progress()).steps.find((s) => s.key === 'sweep');
    if ((e?.sweep?.total ?? 0) > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 2000));
  const began = Date.now();
  const small = await env.kaon.start(smallPipeline, {});
  assert.equal(await small.result(), 'done');
  const smallMs = Date.now() - began;
  const status = await sweep.status();
  t.diagnostic(`small pipeline: ${smallMs} ms; sweep still ${status.temporal}`);
  assert.equal(status.temporal, 'RUNNING', 'the sweep was still saturating the pool');
  assert.ok(smallMs < 8000, `the small pipeline was not queued behind the sweep (${smallMs} ms)`);
  await sweep.cancel();
  await assert.rejects(sweep.result());
});
