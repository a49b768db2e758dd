// The reference pipeline with trainer 'spark-als': trainRecommenderAls (Spark MLlib ALS in a spark() step on
// local[2]) on the same seeded data; the validation loop, metrics and champion/challenger are unchanged.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as activities from '../../activities';
import { retrainRecommender } from '../../workflows/recommender';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;

before(async () => {
  ({ env, stop } = await runningWorker('recommender-als', { workflowsPath: path.join(ROOT, 'workflows/index.ts'), activities }));
});
after(() => stop());

test('retrain-recommender with the Spark ALS trainer completes and every country meets the lift threshold', { timeout: 1_200_000 }, async () => {
  const registry = path.join(env.artifactsDir, 'registry');
  const run = await env.kaon.start(retrainRecommender, { registry, trainer: 'spark-als' });
  const result = await run.result();
  assert.equal(result.trainer, 'spark-als');
  assert.deepEqual(result.countries.map((c) => c.country).sort(), ['BR', 'IN', 'JP', 'US']);
  for (const c of result.countries) {
    assert.ok(c.accepted && c.published, `${c.country} accepted and published: ${c.decision}`);
    assert.ok(c.metrics.lift >= 0.5, `${c.country} lift ${c.metrics.lift} ≥ 0.5 (minLift)`);
    assert.ok(c.metrics.recallAtK > c.metrics.baseline.recallAtK, `${c.country} recall beats the baseline`);
  }
  // The hard country needs the validation loop with ALS too: rank 4 misses the threshold.
  const jp = result.countries.find((c) => c.country === 'JP')!;
  assert.ok(jp.trainings >= 2, `JP retrained (${jp.trainings} trainings)`);

  const history = await env.temporal.workflow.getHandle(run.id).fetchHistory();
  const types = new Set(history.events?.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []));
  assert.ok(types.has('trainRecommenderAls') && !types.has('trainRecommender'), `the Spark trainer ran: ${[...types].join(', ')}`);

  // The model came from the Spark step, with lineage to the train split.
  const model = (await env.artifacts.listByRun(run.id)).find((r) => r.name === 'model-US-r4.npz');
  assert.ok(model, 'the US model artifact');
  const [made] = await env.artifacts.producedBy(model);
  assert.equal(made?.producer.step, 'train[US]');
  assert.deepEqual(made?.inputs.map((i) => i.name), ['train-US.npz']);
  console.log(result.table);
});
