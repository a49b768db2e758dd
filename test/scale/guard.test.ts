// The history guard stops only at hard limits: a 1,000-item foreach of two steps per item completes in one
// history, well past Temporal's continue-as-new suggestion (4,096 events) and under its 10,240-event warning.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as activities from '../fixtures/scale';
import { tooManyForeach, twoStepForeach } from '../fixtures/scale/workflows';
import { runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
before(async () => {
  ({ env, stop } = await runningWorker('guard', { workflowsPath: path.join(__dirname, '../fixtures/scale/workflows.ts'), activities }));
});
after(() => stop());

test('a 1,000-item foreach with 2 steps per item completes in one history past the continue-as-new hint', async (t) => {
  const run = await env.kaon.start(twoStepForeach, { n: 1000 });
  const result = await run.result();
  assert.equal(result.n, 1000);
  assert.equal(result.sum, 2 * ((999 * 1000) / 2));
  assert.ok(result.budget.suggested, `Temporal suggested continue-as-new (${result.budget.events} events), and the run went on`);
  const events = (await env.temporal.workflow.getHandle(run.id).fetchHistory()).events?.length ?? 0;
  t.diagnostic(`history: ${events} events`);
  assert.ok(events > 4096 && events < 10_240, `one history of ${events} events`);
  const state = await run.progress();
  assert.equal(state.steps.length, 2000);
  assert.ok(state.steps.every((s) => s.status === 'succeeded'));
});

test('a foreach past its 1,000-item cap fails at once, naming k.map', async () => {
  const run = await env.kaon.start(tooManyForeach, { n: 1001 });
  await assert.rejects(run.result(), /foreach over 1001 items exceeds its cap of 1000.*To fix: use k\.map\(step, items, \{ input, concurrency, onFailure \}\)/);
  assert.equal((await run.progress()).steps.length, 0, 'nothing was scheduled');
});

test('a start priority is validated before anything reaches the server', async () => {
  await assert.rejects(env.kaon.start(twoStepForeach, { n: 1 }, { priority: 9 }), /priority 9 is not valid.*To fix: pass an integer from 1/);
});
