// The README's sweep example, run for real: a grid written as a manifest, k.map in batches of 50, and a Python
// step that streams the results with kaon_step.read_sweep. Its answer is checked against the grid recomputed here.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as activities from '../../examples/sweep';
import { hyperSweep } from '../../examples/sweep/workflows';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
before(async () => {
  ({ env, stop } = await runningWorker('sweep-example', { workflowsPath: path.join(ROOT, 'examples/sweep/workflows.ts'), activities }));
});
after(() => stop());

test('the sweep example finds the best of 1,010 configs, and a rerun is all cache hits', async () => {
  const grid = Array.from({ length: 101 }, (_, a) => Array.from({ length: 10 }, (_, d) => ({ lr: 10 ** (-4 + (3 * a) / 100), depth: d + 1 }))).flat();
  const score = ({ lr, depth }: { lr: number; depth: number }) => 1 - (Math.log10(lr) + 2) ** 2 / 10 - (depth - 6) ** 2 / 50;
  const best = grid.reduce((b, c) => (score(c) > score(b) ? c : b));
  const run = await env.kaon.start(hyperSweep, {});
  const result = await run.result();
  assert.deepEqual(result, { ...best, score: score(best), scored: 1010 });
  const entry = (await run.progress()).steps.find((s) => s.key === 'scoreConfig');
  assert.deepEqual({ total: entry?.sweep?.total, succeeded: entry?.sweep?.succeeded, cached: entry?.sweep?.cached }, { total: 1010, succeeded: 1010, cached: 0 });

  const again = await env.kaon.start(hyperSweep, {});
  assert.deepEqual(await again.result(), result);
  const cached = (await again.progress()).steps.find((s) => s.key === 'scoreConfig')?.sweep;
  assert.equal(cached?.cached, 1010, 'every item of the sweep is a cache hit (per-item caching)');
});
