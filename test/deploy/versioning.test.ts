// Worker Versioning on a real server: a loop and a short run start on build v1; build v2 (changed bodies that
// would not replay v1 histories) is deployed and made current. The loop runs v2 from its next iteration on, the
// pinned short run finishes on v1, a new run starts on v2, and no workflow task fails anywhere.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as activities from '../fixtures/versioning';
import { versionedLoop, versionedShort } from '../fixtures/versioning/v1';
import { cliEnv, kaon } from '../cli/cli-process';
import { ROOT, testEnv, type TestEnv } from '../support/temporal';

let env: TestEnv;
before(async () => {
  env = await testEnv('versioning');
});
after(() => env.close());

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function taskFailures(id: string, runId?: string): Promise<number> {
  const h = await env.temporal.workflow.getHandle(id, runId).fetchHistory();
  return (h.events ?? []).filter((e) => e.workflowTaskFailedEventAttributes).length;
}

test('a loop moves from build v1 to v2 at its next continue-as-new; a pinned v1 run finishes on v1', async () => {
  const deployment = `dep-${randomUUID().slice(0, 8)}`;
  const taskQueue = `versioned-${randomUUID().slice(0, 6)}`;
  const v1 = await env.worker({ taskQueue, workflowsPath: path.join(ROOT, 'test/fixtures/versioning/v1.ts'), activities, deployment: { name: deployment, buildId: 'v1' } });
  const v2 = await env.worker({ taskQueue, workflowsPath: path.join(ROOT, 'test/fixtures/versioning/v2.ts'), activities, deployment: { name: deployment, buildId: 'v2', current: false } });
  const running1 = v1.run();
  try {
    // The first build of a deployment becomes current by itself.
    await until('v1 to be current', async () => (await env.kaon.deployments.describe(deployment))?.current === 'v1');
    const loop = await env.kaon.start(versionedLoop, {}, { taskQueue });
    const short = await env.kaon.start(versionedShort, {}, { taskQueue });
    await until('two v1 iterations', async () => ((await loop.progress()).summary ?? '').split(',').length >= 2);
    await until('the short run to wait', async () => (await short.progress()).gates?.some((g) => g.status === 'waiting'));

    // Deploy v2: its workers start, then it becomes current.
    const running2 = v2.run();
    try {
      const childEnv = cliEnv({ TEMPORAL_ADDRESS: env.address, TEMPORAL_NAMESPACE: 'default' });
      const made = await kaon(['deployment', 'current', 'v2', '--deployment', deployment], { env: childEnv });
      assert.equal(made.code, 0, made.stderr);
      assert.match(made.stdout, /build v2 is current in deployment dep-/);
      const shown = await kaon(['deployment', 'describe', '--deployment', deployment], { env: childEnv });
      assert.match(shown.stdout, new RegExp(`deployment ${deployment}: current build v2`));
      assert.match(shown.stdout, /\n {2}v2 {2}CURRENT {2}since /);
      assert.match(shown.stdout, /\n {2}v1 {2}DRAINING {2}since /, 'v1 still has pinned runs');
      const info = await env.kaon.deployments.describe(deployment);
      assert.equal(info?.current, 'v2');
      assert.deepEqual(info?.versions.map((v) => v.buildId).sort(), ['v1', 'v2']);

      const trail = await until('the loop on v2', async () => {
        const t = ((await loop.progress()).summary ?? '').split(',');
        return t.filter((b) => b === 'v2').length >= 2 && t;
      });
      const firstV2 = trail.indexOf('v2');
      assert.ok(firstV2 >= 2, `v1 iterations first: ${trail.join(',')}`);
      assert.deepEqual(trail.slice(firstV2).filter((b) => b !== 'v2'), [], `once on v2, always on v2: ${trail.join(',')}`);
      const loopDesc = await loop.handle.describe();
      assert.equal(loopDesc.raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion?.buildId, 'v2');

      // The pinned run started on v1 finishes there with v1's code, although v2 is current.
      await short.approve('finish', { by: 'ci' });
      assert.equal(await short.result(), 'v1');
      assert.equal((await short.handle.describe()).raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion?.buildId, 'v1');
      // A run started now gets v2.
      const fresh = await env.kaon.start(versionedShort, {}, { taskQueue });
      await until('the new run to wait', async () => (await fresh.progress()).gates?.some((g) => g.status === 'waiting'));
      await fresh.approve('finish', { by: 'ci' });
      assert.equal(await fresh.result(), 'v2');

      await loop.cancel();
      assert.equal(await taskFailures(short.id), 0);
      assert.equal(await taskFailures(fresh.id), 0);
      assert.equal(await taskFailures(loop.id, loopDesc.runId), 0, 'no determinism error in the loop');
    } finally {
      v2.shutdown();
      await running2;
    }
  } finally {
    v1.shutdown();
    await running1;
  }
});
