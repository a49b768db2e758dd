// Issue 20, report 8: a sweep item is reachable at any batch size. `kaon status <run> --item`, `kaon step run
// --from <run> --key 'sweep[i]'` and the client's stepCall read its input and outcome from the sweep's spec and
// manifests, on a real server with a real worker.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Sweep } from '../../src/definition';
import { manifestReader } from '../../src/cli/store';
import * as activities from '../fixtures/sweep-props';
import { reference } from '../fixtures/sweep-props/reference';
import { propSweep } from '../fixtures/sweep-props/workflows';
import { cliEnv as childEnv, kaon } from '../cli/cli-process';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
before(async () => {
  ({ env, stop } = await runningWorker('item-reach', { workflowsPath: path.join(__dirname, '../fixtures/sweep-props/workflows.ts'), activities }));
});
after(() => stop());

const cli = (args: string[]) => kaon(args, { env: childEnv({ TEMPORAL_ADDRESS: env.address, KAON_TASK_QUEUE: env.taskQueue, KAON_ARTIFACTS: `file://${env.artifactsDir}`, NO_COLOR: '1' }), cwd: ROOT, timeoutMs: 90_000 });

for (const [source, batch] of [['manifest', 10], ['inline', 1]] as const) {
  test(`8. item 3 of a ${source} sweep at batch ${batch}: status --item, step run --from --key, and the client reach it`, async () => {
    const items = Array.from({ length: 25 }, (_, i) => ({ i, bytes: 20, fail: i === 3 ? ('permanent' as const) : ('none' as const) }));
    const run = await env.kaon.start(propSweep, { tag: `reach-${source}`, items, batch, concurrency: 5, source, target: 'ts' });
    const sweep = (await run.result()) as Sweep;
    assert.equal(sweep.failed, 1);

    const ok = await env.kaon.stepCall(run.id, 'sweep[5]', { reader: manifestReader(env.artifacts) });
    assert.deepEqual({ step: ok.step, status: ok.status, input: ok.input }, { step: 'sized', status: 'succeeded', input: { tag: `reach-${source}`, i: 5, bytes: 20, fail: 'none' } });
    assert.deepEqual(ok.item?.output, reference(5, 20));

    const status = await cli(['status', run.id, '--item', '3']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /item {4}sweep\[3\] of run .* \(step sized\)/);
    assert.match(status.stdout, /status {2}failed/);
    assert.match(status.stdout, /"i":3/);
    assert.match(status.stdout, /error {3}item 3: permanent failure/);

    const rerun = await cli(['step', 'run', '--from', run.id, '--key', 'sweep[3]', '--activities', 'test/fixtures/sweep-props/index.ts', '--output-json']);
    assert.equal(rerun.code, 1, 'the item fails again, as it did in the run');
    const out = JSON.parse(rerun.stdout) as { key: string; from: { status: string; failure?: string }; input: unknown; error: { message: string } };
    assert.equal(out.key, 'sweep[3]');
    assert.equal(out.from.status, 'failed');
    assert.match(out.from.failure ?? '', /item 3: permanent failure/);
    assert.deepEqual(out.input, { tag: `reach-${source}`, i: 3, bytes: 20, fail: 'permanent' });
    assert.match(out.error.message, /item 3: permanent failure/);

    const none = await cli(['status', run.id, '--item', 'sweep[99]']);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /has 25 items, so it has no item 99/);
  });
}
