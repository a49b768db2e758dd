// Pipeline behaviour on a real Temporal dev server: retries, validation, foreach policies, cancellation,
// visibility, idempotent starts, Web UI metadata.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RunFailedError } from '../../src/client';
import { ensureTemporalCli } from '../../src/runtime/temporal-cli';
import * as activities from '../fixtures/pipelines';
import { observed } from '../fixtures/pipelines';
import { afterRunning, bigOutputPipeline, echoPipeline, fanOut, longLoop, parallelFailure, failFast, ignoreFailures, retryPipeline, slowPipeline, strictPipeline } from '../fixtures/pipelines/workflows';
import { runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;

before(async () => {
  ({ env, stop } = await runningWorker('pipelines', { workflowsPath: path.join(__dirname, '../fixtures/pipelines/workflows.ts'), activities }));
});
after(() => stop());

function failureChain(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e instanceof Error; e = e.cause) parts.push(`${e.name}: ${e.message}`);
  return parts.join(' <- ');
}

describe('retries', () => {
  test('a step that fails twice then succeeds completes with attempts = 3 in the run state', async () => {
    const run = await env.kaon.start(retryPipeline, { failTimes: 2 });
    const result = await run.result();
    assert.deepEqual(result, { attempt: 3 });
    const state = await run.progress();
    assert.equal(state.status, 'succeeded');
    const step = state.steps.find((s) => s.key === 'flaky');
    assert.ok(step, 'flaky step in run state');
    assert.equal(step.status, 'succeeded');
    assert.equal(step.attempts, 3);
    assert.ok(step.startedAt !== undefined && step.endedAt !== undefined && step.endedAt >= step.startedAt);
  });
});

describe('validation at every boundary', () => {
  test('client start refuses bad params before anything reaches the server', async () => {
    await assert.rejects(
      env.kaon.start(strictPipeline, { count: 'three', mode: 'ok' } as never),
      (err: Error) => /params of pipeline "test-strict" is invalid: field "count"/.test(err.message) && /To fix:/.test(err.message),
    );
    const runs = await env.kaon.list({ pipeline: 'test-strict' });
    assert.equal(runs.length, 0, 'no run was created');
  });

  test('a step input violation fails at once, non-retryably, naming the field', async () => {
    const run = await env.kaon.start(strictPipeline, { count: 1.5, mode: 'ok' });
    const err = await run.result().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof RunFailedError, failureChain(err));
    assert.match(err.message, /input of step "strict" \(key strict\) is invalid: field "count"/);
    assert.match(err.message, /expected int|Invalid input|integer/i);
    assert.match(err.message, /received number 1\.5/);
    const state = await run.progress();
    const step = state.steps.find((s) => s.key === 'strict');
    assert.equal(step?.status, 'failed');
    assert.equal(step?.attempts, 1, 'not retried although the policy allows 5 attempts');
    assert.equal(state.status, 'failed');
  });

  test('a step output violation fails at once, non-retryably, naming the field', async () => {
    const run = await env.kaon.start(strictPipeline, { count: 2, mode: 'bad-output' });
    const err = await run.result().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof RunFailedError);
    assert.match(err.message, /output of step "strict" \(key strict\) is invalid: field "total"/);
    assert.match(err.message, /received string "many"/);
    const step = (await run.progress()).steps.find((s) => s.key === 'strict');
    assert.equal(step?.attempts, 1);
  });
});

describe('large outputs stay out of workflow history', () => {
  for (const kib of [300, 3 * 1024]) {
    test(`a ${kib} KiB JSON output is refused at once with an error that says to return an artifact`, async () => {
      const run = await env.kaon.start(bigOutputPipeline, { kib });
      const err = await run.result().then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof RunFailedError, failureChain(err));
      assert.match(err.message, new RegExp(`output of step "bigOutput" \\(key bigOutput\\) is ${kib} KiB of JSON, over Kaon's 256 KiB limit`));
      assert.match(err.message, /To fix: write the large part as an artifact \(ctx\.artifacts\.put\) and return its ArtifactRef/);
      assert.doesNotMatch(failureChain(err), /exceeds size limit|2 ?MB|BlobSizeLimit/i, "never Temporal's own payload limit");
      assert.equal((await run.progress()).steps[0]?.attempts, 1, 'not retried');
    });
  }
});

describe('history limits', () => {
  test('a run that would outgrow its history fails clearly before Temporal would terminate it', async () => {
    const run = await env.kaon.start(longLoop, { steps: 500 });
    const err = await run.result().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof RunFailedError, failureChain(err));
    assert.match(err.message, /has \d+ history events \(Kaon's bound: 120\), so step "echo" was not scheduled\. To fix: for a sweep over many items use k\.map\(step, items\).*k\.continueAsNew\(nextParams\)/);
    const state = await run.progress();
    const ran = state.steps.length;
    assert.ok(ran > 10 && ran < 60, `stopped early (${ran} steps), not after 500`);
    assert.ok(state.steps.every((s) => s.status === 'succeeded'), 'every scheduled step completed');
    assert.equal(state.status, 'failed');
  });
});

describe('fan-out through child pipelines', () => {
  test('batches run as child pipelines with their own histories, visible in the run state and in visibility', async () => {
    const run = await env.kaon.start(fanOut, { n: 25, batch: 10 });
    const result = await run.result();
    assert.deepEqual(result, Array.from({ length: 25 }, (_, i) => `v${i}`));
    const state = await run.progress();
    assert.deepEqual(state.steps.map((s) => [s.key, s.status]), [['test-echo-batch[0]', 'succeeded'], ['test-echo-batch[1]', 'succeeded'], ['test-echo-batch[2]', 'succeeded']]);
    const child = env.kaon.run(`${run.id}/test-echo-batch[2]`);
    const childState = await child.progress();
    assert.deepEqual(childState.steps.map((s) => s.key), ['echo[v20]', 'echo[v21]', 'echo[v22]', 'echo[v23]', 'echo[v24]']);
    const parentEvents = (await env.temporal.workflow.getHandle(run.id).fetchHistory()).events?.length ?? 0;
    assert.ok(parentEvents < 60, `the parent's history holds the 3 children, not the 25 steps (${parentEvents} events)`);
    let listed: string[] = [];
    for (let i = 0; i < 50 && listed.length < 3; i++) {
      listed = (await env.kaon.list({ pipeline: 'test-echo-batch', status: 'succeeded' })).map((r) => r.id).filter((id) => id.startsWith(`${run.id}/`));
      if (listed.length < 3) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(listed.length, 3);
  });
});

describe('foreach failure policies', () => {
  const items = ['a', 'b', 'c', 'd', 'e', 'f'];

  test('fail-fast: the first failure fails the run and cancels items still running', async () => {
    const run = await env.kaon.start(failFast, { items, failing: ['b'], concurrency: 3, delayMs: 8000 });
    const err = await run.result().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof RunFailedError);
    assert.match(err.message, /item b is broken/);
    const state = await run.progress();
    const byKey = Object.fromEntries(state.steps.map((s) => [s.key, s.status]));
    assert.equal(byKey['maybeFail[b]'], 'failed');
    // a and c were running alongside b: cancelled, not left running; d.. never started.
    assert.equal(byKey['maybeFail[a]'], 'cancelled');
    assert.equal(byKey['maybeFail[c]'], 'cancelled');
    assert.equal(byKey['maybeFail[d]'], undefined);
    assert.equal(state.status, 'failed');
  });

  test('after-running: every item finishes, then the run fails listing each failed item', async () => {
    const run = await env.kaon.start(afterRunning, { items, failing: ['b', 'e'], concurrency: 2 });
    const err = await run.result().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof RunFailedError);
    assert.match(err.message, /2 of 6 items failed/);
    assert.match(err.message, /\[b\] .*item b is broken/);
    assert.match(err.message, /\[e\] .*item e is broken/);
    const state = await run.progress();
    for (const i of items) {
      const s = state.steps.find((x) => x.key === `maybeFail[${i}]`);
      assert.equal(s?.status, i === 'b' || i === 'e' ? 'failed' : 'succeeded', i);
    }
    assert.deepEqual(state.failedItems.map((f) => f.key).sort(), ['b', 'e']);
  });

  test('ignore: the run completes and reports the failed items', async () => {
    const run = await env.kaon.start(ignoreFailures, { items, failing: ['c'], concurrency: 6 });
    const result = await run.result();
    assert.deepEqual(result, { ok: ['a', 'b', 'd', 'e', 'f'], failed: ['c'] });
    const state = await run.progress();
    assert.equal(state.status, 'succeeded');
    assert.deepEqual(state.failedItems.map((f) => f.key), ['c']);
    assert.match(state.failedItems[0]!.error, /item c is broken/);
  });
});

describe('cancellation', () => {
  test('cancel stops a running pipeline and its steps see the cancellation', async () => {
    const run = await env.kaon.start(slowPipeline, { ms: 60_000 });
    // Wait until both steps run and have heartbeated progress.
    for (let i = 0; i < 100; i++) {
      const st = await run.progress();
      if (st.steps.filter((s) => s.status === 'running' && s.progress?.fraction !== undefined).length === 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(observed.started.filter((t) => t === 'left' || t === 'right').sort(), ['left', 'right']);
    const t0 = Date.now();
    await run.cancel();
    const err = await run.result().then(() => undefined, (e: unknown) => e);
    assert.ok(err, 'result rejects');
    assert.match(failureChain(err), /cancel/i);
    assert.deepEqual(observed.cancelled.filter((t) => t === 'left' || t === 'right').sort(), ['left', 'right'], 'both steps saw the cancellation');
    assert.ok(Date.now() - t0 < 20_000, 'cancellation arrives within seconds');
    const status = await run.status();
    assert.equal(status.temporal, 'CANCELLED');
    assert.equal(status.kaon, 'cancelled');
    const state = await run.progress();
    assert.deepEqual(state.steps.map((s) => s.status), ['cancelled', 'cancelled']);
    assert.deepEqual(state.steps.map((s) => s.attempts), [1, 1], 'the cancelled attempt is counted');
    assert.deepEqual(state.steps.map((s) => s.branch).sort(), ['left', 'right']);
  });
});

describe('parallel branches', () => {
  test('a failing branch cancels its sibling, and the run fails only after the sibling has settled', async () => {
    const run = await env.kaon.start(parallelFailure, {});
    const err = await run.result().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof RunFailedError, failureChain(err));
    assert.match(err.message, /item broken is broken/);
    assert.ok(observed.cancelled.includes('parallel-long'), 'the long branch saw the cancellation before the run closed');
    const state = await run.progress();
    assert.deepEqual(Object.fromEntries(state.steps.map((s) => [s.branch, s.status])), { long: 'cancelled', broken: 'failed' });
  });
});

describe('visibility and idempotency', () => {
  test('list finds runs by pipeline and by status', async () => {
    const ok = await env.kaon.start(echoPipeline, { value: 'listed' });
    await ok.result();
    const bad = await env.kaon.start(strictPipeline, { count: 2, mode: 'bad-output' });
    await bad.result().catch(() => undefined);
    // Visibility is eventually consistent: poll briefly.
    let byPipeline: string[] = [];
    let failed: string[] = [];
    for (let i = 0; i < 50; i++) {
      byPipeline = (await env.kaon.list({ pipeline: 'test-echo' })).map((r) => r.id);
      failed = (await env.kaon.list({ status: 'failed' })).map((r) => r.id);
      if (byPipeline.includes(ok.id) && failed.includes(bad.id)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(byPipeline.includes(ok.id));
    assert.ok(!byPipeline.includes(bad.id));
    assert.ok(failed.includes(bad.id));
    assert.ok(!failed.includes(ok.id));
    const succeededEcho = await env.kaon.list({ pipeline: 'test-echo', status: 'succeeded' });
    assert.ok(succeededEcho.some((r) => r.id === ok.id && r.kaon === 'succeeded' && r.temporal === 'COMPLETED'));
  });

  test('starting twice with the same run key yields one run, while running and after it closed', async () => {
    const key = `key-${Date.now()}`;
    const first = await env.kaon.start(slowPipeline, { ms: 1500 }, { runKey: key });
    const second = await env.kaon.start(slowPipeline, { ms: 1500 }, { runKey: key });
    assert.equal(second.id, first.id);
    assert.equal(second.existing, true);
    const firstRun = (await first.status()).runId;
    await first.result();
    const third = await env.kaon.start(slowPipeline, { ms: 1500 }, { runKey: key });
    assert.equal(third.existing, true);
    assert.equal((await third.status()).runId, firstRun, 'no new execution after completion either');
  });

  test('activity summaries and search attributes are visible through the temporal CLI', async () => {
    const run = await env.kaon.start(echoPipeline, { value: 'ui' });
    await run.result();
    const cli = ensureTemporalCli();
    const describe = spawnSync(cli, ['workflow', 'describe', '--address', env.address, '-w', run.id, '-o', 'json'], { encoding: 'utf8' });
    assert.equal(describe.status, 0, describe.stderr);
    const d = JSON.parse(describe.stdout) as Record<string, unknown>;
    const text = JSON.stringify(d);
    assert.match(text, /KaonPipeline/);
    assert.match(text, /test-echo/);
    assert.match(text, /KaonStatus/);
    const history = spawnSync(cli, ['workflow', 'show', '--address', env.address, '-w', run.id, '-o', 'json'], { encoding: 'utf8' });
    assert.equal(history.status, 0, history.stderr);
    // The activity's user metadata summary carries the step key (payload data is base64 JSON).
    const events = (JSON.parse(history.stdout) as { events: Array<Record<string, unknown>> }).events;
    const scheduled = events.find((e) => e.eventType === 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED' || e.activityTaskScheduledEventAttributes);
    assert.ok(scheduled, 'activity scheduled');
    const summaryData = (scheduled.userMetadata as { summary?: { data?: string } } | undefined)?.summary?.data;
    assert.ok(summaryData, `summary on the activity: ${JSON.stringify(scheduled).slice(0, 400)}`);
    assert.equal(JSON.parse(Buffer.from(summaryData, 'base64').toString('utf8')), 'say — repeat the value');
    const started = events[0] as { userMetadata?: { summary?: { data?: string }; details?: { data?: string } } };
    assert.equal(JSON.parse(Buffer.from(started.userMetadata!.summary!.data!, 'base64').toString()), 'test-echo — echoes a value');
    assert.match(JSON.parse(Buffer.from(started.userMetadata!.details!.data!, 'base64').toString()), /"value": "ui"/);
    const list = spawnSync(cli, ['workflow', 'list', '--address', env.address, '--query', `KaonPipeline = 'test-echo' AND KaonStatus = 'succeeded'`, '-o', 'json'], { encoding: 'utf8' });
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, new RegExp(run.id));
  });
});
