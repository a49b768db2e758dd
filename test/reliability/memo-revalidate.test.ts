// Cache and resume hits still validate the stored output against today's output schema. The fixture changes the
// schema (a new required field) without bumping the step version, the mistake this guards against: a stale value
// is then treated as a miss and recomputed, and the run state says why. (Bumping the version would change the memo
// key and miss anyway; the point is that nothing stored passes through unvalidated.) A hit whose blobs are gone
// is a miss too.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RunFailedError } from '../../src/client';
import type { KaonWorker } from '../../src/runtime/worker';
import { newWorker, oldWorker, saverWorker } from '../fixtures/memo-revalidate/steps';
import { saved, scored } from '../fixtures/memo-revalidate/workflows';
import { ROOT, testEnv, type TestEnv } from '../support/temporal';

let env: TestEnv;
const workflowsPath = path.join(ROOT, 'test/fixtures/memo-revalidate/workflows.ts');

before(async () => {
  env = await testEnv('memo-revalidate');
});
after(async () => {
  await env.close();
});

async function withWorker<T>(activities: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
  const worker: KaonWorker = await env.worker({ workflowsPath, activities: activities as never });
  return worker.runUntil(fn);
}

const stepOf = async (run: { progress(): Promise<{ steps: { step: string; status: string; note?: string }[] }> }, step: string) =>
  (await run.progress()).steps.find((s) => s.step === step);

describe('cache and resume hits revalidate the stored output', () => {
  test('a cached or resumed output that no longer matches the output schema is recomputed, and the run state says so', { timeout: 180_000 }, async () => {
    const n = Date.now();
    const { failedRun } = await withWorker(oldWorker, async () => {
      const first = await env.kaon.start(scored, { n, finish: false });
      assert.deepEqual(await first.result(), { score: 1 });
      const again = await env.kaon.start(scored, { n, finish: false });
      assert.deepEqual(await again.result(), { score: 1 });
      assert.equal((await stepOf(again, 'mrScore'))?.status, 'cached', 'the old schema hits its own entry');
      const failing = await env.kaon.start(scored, { n: n + 1, finish: true });
      await assert.rejects(failing.result(), RunFailedError);
      assert.equal((await stepOf(failing, 'mrScore'))?.status, 'succeeded');
      return { failedRun: failing.id };
    });

    await withWorker(newWorker, async () => {
      const run = await env.kaon.start(scored, { n, finish: false });
      assert.deepEqual(await run.result(), { score: 2, model: 'new' }, 'recomputed, not the stale { score: 1 }');
      const st = await stepOf(run, 'mrScore');
      assert.equal(st?.status, 'succeeded');
      assert.match(st?.note ?? '', /the cached output \(from run .+\) no longer matches the output schema of step "mrScore" v1, so it was recomputed \(.*model/);

      const again = await env.kaon.start(scored, { n, finish: false });
      assert.deepEqual(await again.result(), { score: 2, model: 'new' });
      assert.equal((await stepOf(again, 'mrScore'))?.status, 'cached', 'the recomputed output replaced the stale entry');

      // Resume (cache off, so only the resume path can reuse): the old run's mrScore output is stale too.
      const resumed = await env.kaon.resume(failedRun, { cache: 'off' });
      assert.deepEqual(await resumed.result(), { score: 2, model: 'new' });
      const rs = await stepOf(resumed, 'mrScore');
      assert.equal(rs?.status, 'succeeded', 'recomputed, not reused from the old run');
      assert.match(rs?.note ?? '', new RegExp(`the output of run ${failedRun} \\(resume\\) no longer matches the output schema`));
      assert.equal((await stepOf(resumed, 'mrFinish'))?.status, 'succeeded');
    });
  });

  test('a cache hit whose artifact is gone is a miss (recomputed)', { timeout: 120_000 }, async () => {
    const n = Date.now();
    await withWorker(saverWorker, async () => {
      const first = await env.kaon.start(saved, { n });
      const out = (await first.result()) as { file: { sha256: string } };
      const hit = await env.kaon.start(saved, { n });
      await hit.result();
      assert.equal((await stepOf(hit, 'mrSaver'))?.status, 'cached');
      assert.equal(await env.artifacts.delete(out.file.sha256), true);
      const miss = await env.kaon.start(saved, { n });
      const again = (await miss.result()) as { file: { sha256: string } };
      assert.equal((await stepOf(miss, 'mrSaver'))?.status, 'succeeded');
      assert.equal(await env.artifacts.exists(again.file.sha256), true, 'the recomputed artifact is back');
    });
  });
});
