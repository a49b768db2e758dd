// The reference pipeline on a real server, with real Python steps (numpy, scikit-learn, matplotlib in a
// virtualenv Kaon builds on first use).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as activities from '../../activities';
import { DEFAULT_COUNTRIES, retrainRecommender } from '../../workflows/recommender';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
let registry: string;

before(async () => {
  ({ env, stop } = await runningWorker('recommender', { workflowsPath: path.join(ROOT, 'workflows/index.ts'), activities }));
  registry = path.join(env.artifactsDir, 'registry');
});
after(() => stop());

test('retrain-recommender completes, the validation loop retrains the hard country, winners beat the baseline and get model cards', async () => {
  const run = await env.kaon.start(retrainRecommender, { registry });
  const result = await run.result();
  const byCountry = Object.fromEntries(result.countries.map((c) => [c.country, c]));
  assert.deepEqual(Object.keys(byCountry).sort(), ['BR', 'IN', 'JP', 'US']);

  // JP is seeded hard: rank 4 and 8 miss the 50% lift, rank 16 makes it.
  assert.equal(byCountry.JP!.trainings, 3);
  assert.equal(byCountry.JP!.hyperparameters.rank, 16);
  for (const c of ['US', 'BR', 'IN']) assert.equal(byCountry[c]!.trainings, 1, `${c} passes with the first model`);

  const state = await run.progress();
  const keys = state.steps.map((s) => s.key);
  for (const k of ['train[JP]', 'train[JP]#2', 'train[JP]#3', 'evaluate[JP]#3']) assert.ok(keys.includes(k), `run state shows ${k}`);
  assert.ok(!keys.includes('train[US]#2'));

  for (const c of result.countries) {
    assert.ok(c.accepted && c.published, `${c.country} published`);
    assert.ok(c.metrics.ndcgAtK >= c.metrics.baseline.ndcgAtK * 1.5, `${c.country} beats the popularity baseline by ≥50%`);
    assert.ok(c.metrics.recallAtK > c.metrics.baseline.recallAtK);
    const dir = path.join(registry, c.country, c.version!);
    const card = JSON.parse(readFileSync(path.join(dir, 'metrics.json'), 'utf8')) as { metrics: { ndcgAtK: number } };
    assert.equal(card.metrics.ndcgAtK, c.metrics.ndcgAtK);
    const png = readFileSync(path.join(dir, 'metrics.png'));
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a real PNG');
    assert.ok(png.length > 5000);
    const lineage = JSON.parse(readFileSync(path.join(dir, 'lineage.json'), 'utf8')) as { run: string; model: { sha256: string } };
    assert.equal(lineage.run, run.id);
    assert.ok(existsSync(path.join(dir, 'model.npz')));
    const current = JSON.parse(readFileSync(path.join(registry, c.country, 'current.json'), 'utf8')) as { version: string };
    assert.equal(current.version, c.version);
  }
  // Lineage in the artifact store: the published model card came from the model, which came from the train split.
  const refs = await env.artifacts.listByRun(run.id);
  const model = refs.find((r) => r.name === 'model-US-r4.npz');
  assert.ok(model);
  const made = await env.artifacts.producedBy(model);
  assert.equal(made[0]?.producer.step, 'train[US]');
  assert.deepEqual(made[0]?.inputs.map((i) => i.name), ['train-US.npz']);

  // A rerun with caching on reuses ingest and featurize (and training); the champions stay.
  const rerun = await env.kaon.start(retrainRecommender, { registry });
  const again = await rerun.result();
  const st = await rerun.progress();
  const status = Object.fromEntries(st.steps.map((s) => [s.key, s.status]));
  assert.equal(status.ingest, 'cached');
  for (const c of DEFAULT_COUNTRIES) assert.equal(status[`featurize[${c.code}]`], 'cached');
  assert.ok(again.countries.every((c) => !c.published && /champion .* is at least as good/.test(c.decision)));
});

test('a failed data-quality check stops the pipeline with a report artifact', async () => {
  const countries = DEFAULT_COUNTRIES.slice(0, 2).map((c) => (c.code === 'BR' ? { ...c, nullRate: 0.2 } : c));
  const run = await env.kaon.start(retrainRecommender, { registry, countries });
  const err = await run.result().then(() => undefined, (e: Error) => e);
  assert.ok(err);
  assert.match(err.message, /data validation failed: BR: nullRate check failed/);
  const uri = /Report: (\S+?)\./.exec(err.message)?.[1];
  assert.ok(uri, err.message);
  const report = (await env.artifacts.listByRun(run.id)).find((r) => r.name === 'data-quality.json');
  assert.ok(report);
  const body = JSON.parse((await env.artifacts.getBytes(report)).toString('utf8')) as { ok: boolean; countries: Record<string, { nullRate: { ok: boolean } }> };
  assert.equal(body.ok, false);
  assert.equal(body.countries.BR!.nullRate.ok, false);
  assert.equal(body.countries.US!.nullRate.ok, true);
  const state = await run.progress();
  assert.ok(!state.steps.some((s) => s.key.startsWith('featurize')), 'nothing after validation ran');
});
