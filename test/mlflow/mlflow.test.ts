// MLflow bookkeeping against a real `mlflow server` (PyPI, pinned; SQLite; loopback), with the reference pipeline
// on a real Temporal server. Everything is checked through MLflow's REST API with plain fetch (not Kaon's client).
// Its own tier (npm run test:mlflow): starting mlflow takes 30 s or more here.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as activities from '../../activities';
import type { StepBookkeeping } from '../../src/execution/activities';
import { mlflowFromEnv } from '../../src/execution/mlflow';
import { retrainRecommender } from '../../workflows/recommender';
import { freePort, startMlflowServer, type MlflowServer } from '../support/mlflow-server';
import { ROOT, testEnv, type TestEnv } from '../support/temporal';
import { metricsDemo } from '../fixtures/mlflow/workflows';
import * as demoSteps from '../fixtures/mlflow';

let mlflow: MlflowServer;
let env: TestEnv;
before(async () => {
  [mlflow, env] = await Promise.all([startMlflowServer(), testEnv('mlflow')]);
});
after(async () => {
  await env?.close();
  await mlflow?.stop();
});

interface Run {
  info: { run_id: string; run_name: string; status: string; artifact_uri: string; end_time?: string | number };
  data: { metrics?: { key: string; value: number; step?: string | number }[]; params?: { key: string; value: string }[]; tags?: { key: string; value: string }[] };
}

async function api<T>(method: 'GET' | 'POST', endpoint: string, body: Record<string, unknown>): Promise<T> {
  const url = method === 'GET' ? `${mlflow.url}/api/2.0/mlflow/${endpoint}?${new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, String(v)]))}` : `${mlflow.url}/api/2.0/mlflow/${endpoint}`;
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json' }, ...(method === 'POST' ? { body: JSON.stringify(body) } : {}) });
  const json = (await res.json()) as T;
  assert.ok(res.ok, `${endpoint}: HTTP ${res.status} ${JSON.stringify(json)}`);
  return json;
}
const tag = (r: Run, k: string) => r.data.tags?.find((t) => t.key === k)?.value;
const param = (r: Run, k: string) => r.data.params?.find((t) => t.key === k)?.value;
const metric = (r: Run, k: string) => r.data.metrics?.find((t) => t.key === k)?.value;

async function runsOf(experimentId: string, kaonRunId: string): Promise<Run[]> {
  const { runs } = await api<{ runs?: Run[] }>('POST', 'runs/search', { experiment_ids: [experimentId], filter: `tags.\`kaon.run_id\` = '${kaonRunId}'`, max_results: 1000 });
  return runs ?? [];
}

describe('MLflow bookkeeping', () => {
  test('the reference pipeline is an MLflow run with a nested run per step, metrics, params, sha256 tags, and registered model versions', { timeout: 600_000 }, async () => {
    const worker = await env.worker({ workflowsPath: path.join(ROOT, 'workflows/index.ts'), activities, bookkeeping: mlflowFromEnv({ MLFLOW_TRACKING_URI: mlflow.url }) ?? null });
    const registry = path.join(env.artifactsDir, 'registry');
    const countries = [
      { code: 'US', seed: 11, users: 150, titles: 100, tasteRank: 3, tasteStrength: 3, popularityWeight: 1, viewsPerUser: 20, nullRate: 0 },
      { code: 'BR', seed: 12, users: 150, titles: 100, tasteRank: 3, tasteStrength: 3, popularityWeight: 1, viewsPerUser: 20, nullRate: 0 },
    ];
    const params = { registry, countries, grid: [{ rank: 4, l2: 0 }], epochs: 3, itersPerEpoch: 5, minLift: -10, minRows: 100 };
    const { run, result, state, rerun } = await worker.runUntil(async () => {
      const run = await env.kaon.start(retrainRecommender, params);
      const result = await run.result();
      const state = await run.progress();
      // A second run reuses the cached steps: they are nested runs of its own MLflow run too.
      const rerun = await env.kaon.start(retrainRecommender, params);
      await rerun.result();
      return { run, result, state, rerun };
    });
    assert.ok(result.countries.every((c) => c.published), JSON.stringify(result.countries));

    // Step metrics land in the run state whether or not MLflow is on.
    const train = state.steps.find((s) => s.key === 'train[US]');
    assert.deepEqual(train?.metrics?.map((m) => [m.name, m.step]), [['relative_loss', 1], ['relative_loss', 2], ['relative_loss', 3]]);

    const { experiment } = await api<{ experiment: { experiment_id: string } }>('GET', 'experiments/get-by-name', { experiment_name: 'retrain-recommender' });
    const runs = await runsOf(experiment.experiment_id, run.id);
    const parents = runs.filter((r) => tag(r, 'kaon.kind') === 'run');
    assert.equal(parents.length, 1, 'one MLflow run for the Kaon run, though steps ran in parallel');
    const parent = parents[0]!;
    assert.equal(parent.info.run_name, run.id);
    assert.equal(param(parent, 'epochs'), '3');
    assert.equal(param(parent, 'registry'), registry);
    assert.equal(param(parent, 'countries'), JSON.stringify(countries));

    const steps = new Map(runs.filter((r) => tag(r, 'kaon.kind') === 'step').map((r) => [tag(r, 'kaon.step_key')!, r]));
    const expected = ['ingest', 'validateData', 'featurize[US]', 'featurize[BR]', 'train[US]', 'train[BR]', 'evaluate[US]', 'evaluate[BR]', 'championChallenger', 'publish[US]', 'publish[BR]'];
    assert.deepEqual([...steps.keys()].sort(), [...expected].sort());
    for (const [key, r] of steps) {
      assert.equal(tag(r, 'mlflow.parentRunId'), parent.info.run_id, `${key} is nested under the pipeline run`);
      assert.equal(tag(r, 'kaon.attempt'), '1');
      assert.equal(r.info.status, 'FINISHED', key);
    }
    // Params are the step's input scalars; metrics its ctx metrics and numeric outputs.
    const trainUs = steps.get('train[US]')!;
    assert.equal(param(trainUs, 'rank'), '4');
    assert.equal(param(trainUs, 'country'), 'US');
    const { metrics: history } = await api<{ metrics: { value: number; step: string | number }[] }>('GET', 'metrics/get-history', { run_id: trainUs.info.run_id, metric_key: 'relative_loss' });
    assert.deepEqual(history.map((m) => Number(m.step)).sort(), [1, 2, 3]);
    assert.deepEqual(history.sort((a, b) => Number(a.step) - Number(b.step)).map((m) => m.value), train!.metrics!.map((m) => m.value));
    const us = result.countries.find((c) => c.country === 'US')!;
    const evalUs = steps.get('evaluate[US]')!;
    assert.equal(metric(evalUs, 'ndcgAtK'), us.metrics.ndcgAtK);
    assert.equal(metric(evalUs, 'baseline.recallAtK'), us.metrics.baseline.recallAtK);
    // Artifact sha256s as tags: the model the train step wrote.
    const refs = await env.artifacts.listByRun(run.id);
    const model = refs.find((r) => r.name === 'model-US-r4.npz')!;
    assert.equal(tag(trainUs, 'kaon.artifact.output.model.sha256'), model.sha256);
    assert.equal(tag(evalUs, 'kaon.artifact.input.model.sha256'), model.sha256);

    // The run's MLflow run closes when the workflow does (a watcher on the worker).
    let closed: Run | undefined;
    for (let i = 0; i < 100 && !closed; i++) {
      const { run: r } = await api<{ run: Run }>('GET', 'runs/get', { run_id: parent.info.run_id });
      if (r.info.status === 'FINISHED') closed = r;
      else await new Promise((res) => setTimeout(res, 200));
    }
    assert.ok(closed?.info.end_time, 'the pipeline run is FINISHED with an end time');

    const again = await runsOf(experiment.experiment_id, rerun.id);
    const cachedTrain = again.find((r) => tag(r, 'kaon.step_key') === 'train[US]');
    assert.equal(tag(cachedTrain!, 'kaon.reused_from'), `cache:${run.id}`);
    assert.equal(tag(cachedTrain!, 'mlflow.parentRunId'), again.find((r) => tag(r, 'kaon.kind') === 'run')?.info.run_id);
    assert.equal(tag(cachedTrain!, 'kaon.artifact.output.model.sha256'), model.sha256);

    // Model Registry: recommender-US has a version whose files are the model, linked back to the Kaon run.
    for (const country of ['US', 'BR']) {
      const { model_versions: versions } = await api<{ model_versions: { version: string; source: string; run_id: string; description: string; tags: { key: string; value: string }[] }[] }>('GET', 'model-versions/search', { filter: `name='recommender-${country}'` });
      assert.equal(versions.length, 1, `one version of recommender-${country}`);
      const v = versions[0]!;
      const vt = Object.fromEntries(v.tags.map((t) => [t.key, t.value]));
      const published = refs.find((r) => r.name === `model-${country}-r4.npz`)!;
      assert.equal(vt['kaon.run_id'], run.id);
      assert.equal(vt['kaon.step_key'], `publish[${country}]`);
      assert.equal(vt['kaon.sha256'], published.sha256);
      assert.equal(vt['kaon.version'], result.version);
      assert.equal(v.run_id, steps.get(`publish[${country}]`)!.info.run_id);
      assert.match(v.description, new RegExp(`published by Kaon run ${run.id}`));
      assert.match(v.source, /^mlflow-artifacts:\/.*\/artifacts\/model$/);
      // The bytes are in MLflow's artifact store, byte for byte.
      const rel = v.source.replace(/^mlflow-artifacts:\//, '');
      const res = await fetch(`${mlflow.url}/api/2.0/mlflow-artifacts/artifacts/${rel}/${published.name}`);
      assert.equal(res.status, 200);
      const bytes = Buffer.from(await res.arrayBuffer());
      assert.equal(createHash('sha256').update(bytes).digest('hex'), published.sha256);
    }
  });

  test('an unreachable MLflow: every step succeeds, each logs one warning saying how to fix it', { timeout: 300_000 }, async () => {
    const port = await freePort(); // nothing listens there
    const books = mlflowFromEnv({ MLFLOW_TRACKING_URI: `http://127.0.0.1:${port}` })!;
    const warnings: string[] = [];
    const spy: StepBookkeeping = { record: (a, log) => books.record(a, { ...log, warn: (m, meta) => (warnings.push(`${a.key}: ${m}`), log.warn(m, meta)) }) };
    const worker = await env.worker({ workflowsPath: path.join(ROOT, 'test/fixtures/mlflow/workflows.ts'), activities: demoSteps, bookkeeping: spy });
    const { result, state } = await worker.runUntil(async () => {
      const run = await env.kaon.start(metricsDemo, { n: 3 });
      return { result: await run.result(), state: await run.progress() };
    });
    assert.deepEqual(result, { total: 6 });
    assert.ok(state.steps.every((s) => s.status === 'succeeded' && s.attempts === 1), JSON.stringify(state.steps));
    assert.deepEqual(state.steps.find((s) => s.key === 'tsMetrics')?.metrics, [{ name: 'loss', value: 1, step: 0 }, { name: 'loss', value: 0.5, step: 1 }, { name: 'loss', value: 1 / 3, step: 2 }]);
    assert.deepEqual(state.steps.find((s) => s.key === 'shMetrics')?.metrics, [{ name: 'rows', value: 42 }]);
    assert.equal(warnings.length, 2, warnings.join('\n'));
    for (const w of warnings) {
      assert.match(w, /MLflow bookkeeping of step \w+ failed; the step itself succeeded or failed on its own: MLflow at http:\/\/127\.0\.0\.1:\d+ could not be reached/);
      assert.match(w, /To fix: check that MLFLOW_TRACKING_URI \(http:\/\/127\.0\.0\.1:\d+\) points at a running MLflow server/);
    }
  });
});
