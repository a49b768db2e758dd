// k.map on a real Temporal server: sweeps sharded over child workflows, results manifests, concurrency bounds,
// failure policies, bounded histories.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readResults } from '../../src/data/manifest';
import type { SweepLine } from '../../src/definition';
import * as activities from '../fixtures/scale';
import { arraySweep, manifestSweep, pipelineSweep } from '../fixtures/scale/workflows';
import { runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
before(async () => {
  ({ env, stop } = await runningWorker('map', { workflowsPath: path.join(__dirname, '../fixtures/scale/workflows.ts'), activities, workerOptions: { maxConcurrentActivityTaskExecutions: 400 } }));
});
after(() => stop());

/** Every execution (all runs of every workflow) under a run: its id, run id and history length. */
async function executions(runId: string): Promise<{ id: string; runId: string; events: number }[]> {
  const out: { id: string; runId: string; events: number }[] = [];
  for await (const w of env.temporal.workflow.list({ query: `WorkflowId STARTS_WITH '${runId}'` })) {
    const h = await env.temporal.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
    out.push({ id: w.workflowId, runId: w.runId, events: h.events?.length ?? 0 });
  }
  return out;
}

async function lines(ref: Parameters<typeof readResults>[1]): Promise<SweepLine[]> {
  const out: SweepLine[] = [];
  for await (const l of readResults(env.artifacts, ref)) out.push(l);
  return out;
}

describe('k.map', () => {
  test('an inline array: input() per item, results in item order', async () => {
    const run = await env.kaon.start(arraySweep, { n: 50 });
    const { sweep, summary } = await run.result();
    assert.equal(sweep.total, 50);
    assert.equal(sweep.succeeded, 50);
    assert.deepEqual(summary, { lines: 50, ok: 50, failed: 0, maxRunning: 0, ordered: true });
    const ls = await lines(sweep.results);
    assert.deepEqual(ls.map((l) => (l.ok ? l.output : null)), Array.from({ length: 50 }, (_, i) => ({ i: 3 * i, twice: 6 * i })));
    const state = await run.progress();
    const entry = state.steps.find((s) => s.key === 'double');
    assert.equal(entry?.sweep?.succeeded, 50, 'one run-state entry for the sweep');
    assert.equal(state.steps.length, 2);
  });

  test('10,000 items from a manifest: counts, 10,000 result lines, the concurrency bound, bounded histories', async (t) => {
    const run = await env.kaon.start(manifestSweep, { n: 10_000, concurrency: 60, ms: 2 });
    const { sweep, summary } = await run.result();
    assert.equal(sweep.total, 10_000);
    assert.equal(sweep.succeeded, 10_000);
    assert.equal(sweep.failed, 0);
    assert.equal(summary.lines, 10_000);
    assert.ok(summary.ordered, 'line i is item i');
    assert.ok(summary.maxRunning <= 60, `at most 60 at once (saw ${summary.maxRunning})`);
    assert.ok(summary.maxRunning >= 20, `the window kept the pool busy (saw ${summary.maxRunning})`);
    const ex = await executions(run.id);
    const largest = Math.max(...ex.map((e) => e.events));
    t.diagnostic(`${ex.length} executions, largest history ${largest} events, ${sweep.rate.toFixed(0)} items/s`);
    assert.ok(ex.length >= 12, 'parent, coordinator and 10 shards');
    assert.ok(largest <= 10_240, `every history at most 10,240 events (largest ${largest})`);
  });
});

describe('k.map: shapes', () => {
  // Issue 20, report 7: lanes were concurrency ÷ batch, so `batch: 50, concurrency: 400` ran 8 items at once.
  test('7. concurrency is items running at once, whatever the batch: batch 10 × concurrency 300 runs ~300 at once', async () => {
    const run = await env.kaon.start(manifestSweep, { n: 3000, batch: 10, concurrency: 300, ms: 150 });
    const { sweep, summary } = await run.result();
    assert.equal(sweep.succeeded, 3000);
    assert.ok(summary.maxRunning <= 300, `at most 300 at once (saw ${summary.maxRunning})`);
    assert.ok(summary.maxRunning >= 200, `about 300 at once, not 300 ÷ 10 (saw ${summary.maxRunning})`);
  });

  test('over a pipeline: each item is a child pipeline under its shard', async () => {
    const run = await env.kaon.start(pipelineSweep, { n: 30 });
    const { sweep, summary } = await run.result();
    assert.equal(sweep.succeeded, 30);
    assert.ok(summary.ordered);
    const ls = await lines(sweep.results);
    assert.deepEqual(ls.map((l) => (l.ok ? l.output : null)), Array.from({ length: 30 }, (_, i) => ({ i, twice: 2 * i })));
    const child = await env.temporal.workflow.getHandle(`${run.id}/test-item/shard-0/7`).describe();
    assert.equal(child.type, 'test-item');
    assert.equal(child.status.name, 'COMPLETED');
  });

  test('the coordinator continues as new between shards; the results stay whole and in order', async () => {
    const run = await env.kaon.start(manifestSweep, { n: 3500, concurrency: 200, shardsPerExecution: 1 });
    const { sweep, summary } = await run.result();
    assert.equal(sweep.succeeded, 3500);
    assert.deepEqual({ lines: summary.lines, ordered: summary.ordered }, { lines: 3500, ordered: true });
    const runs: string[] = [];
    for await (const w of env.temporal.workflow.list({ query: `WorkflowId = '${run.id}/sweep'` })) runs.push(w.status.name);
    assert.deepEqual(runs.sort(), ['COMPLETED', 'CONTINUED_AS_NEW', 'CONTINUED_AS_NEW', 'CONTINUED_AS_NEW'], 'one coordinator execution per shard');
  });
});

describe('k.map failure policies', () => {
  test("'ignore' completes and reports every failed item in the Sweep and the manifest", async () => {
    const run = await env.kaon.start(manifestSweep, { n: 300, failEvery: 10, concurrency: 30, onFailure: 'ignore' });
    const { sweep, summary } = await run.result();
    assert.equal(sweep.failed, 30);
    assert.equal(sweep.succeeded, 270);
    assert.equal(sweep.failures.length, 20, 'lists the first 20');
    assert.match(sweep.failures[0]!.error, /item \d+ is broken/);
    assert.deepEqual({ lines: summary.lines, ok: summary.ok, failed: summary.failed }, { lines: 300, ok: 270, failed: 30 });
    const failedLines = (await lines(sweep.results)).filter((l) => !l.ok).map((l) => l.i);
    assert.deepEqual(failedLines, Array.from({ length: 30 }, (_, k) => 10 * k + 9));
  });

  test("'after-running' runs every item, then fails the run naming the failed items", async () => {
    const run = await env.kaon.start(manifestSweep, { n: 300, failEvery: 100, concurrency: 30, onFailure: 'after-running' });
    const err = await run.result().then(() => undefined, (e: unknown) => e as Error);
    assert.match(err?.message ?? '', /3 of 300 items of sweep "sweep" failed: \[99\] item 99 is broken; \[199\] item 199 is broken; \[299\] item 299 is broken/);
    const entry = (await run.progress()).steps.find((s) => s.key === 'sweep');
    assert.equal(entry?.status, 'failed');
    assert.equal(entry?.sweep?.succeeded, 297);
  });

  test("'fail-fast' stops at the first failure and cancels the rest", async () => {
    const run = await env.kaon.start(manifestSweep, { n: 3000, failEvery: 200, concurrency: 4, ms: 5, onFailure: 'fail-fast' });
    const err = await run.result().then(() => undefined, (e: unknown) => e as Error);
    // Two shards run at once (items 0… and 1000…): the first failure in time stops the sweep, whichever shard it is in.
    assert.match(err?.message ?? '', /items of sweep "sweep" failed \(fail-fast: \d+ not run\): \[(1?199)\] item \1 is broken/);
    const entry = (await run.progress()).steps.find((s) => s.key === 'sweep');
    assert.ok(entry?.sweep && entry.sweep.notRun > 2000, `most items never ran (${entry?.sweep?.notRun} not run)`);
  });
});

describe('k.map resume and cancel', () => {
  test('resuming a sweep with failed items re-runs exactly those items', async () => {
    activities.behaviour.fixed = false;
    const first = await env.kaon.start(manifestSweep, { n: 400, failEvery: 40, concurrency: 40, onFailure: 'after-running' });
    await assert.rejects(first.result(), /10 of 400 items/);
    activities.behaviour.fixed = true;
    activities.behaviour.ran.length = 0;
    try {
      const second = await first.resume();
      const { sweep } = (await second.result()) as Awaited<ReturnType<typeof manifestSweep>>;
      assert.equal(sweep.succeeded, 400);
      assert.equal(sweep.cached, 390, 'every item that succeeded before was reused');
      assert.deepEqual([...activities.behaviour.ran].sort((a, b) => a - b), Array.from({ length: 10 }, (_, k) => 40 * k + 39));
    } finally {
      activities.behaviour.fixed = false;
    }
  });

  test('cancelling mid-sweep leaves no running shard or step', async () => {
    const run = await env.kaon.start(manifestSweep, { n: 5000, concurrency: 40, ms: 40 });
    for (let i = 0; i < 100; i++) {
      const e = (await run.progress()).steps.find((s) => s.key === 'sweep');
      if ((e?.sweep?.total ?? 0) > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1500));
    const live = (await run.progress()).steps.find((s) => s.key === 'sweep')?.sweep;
    assert.ok(live && live.total === 5000 && live.running > 0 && live.running <= 40 && live.succeeded > 0, `live counts while running: ${JSON.stringify(live)}`);
    await run.cancel();
    await assert.rejects(run.result());
    assert.equal((await run.status()).temporal, 'CANCELLED');
    const open: string[] = [];
    for await (const w of env.temporal.workflow.list({ query: `WorkflowId STARTS_WITH '${run.id}' AND ExecutionStatus = 'Running'` })) open.push(w.workflowId);
    assert.deepEqual(open, [], 'no shard or coordinator still running');
    for await (const w of env.temporal.workflow.list({ query: `WorkflowId STARTS_WITH '${run.id}/sweep/shard-'` })) {
      const d = await env.temporal.workflow.getHandle(w.workflowId, w.runId).describe();
      assert.equal(d.raw.pendingActivities?.length ?? 0, 0, `${w.workflowId} has no pending step`);
    }
  });
});
