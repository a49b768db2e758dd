// The demo pipeline end to end on a real server; its result must equal metrics recomputed here from the
// same seed with the same pure ML code (so the pipeline plumbing neither loses nor mixes up anything).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as activities from '../../activities';
import * as ml from '../../activities/ml/tabular';
import { mlDemo } from '../../workflows';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;

before(async () => {
  ({ env, stop } = await runningWorker('demo', { workflowsPath: path.join(ROOT, 'workflows/index.ts'), activities }));
});
after(() => stop());

test('ml-demo completes and its metrics equal the ones recomputed from the same seed', async () => {
  const params = { seed: 11, rows: 600, features: 4, testFraction: 0.3 };
  const run = await env.kaon.start(mlDemo, params);
  const result = await run.result();

  const data = ml.generate(params.seed, params.rows, params.features);
  const { train, test: holdout } = ml.split(data, params.testFraction, params.seed);
  const expected = {
    logistic: ml.evaluate(ml.trainLogistic(train, 300), holdout),
    'naive-bayes': ml.evaluate(ml.trainNaiveBayes(train), holdout),
    knn: ml.evaluate(ml.trainKnn(train), holdout),
  };
  assert.deepEqual(result.metrics, expected);
  const best = Object.entries(expected).sort(([, a], [, b]) => b.auc - a.auc)[0]![0];
  assert.equal(result.best, best);
  assert.equal(result.profile.rows, params.rows);
  assert.ok(result.metrics.logistic!.auc > 0.9, `logistic regression learns the planted rule (auc ${result.metrics.logistic!.auc})`);
  assert.match(result.table, /logistic\s+0\.\d{4}/);

  const state = await run.progress();
  assert.equal(state.status, 'succeeded');
  assert.deepEqual(state.steps.map((s) => s.key).sort(), [
    'evaluateModel[knn]', 'evaluateModel[logistic]', 'evaluateModel[naive-bayes]', 'generateDataset', 'profileDataset',
    'reportMetrics', 'splitDataset', 'trainModel[knn]', 'trainModel[logistic]', 'trainModel[naive-bayes]',
  ]);
  assert.ok(state.steps.every((s) => s.status === 'succeeded' && s.attempts === 1));
  assert.deepEqual(state.steps.filter((s) => s.branch).map((s) => `${s.branch}:${s.key}`).sort(), ['profile:profileDataset', 'split:splitDataset']);
});
