// Cross-run caching and resume on a real Temporal server, against both artifact-store backends.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KaonWorker } from '../../src/runtime/worker';
import { backends, type StoreFixture } from '../data/helpers';
import * as activities from '../fixtures/memo';
import { makeDataV2, sumData } from '../fixtures/memo/steps';
import { calls, code, makeDataV2Impl, sumDataImpl } from '../fixtures/memo/steps.impl';
import { cachedPipeline, chain, fortyItems } from '../fixtures/memo/workflows';
import { testEnv, type TestEnv } from '../support/temporal';

const workflowsPath = path.join(__dirname, '../fixtures/memo/workflows.ts');
const snapshot = () => ({ ...calls });
const delta = (before: Record<string, number>) =>
  Object.fromEntries(Object.entries(calls).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v !== 0));

for (const backend of backends()) {
  describe(`caching and resume (${backend.name} store)`, () => {
    let env: TestEnv;
    let fixture: StoreFixture;
    let worker: KaonWorker;
    let running: Promise<void>;

    before(async () => {
      await backend.start();
      fixture = await backend.fresh();
      env = await testEnv(`memo-${backend.name}`);
      worker = await env.worker({ workflowsPath, activities, artifacts: fixture.store });
      running = worker.run();
    });
    after(async () => {
      worker.shutdown();
      await running;
      await env.close();
      await backend.stop();
    });

    test('a cache hit returns the stored output without running the step, and shows as cached', async () => {
      const first = await env.kaon.start(cachedPipeline, { rows: 50 });
      const r1 = await first.result();
      const before = snapshot();
      const second = await env.kaon.start(cachedPipeline, { rows: 50 });
      const r2 = await second.result();
      assert.deepEqual(r2, r1);
      assert.deepEqual(delta(before), {}, 'nothing ran');
      const state = await second.progress();
      assert.deepEqual(state.steps.map((s) => [s.key, s.status, s.reusedFrom?.from, s.reusedFrom?.runId]), [
        ['makeData', 'cached', 'cache', first.id],
        ['sumData', 'cached', 'cache', first.id],
      ]);
      assert.equal(r1.sum, Array.from({ length: 50 }, (_, i) => i * i).reduce((a, b) => a + b, 0));

      const off = await env.kaon.start(cachedPipeline, { rows: 50 }, { cache: 'off' });
      await off.result();
      assert.deepEqual(delta(before), { makeData: 1, sumData: 1 }, "cache: 'off' runs every step");
    });

    test('bumping the step version is a miss; same bytes downstream still hit', async () => {
      await (await env.kaon.start(cachedPipeline, { rows: 60 })).result();
      const queue = `${env.taskQueue}-v2`;
      const v2 = await env.worker({ workflowsPath, activities: [makeDataV2, makeDataV2Impl, sumData, sumDataImpl], artifacts: fixture.store, taskQueue: queue });
      const before = snapshot();
      const state = await v2.runUntil(async () => {
        const h = await env.kaon.start(cachedPipeline, { rows: 60 }, { taskQueue: queue });
        await h.result();
        return h.progress();
      });
      assert.deepEqual(delta(before), { 'makeData@2': 1 }, 'version 2 recomputed; sumData got the same bytes and hit');
      assert.deepEqual(state.steps.map((s) => [s.key, s.status]), [['makeData', 'succeeded'], ['sumData', 'cached']]);
    });

    test('a hit whose blob no longer exists is a miss, and the step runs again', async () => {
      const first = await env.kaon.start(cachedPipeline, { rows: 70 });
      await first.result();
      const made = (await first.progress()).steps.find((s) => s.key === 'makeData');
      assert.equal(made?.status, 'succeeded');
      const refs = await fixture.store.listByRun(first.id);
      const dataRef = refs.find((r) => r.name === 'data.csv');
      assert.ok(dataRef, 'the run produced data.csv');
      assert.equal(await fixture.store.delete(dataRef), true);
      const before = snapshot();
      const again = await env.kaon.start(cachedPipeline, { rows: 70 });
      await again.result();
      assert.equal(delta(before).makeData, 1, 'makeData ran again');
      assert.equal(await fixture.store.exists(dataRef), true, 'and wrote the blob back');
      const state = await again.progress();
      assert.equal(state.steps.find((s) => s.key === 'makeData')?.status, 'succeeded');
    });

    test('resume after 37 of 40 items succeeded runs exactly the 3 failed ones, once the bug is fixed', async () => {
      code.brokenItems = new Set([3, 17, 29]);
      const before = snapshot();
      const failed = await env.kaon.start(fortyItems, { base: 1000 });
      const err = await failed.result().then(() => undefined, (e: Error) => e);
      assert.match(String(err?.message), /3 of 40 items failed/);
      assert.equal(delta(before).prepare, 1);

      code.brokenItems = new Set(); // the code fix
      const mid = snapshot();
      const resumed = await failed.resume();
      const total = await resumed.result();
      assert.equal(total, Array.from({ length: 40 }, (_, i) => 1001 + i).reduce((a, b) => a + b, 0));
      assert.deepEqual(delta(mid), { 'processItem[3]': 1, 'processItem[17]': 1, 'processItem[29]': 1 });

      const state = await resumed.progress();
      const reused = state.steps.filter((s) => s.status === 'cached');
      assert.equal(reused.length, 38, '37 items + prepare reused');
      assert.ok(reused.every((s) => s.reusedFrom?.from === 'resume' && s.reusedFrom.runId === failed.id));
      assert.deepEqual(state.steps.filter((s) => s.status === 'succeeded').map((s) => s.key).sort(), ['processItem[17]', 'processItem[29]', 'processItem[3]']);
      const meta = await env.temporal.workflow.getHandle(resumed.id).query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      assert.match(String(meta.currentDetails), /reused from/);
      const describe = await env.temporal.workflow.getHandle(resumed.id).describe();
      assert.deepEqual((describe.memo?.kaon as { resumedFrom?: string }).resumedFrom, failed.id);
    });

    test('resume --from recomputes that step and what its change affects, and reuses the rest', async () => {
      code.transformFactor = 2;
      const first = await env.kaon.start(chain, { n: 1 });
      assert.deepEqual(await first.result(), { trained: 104, described: 'n=2' });

      code.transformFactor = 3; // a code change in transform, without a version bump
      const before = snapshot();
      const plain = await first.resume();
      assert.deepEqual(await plain.result(), { trained: 104, described: 'n=2' }, 'without --from, every matching step is reused');
      assert.deepEqual(delta(before), {});

      const fromTransform = await first.resume({ from: 'transform' });
      assert.deepEqual(await fromTransform.result(), { trained: 106, described: 'n=2' });
      assert.deepEqual(delta(before), { transform: 1, train: 1 }, 'prepare and describeData reused; train recomputed because its input changed');
      const state = await fromTransform.progress();
      assert.deepEqual(state.steps.map((s) => [s.key, s.status]), [['prepare', 'cached'], ['transform', 'succeeded'], ['train', 'succeeded'], ['describeData', 'cached']]);
    });
  });
}
