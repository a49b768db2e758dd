// Triggers on a real Temporal server: concurrent emits of one event id start one run; onSuccess chains A → B with
// A's result; a join fires once, when its second event arrives; an emit with no worker is delivered when one
// starts; a bad payload is refused at emit.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as activities from '../fixtures/control';
import { dataArrived, labelsArrived } from '../fixtures/triggers/events';
import { inboxLoop, waiter } from '../fixtures/triggers/workflows';
import { cliEnv, kaon } from '../cli/cli-process';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
const workflowsPath = path.join(ROOT, 'test/fixtures/triggers/workflows.ts');
before(async () => {
  ({ env, stop } = await runningWorker('triggers', { workflowsPath, activities }));
});
after(() => stop());

async function runsOf(prefix: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const w of env.temporal.workflow.list({ query: `WorkflowId STARTS_WITH '${prefix}'` })) ids.push(w.workflowId);
  return ids;
}

async function resultOf(id: string, ms = 20_000): Promise<unknown> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await env.temporal.workflow.getHandle(id).result();
    } catch (err) {
      if (Date.now() > end || !/not found/i.test(String(err))) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

test('20 concurrent emits of one event id start one run; onSuccess chains the next pipeline with its result', async () => {
  const id = `p1-${randomUUID().slice(0, 6)}`;
  await Promise.all(Array.from({ length: 20 }, () => env.kaon.emit(dataArrived, { partition: 'p1', rows: 42 }, { id })));
  assert.deepEqual(await resultOf(`test-ingest--data-arrived-${id}`), { partition: 'p1', rows: 42 });
  assert.deepEqual(await resultOf(`test-report--after-test-ingest--data-arrived-${id}`), { reported: 'p1: 42 rows' });
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(await runsOf(`test-ingest--data-arrived-${id}`), [`test-ingest--data-arrived-${id}`], 'exactly one run for the event id');
  assert.equal((await runsOf(`test-report--after-test-ingest--data-arrived-${id}`)).length, 1);
});

test('a join fires once, when its second event arrives for the key, and not before; kaon.triggers shows it waiting', async () => {
  const partition = `p2-${randomUUID().slice(0, 6)}`;
  await env.kaon.emit(labelsArrived, { partition }, { id: `labels-${partition}` });
  let pending: Awaited<ReturnType<typeof env.kaon.triggers>>['joins'] = [];
  for (let i = 0; i < 50 && !pending.some((j) => j.key === partition); i++) {
    await new Promise((r) => setTimeout(r, 200));
    pending = (await env.kaon.triggers()).joins;
  }
  const join = pending.find((j) => j.key === partition);
  assert.deepEqual({ trigger: join?.trigger, waitingFor: join?.waitingFor, arrived: join?.arrived.map((a) => a.event) }, { trigger: 'test-train when data-arrived+labels-arrived', waitingFor: ['data-arrived'], arrived: ['labels-arrived'] });
  assert.deepEqual(await runsOf(`test-train--join-${partition}`), [], 'not before the second event');
  await env.kaon.emit(dataArrived, { partition, rows: 7 }, { id: `data-${partition}` });
  assert.deepEqual(await resultOf(`test-train--join-${partition}`), { partition, rows: 7 });
  assert.ok(!(await env.kaon.triggers()).joins.some((j) => j.key === partition), 'the join is done');
  // The data event also started its own onEvent trigger (and that, its onSuccess): triggers are independent.
  assert.deepEqual(await resultOf(`test-ingest--data-arrived-data-${partition}`), { partition, rows: 7 });
});

test('an emit with no worker running is delivered when a worker starts', async () => {
  const queue = `triggers-later-${randomUUID().slice(0, 6)}`;
  const id = `p3-${randomUUID().slice(0, 6)}`;
  await env.kaon.emit(dataArrived, { partition: 'p3', rows: 3 }, { id, taskQueue: queue });
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(await runsOf(`test-ingest--data-arrived-${id}`), [], 'nothing ran without a worker');
  const worker = await env.worker({ workflowsPath, activities, taskQueue: queue });
  await worker.runUntil(async () => assert.deepEqual(await resultOf(`test-ingest--data-arrived-${id}`), { partition: 'p3', rows: 3 }));
});

test('a bad payload is refused at emit, naming the field', async () => {
  await assert.rejects(env.kaon.emit(dataArrived, { partition: 'p4', rows: 'many' } as never), /payload of event "data-arrived" is invalid: field "rows"/);
});

test('kaon emit and kaon triggers', async () => {
  const childEnv = cliEnv({ TEMPORAL_ADDRESS: env.address, KAON_TASK_QUEUE: env.taskQueue });
  const project = ['--workflows', 'test/fixtures/triggers/workflows.ts', '--activities', 'test/fixtures/control/index.ts'];
  const id = `cli-${randomUUID().slice(0, 6)}`;
  const emitted = await kaon(['emit', 'data-arrived', '--payload', '{"partition":"p5","rows":5}', '--id', id, ...project], { env: childEnv });
  assert.equal(emitted.code, 0, emitted.stderr);
  assert.match(emitted.stdout, new RegExp(`emitted data-arrived ${id}`));
  assert.deepEqual(await resultOf(`test-ingest--data-arrived-${id}`), { partition: 'p5', rows: 5 });
  const bad = await kaon(['emit', 'data-arived', '--payload', '{}', ...project], { env: childEnv });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /neither exports an event "data-arived" nor has a trigger on it \(events: data-arrived, labels-arrived\)/);
  const listed = await kaon(['triggers', ...project], { env: childEnv });
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /test-ingest {2}on event data-arrived/);
  assert.match(listed.stdout, /test-report {2}after test-ingest succeeds/);
  assert.match(listed.stdout, /test-train {2}when data-arrived \+ labels-arrived arrive for one key/);
  assert.match(listed.stdout, /\d+ events handled/);
});

test('k.waitFor gets the next emitted event, also when it started the events workflow itself; a timeout gives undefined', async () => {
  const queue = `wait-${randomUUID().slice(0, 6)}`;
  const worker = await env.worker({ workflowsPath, activities, taskQueue: queue });
  await worker.runUntil(async () => {
    // A fresh task queue: no event was emitted on it yet, so the waiting run starts the events workflow.
    const run = await env.kaon.start(waiter, {}, { taskQueue: queue });
    for (let i = 0; i < 100; i++) {
      const s = await run.progress();
      if (s.steps.some((x) => x.step === 'waitFor') && (await env.kaon.triggers({ taskQueue: queue }).catch(() => undefined))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await run.progress()).status, 'running');
    await env.kaon.emit(dataArrived, { partition: 'w1', rows: 9 }, { id: `w1-${queue}`, taskQueue: queue });
    assert.deepEqual(await run.result(), { got: 'w1', rows: 9 });
    const late = await env.kaon.start(waiter, { timeout: '1s' }, { taskQueue: queue });
    assert.equal(await late.result(), null);
    assert.equal((await late.progress()).steps.find((x) => x.step === 'waitFor')?.note, 'no event data-arrived within the timeout');
  });
});

test('k.waitFor with a filter misses no event while the run is busy or continuing as new, and takes each event id once', async () => {
  const queue = `inbox-${randomUUID().slice(0, 6)}`;
  const worker = await env.worker({ workflowsPath, activities, taskQueue: queue });
  await worker.runUntil(async () => {
    const run = await env.kaon.start(inboxLoop, { partition: 'p1', want: 4 }, { taskQueue: queue });
    // The first wait subscribes the run; the events workflow lists it once the subscription arrived.
    for (let i = 0; i < 100; i++) {
      const view = await env.kaon.triggers({ taskQueue: queue });
      if (view.waiting.some((w) => w.run === run.id)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual((await env.kaon.triggers({ taskQueue: queue })).waiting, [{ run: run.id, event: 'data-arrived', where: { partition: 'p1' } }]);
    // Emitted back to back: three arrive while the run is busy with the first (sleeping) or continuing as new.
    const emit = (rows: number, partition = 'p1', id = `${partition}-${rows}`) => env.kaon.emit(dataArrived, { partition, rows }, { id: `${id}-${queue}`, taskQueue: queue });
    await emit(1);
    await emit(2);
    await emit(99, 'p2');
    await emit(2); // the same event id again: delivered once
    await emit(3);
    await emit(4);
    assert.deepEqual(await run.result(), { got: [1, 2, 3, 4], timedOut: false });
    assert.equal((await run.progress()).loop?.execution, 4);
  });
});
