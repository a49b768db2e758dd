// k.map on a real Temporal server: sweeps sharded over child workflows, results manifests, concurrency bounds,
// failure policies, bounded histories.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readResults } from '../../src/data/manifest';
import type { SweepLine } from '../../src/definition';
import * as activities from '../fixtures/scale';
import { arraySweep, manifestSweep } from '../fixtures/scale/workflows';
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
