// Schedules on a real Temporal server: runs on time with their nominal date, overlap policies, a 30-day
// backfill with 30 distinct dates, pause. Kaon's schedules are Temporal Schedules.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as activities from '../fixtures/control';
import { daily } from '../fixtures/control/workflows';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
const created: string[] = [];
before(async () => {
  ({ env, stop } = await runningWorker('schedules', { workflowsPath: path.join(ROOT, 'test/fixtures/control/workflows.ts'), activities }));
});
after(async () => {
  for (const id of created) await env.kaon.schedules.delete(id).catch(() => undefined);
  await stop();
});

const newId = (what: string) => {
  const id = `${what}-${randomUUID().slice(0, 6)}`;
  created.push(id);
  return id;
};

/** Results of the runs a schedule started, oldest first. */
async function results(scheduleId: string): Promise<{ id: string; date: string; start: number; end: number }[]> {
  const out: { id: string; date: string; start: number; end: number }[] = [];
  for await (const w of env.temporal.workflow.list({ query: `WorkflowId STARTS_WITH 'test-daily--${scheduleId}' AND ExecutionStatus = 'Completed'` })) {
    out.push({ id: w.workflowId, ...((await env.temporal.workflow.getHandle(w.workflowId, w.runId).result()) as { date: string; start: number; end: number }) });
  }
  return out.sort((a, b) => a.start - b.start);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('schedules', () => {
  test('a schedule starts runs on time, each with its nominal date; describe shows next and recent runs', async () => {
    const id = newId('every');
    const info = await env.kaon.schedules.create({ id, pipeline: daily, every: '2s' });
    assert.equal(info.pipeline, 'test-daily');
    assert.match(info.summary ?? '', /test-daily every 2s — processes one day/);
    assert.ok(info.next.length > 0 && info.next[0]!.getTime() > Date.now() - 2000);
    for (let i = 0; i < 100 && (await results(id)).length < 2; i++) await sleep(200);
    await env.kaon.schedules.pause(id);
    const d = await env.kaon.schedules.describe(id);
    assert.ok(d.recent.length >= 2, 'recent runs');
    for (const r of await results(id)) {
      const nominal = d.recent.find((a) => a.runId === r.id)?.scheduledAt;
      assert.ok(nominal, `run ${r.id} is one of the schedule's`);
      assert.equal(r.date, nominal.toISOString().slice(0, 10), 'the run got its nominal date');
    }
    assert.ok((await env.kaon.schedules.list()).some((s) => s.id === id), 'listed');
  });

  test("overlap 'skip' skips runs while one is running; 'buffer-one' starts the next as soon as it ends", async () => {
    const skip = newId('skip');
    await env.kaon.schedules.create({ id: skip, pipeline: daily, params: { ms: 2500 }, every: '1s', overlap: 'skip' });
    const buffered = newId('buffer');
    await env.kaon.schedules.create({ id: buffered, pipeline: daily, params: { ms: 2500 }, every: '1s', overlap: 'buffer-one' });
    let maxRunning = 0;
    for (let i = 0; i < 30; i++) {
      const [a, b] = await Promise.all([env.kaon.schedules.describe(skip), env.kaon.schedules.describe(buffered)]);
      maxRunning = Math.max(maxRunning, a.running.length, b.running.length);
      await sleep(250);
    }
    await Promise.all([env.kaon.schedules.pause(skip), env.kaon.schedules.pause(buffered)]);
    assert.equal(maxRunning, 1, 'never two runs of one schedule at once');
    assert.ok((await env.kaon.schedules.describe(skip)).skipped > 0, 'skip dropped the runs that were due while one ran');
    const done = await results(buffered);
    assert.ok(done.length >= 2);
    for (let i = 1; i < done.length; i++) assert.ok(done[i]!.start - done[i - 1]!.end < 1500, 'the buffered run started right after the previous one ended');
  });

  test('a 30-day backfill gives 30 runs with 30 distinct dates, one at a time with buffer-all', async () => {
    const id = newId('backfill');
    await env.kaon.schedules.create({ id, pipeline: daily, params: { ms: 50 }, cron: '0 3 * * *', overlap: 'buffer-all' });
    await env.kaon.schedules.backfill(id, { from: '2026-11-01T00:00:00Z', to: '2026-12-01T00:00:00Z' });
    let done: Awaited<ReturnType<typeof results>> = [];
    for (let i = 0; i < 300 && done.length < 30; i++) {
      await sleep(300);
      done = await results(id);
    }
    assert.deepEqual(done.map((r) => r.date).sort(), Array.from({ length: 30 }, (_, d) => `2026-11-${String(d + 1).padStart(2, '0')}`));
    for (let i = 1; i < done.length; i++) assert.ok(done[i]!.start >= done[i - 1]!.end, 'never two running at once');
  });

  test('pause stops new runs; unpause resumes them', async () => {
    const id = newId('pause');
    await env.kaon.schedules.create({ id, pipeline: daily, every: '1s' });
    for (let i = 0; i < 50 && (await results(id)).length < 1; i++) await sleep(200);
    await env.kaon.schedules.pause(id, 'maintenance');
    assert.equal((await env.kaon.schedules.describe(id)).paused, true);
    await sleep(1500);
    const before = (await env.kaon.schedules.describe(id)).actions;
    await sleep(2500);
    assert.equal((await env.kaon.schedules.describe(id)).actions, before, 'no run while paused');
    await env.kaon.schedules.unpause(id);
    for (let i = 0; i < 50 && (await env.kaon.schedules.describe(id)).actions <= before; i++) await sleep(200);
    assert.ok((await env.kaon.schedules.describe(id)).actions > before, 'runs again');
  });

  test('bad schedules are refused before they exist', async () => {
    await assert.rejects(env.kaon.schedules.create({ id: newId('bad'), pipeline: daily, params: { ms: -1.5 } as never, every: '1 day' }), /field "ms"/);
    await assert.rejects(env.kaon.schedules.create({ id: newId('bad'), pipeline: daily }), /needs exactly one of cron and every/);
    await assert.rejects(env.kaon.schedules.describe('no-such-schedule'), /no schedule "no-such-schedule"/);
  });
});
