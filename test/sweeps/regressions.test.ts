// Regression tests for the sweep reports of issue 20, each named for what it proves, on a real server.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { temporal } from '@temporalio/proto';
import { readResults } from '../../src/data/manifest';
import type { Sweep, SweepLine } from '../../src/definition';
import * as activities from '../fixtures/sweep-props';
import { reference } from '../fixtures/sweep-props/reference';
import { successes } from '../fixtures/sweep-props/steps.impl';
import { propSweep } from '../fixtures/sweep-props/workflows';
import { runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
before(async () => {
  ({ env, stop } = await runningWorker('sweep-regress', { workflowsPath: path.join(__dirname, '../fixtures/sweep-props/workflows.ts'), activities, workerOptions: { maxConcurrentActivityTaskExecutions: 200 } }));
});
after(() => stop());

type Kind = 'none' | 'permanent' | 'transient' | 'always' | 'crash';
let n = 0;
async function sweepOf(count: number, bytes: number, o: { batch?: number; concurrency?: number; source?: 'inline' | 'manifest'; fail?: Record<number, Kind> } = {}) {
  const tag = `r${n++}`;
  const items = Array.from({ length: count }, (_, i) => ({ i, bytes, fail: o.fail?.[i] ?? ('none' as Kind) }));
  const run = await env.kaon.start(propSweep, { tag, items, batch: o.batch ?? 1, concurrency: o.concurrency ?? 100, source: o.source ?? 'manifest', target: 'ts' });
  const sweep = (await run.result()) as Sweep;
  const lines: SweepLine[] = [];
  for await (const l of readResults(env.artifacts, sweep.results)) lines.push(l);
  return { run, sweep, lines, ran: successes.get(tag) ?? new Map<number, number>() };
}

async function executions(runId: string) {
  const out: { id: string; events: temporal.api.history.v1.IHistoryEvent[]; bytes: number }[] = [];
  for await (const w of env.temporal.workflow.list({ query: `WorkflowId STARTS_WITH '${runId}'` })) {
    const h = await env.temporal.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
    out.push({ id: w.workflowId, events: h.events ?? [], bytes: temporal.api.history.v1.History.encode(h).finish().length });
  }
  return out;
}

function allOwn(lines: SweepLine[], count: number, bytes: number): void {
  assert.equal(lines.length, count);
  for (const [i, l] of lines.entries()) {
    assert.equal(l.i, i);
    assert.ok(l.ok, `item ${i}: ${l.ok ? '' : l.error}`);
    assert.deepEqual(l.output, reference(i, bytes));
  }
}

describe('sweep reports (issue 20)', () => {
  test('1. results past 2 MiB per shard are never replaced: 2,000 items × 2 KiB keep 2,000 own lines (batch 1 and 50)', async () => {
    for (const batch of [1, 50]) {
      const { sweep, lines } = await sweepOf(2000, 2048, { batch });
      assert.equal(sweep.succeeded, 2000);
      allOwn(lines, 2000, 2048);
    }
  });

  test('2. shard histories are bounded in bytes: 1,000 items × 60 KiB, every history under 10 MiB with no result in it', async () => {
    const { run, sweep, lines } = await sweepOf(1000, 60 * 1024, { batch: 1, concurrency: 50 });
    assert.equal(sweep.succeeded, 1000);
    allOwn(lines, 1000, 60 * 1024);
    for (const e of await executions(run.id)) {
      // 1,000 results of 60 KiB would be 60 MB: a history this small holds none of them.
      assert.ok(e.bytes < 2 << 20, `${e.id}: ${e.bytes} bytes`);
    }
  });

  test('2. a batch whose outputs pass 2 MiB together succeeds: 1,000 items × 2.2 KB at batch 1,000', async () => {
    const { sweep, lines } = await sweepOf(1000, 2200, { batch: 1000 });
    assert.equal(sweep.succeeded, 1000);
    allOwn(lines, 1000, 2200);
  });

  test('3. one failing item stays one failure: its batch-mates keep their outputs and run once; its error is its own', async () => {
    const { sweep, lines, ran } = await sweepOf(40, 100, { batch: 20, concurrency: 40, fail: { 19: 'always', 25: 'permanent', 30: 'transient' } });
    assert.deepEqual({ succeeded: sweep.succeeded, failed: sweep.failed, notRun: sweep.notRun }, { succeeded: 38, failed: 2, notRun: 0 });
    for (const [i, l] of lines.entries()) {
      if (i === 19 || i === 25) {
        assert.ok(!l.ok && l.status === 'failed' && l.error.includes(`item ${i}:`), `item ${i} failed with its own error`);
        continue;
      }
      assert.ok(l.ok, `item ${i} succeeded`);
      assert.deepEqual(l.output, reference(i, 100));
      assert.equal(ran.get(i), 1, `item ${i} ran to success once, though its batch was retried for item ${i < 20 ? 19 : 30}`);
    }
  });

  test('6. every internal activity of a sweep heartbeats or has a short timeout (a lost worker costs seconds, not 5 minutes)', async () => {
    const { run } = await sweepOf(3000, 10, { batch: 1, source: 'inline' }); // staged, planned, pooled, assembled
    const seen = new Set<string>();
    for (const e of await executions(run.id)) {
      for (const ev of e.events) {
        const a = ev.activityTaskScheduledEventAttributes;
        const type = a?.activityType?.name ?? '';
        if (!type.startsWith('kaon.map')) continue;
        seen.add(type);
        const secs = (d: { seconds?: unknown } | null | undefined) => Number(d?.seconds ?? 0);
        const heartbeat = secs(a!.heartbeatTimeout);
        const startToClose = secs(a!.startToCloseTimeout);
        assert.ok((heartbeat > 0 && heartbeat <= 20) || startToClose <= 60, `${type} in ${e.id}: heartbeat ${heartbeat} s, start-to-close ${startToClose} s`);
      }
    }
    for (const type of ['kaon.map.assemble', 'kaon.map.plan', 'kaon.map.stage', 'kaon.map.write']) assert.ok(seen.has(type), `${type} was checked (seen: ${[...seen].join(', ')})`);
  });
});
