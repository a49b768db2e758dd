// Steering runs on a real Temporal server: approval gates (approve, reject, timeout, unknown gate, a second
// decision, a closed run, a gate after continue-as-new), pause mid-foreach, and typed messages refused at the
// client and in the workflow.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RunHandle } from '../../src/client';
import { KaonError } from '../../src/definition';
import * as activities from '../fixtures/control';
import { fragilePipeline, gated, gatedLoop, pausable, tunable } from '../fixtures/control/workflows';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
before(async () => {
  ({ env, stop } = await runningWorker('control', { workflowsPath: path.join(ROOT, 'test/fixtures/control/workflows.ts'), activities }));
});
after(() => stop());

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const waitingGate = (run: RunHandle<unknown, never>) =>
  until('the gate to wait', async () => {
    const s = await run.progress();
    return s.gates?.some((g) => g.status === 'waiting') && s.status === 'waiting' ? s : undefined;
  });

describe('approval gates', () => {
  test('approve: the run shows waiting (run state and KaonStatus), then records who, when and why', async () => {
    const run = await env.kaon.start(gated, {});
    const waiting = await waitingGate(run as never);
    assert.deepEqual(waiting.gates?.[0]?.details, { lift: 0.04 });
    assert.equal((await until('KaonStatus=waiting', async () => ((await run.status()).kaon === 'waiting' ? true : undefined))), true);
    const g = await run.approve('publish', { by: 'alice', comment: 'lift is fine' });
    assert.deepEqual({ status: g.status, by: g.by, comment: g.comment }, { status: 'approved', by: 'alice', comment: 'lift is fine' });
    const d = await run.result();
    assert.deepEqual({ approved: d.approved, by: d.by, comment: d.comment, timedOut: d.timedOut }, { approved: true, by: 'alice', comment: 'lift is fine', timedOut: false });
    const state = await run.progress();
    assert.ok(state.steps.some((s) => s.key === 'publish' && s.status === 'succeeded'), JSON.stringify(state.steps));
    assert.ok(typeof state.gates?.[0]?.decidedAt === 'number', JSON.stringify(state.gates));
    const events = (await env.temporal.workflow.getHandle(run.id).fetchHistory()).events ?? [];
    const accepted = events.map((e) => e.workflowExecutionUpdateAcceptedEventAttributes).filter(Boolean);
    assert.ok(accepted.some((a) => a?.acceptedRequest?.input?.name === 'kaon.decide'), `the decision is in the history (${JSON.stringify(accepted.map((a) => a?.acceptedRequest?.input?.name))})`);
  });

  test('reject: the run goes on without publishing; a second decision is refused with the first', async () => {
    const run = await env.kaon.start(gated, { holdMs: 3000 });
    await waitingGate(run as never);
    await run.reject('publish', { by: 'bob', comment: 'offline metrics regressed' });
    await assert.rejects(run.approve('publish', { by: 'carol' }), (err: unknown) => err instanceof KaonError && /gate "publish" was already rejected by bob; a decision is final/.test(err.message));
    const d = await run.result();
    assert.equal(d.approved, false);
    assert.ok(!(await run.progress()).steps.some((s) => s.key === 'publish'));
  });

  test('an unknown gate is refused at once, naming the waiting ones; a closed run is refused too', async () => {
    const run = await env.kaon.start(gated, {});
    await waitingGate(run as never);
    await assert.rejects(run.approve('deploy'), /no gate "deploy" is waiting in this run \(waiting: publish\)/);
    await run.approve('publish');
    await run.result();
    await assert.rejects(run.approve('publish'), /is not running|already approved/);
  });

  test('a timeout decides what onTimeout says', async () => {
    const run = await env.kaon.start(gated, { timeout: '1s', onTimeout: 'approve' });
    const d = await run.result();
    assert.deepEqual({ approved: d.approved, timedOut: d.timedOut }, { approved: true, timedOut: true });
    const rejected = await (await env.kaon.start(gated, { timeout: '500ms' })).result();
    assert.deepEqual({ approved: rejected.approved, timedOut: rejected.timedOut }, { approved: false, timedOut: true });
  });

  test('a gate after continue-as-new is decided on the same run id', async () => {
    const run = await env.kaon.start(gatedLoop, {});
    await waitingGate(run as never);
    await run.approve('publish', { by: 'alice' });
    await until('the second execution', async () => ((await run.progress()).loop?.execution === 2 ? true : undefined));
    await waitingGate(run as never);
    await run.reject('publish', { by: 'bob' });
    assert.deepEqual(await run.result(), { iteration: 2, approvals: ['true:alice', 'false:bob'] });
  });
});

describe('pause', () => {
  test('pause mid-foreach: no new step starts, status keeps working; unpause finishes the run', async () => {
    const run = await env.kaon.start(pausable, { n: 8, ms: 300 });
    await until('two steps done', async () => ((await run.progress()).steps.filter((s) => s.status === 'succeeded').length >= 2 ? true : undefined));
    await run.pause({ by: 'alice', note: 'checking the data' });
    await assert.rejects(run.pause(), /already paused by alice/);
    await new Promise((r) => setTimeout(r, 800)); // running steps finish
    const paused = await run.progress();
    assert.equal(paused.status, 'paused');
    assert.equal(paused.paused?.note, 'checking the data');
    const started = paused.steps.length;
    await new Promise((r) => setTimeout(r, 1200));
    const still = await run.progress();
    assert.equal(still.steps.length, started, 'no step started while paused');
    assert.ok(still.steps.every((s) => s.status === 'succeeded'), 'running steps finished');
    assert.equal((await run.status()).kaon, 'paused');
    await run.unpause();
    const out = await run.result();
    assert.equal(out.length, 8);
  });
});

describe('step pause (Temporal activity pause)', () => {
  test("a failing step's retries stop while paused, and go on after unpause", async () => {
    activities.data.broken = true;
    const run = await env.kaon.start(fragilePipeline, {});
    await until('two failed attempts', async () => (activities.data.attempts >= 2 ? true : undefined));
    await run.pauseStep('fragile', 'fixing the partition');
    await until('the step to be paused', async () => ((await env.temporal.workflow.getHandle(run.id).describe()).raw.pendingActivities?.[0]?.paused ? true : undefined));
    const during = activities.data.attempts;
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(activities.data.attempts <= during + 1, `no retries while paused (${during} → ${activities.data.attempts})`);
    activities.data.broken = false;
    await run.unpauseStep('fragile');
    const out = await run.result();
    assert.ok(out.attempt > 2);
  });
});

describe('typed messages', () => {
  test('validated at the client and in the workflow; handlers answer; the latest value is readable', async () => {
    const run = await env.kaon.start(tunable, {});
    // Refused by the client before anything reaches the server.
    await assert.rejects(run.send('setThreshold', { value: 2 }), /message "setThreshold" is invalid: field "value"/);
    // An untyped handle skips the client check: the workflow's validator refuses it, and nothing enters history.
    await assert.rejects(env.kaon.run(run.id).send('setThreshold' as never, { value: -1 } as never), /refused by run .*message "setThreshold" is invalid: field "value"/);
    await assert.rejects(env.kaon.run(run.id).send('reboot' as never, {} as never), /has no message "reboot" \(it declares setThreshold, stop\)/);
    assert.deepEqual(await run.send('setThreshold', { value: 0.3 }), { accepted: 0.3, count: 1 });
    assert.deepEqual(await run.send('setThreshold', { value: 0.5 }), { accepted: 0.5, count: 2 });
    assert.deepEqual((await run.progress()).messages?.setThreshold, { value: 0.5 });
    await run.send('stop', {});
    assert.deepEqual(await run.result(), { seen: [0.3, 0.5], last: 0.5 });
  });
});
