// A bug in pipeline code fails the run at once, with the error and where it happened; Temporal would otherwise
// fail only the workflow task and retry it for ever. A genuine non-determinism error (a deploy that changed a
// running pipeline) still blocks the task and retries, as Temporal intends. Bad step options fail where written.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { defineStep, KaonError } from '../../src/definition';
import { RunFailedError } from '../../src/client';
import * as activities from '../fixtures/failures';
import { badRetry, callsForgotten, callsUndefined, lenientParams, reordered, throwsPlain, withParams } from '../fixtures/failures/workflows';
import { implementStep } from '../../src/execution';
import { createStepActivities } from '../../src/execution/activities';
import { definePipeline } from '../../src/workflow';
import { loadPipelines } from '../../src/cli/project';
import { CliProcess, cliEnv } from '../cli/cli-process';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
const workflowsPath = path.join(ROOT, 'test/fixtures/failures/workflows.ts');
before(async () => {
  ({ env, stop } = await runningWorker('failures', { workflowsPath, activities }));
});
after(() => stop());

async function failureOf(run: { result(): Promise<unknown> }): Promise<string> {
  const began = Date.now();
  const err = await run.result().then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof RunFailedError, `the run failed (got ${String(err)})`);
  assert.ok(Date.now() - began < 15_000, 'at once, not after retries');
  return err.message;
}

test('a plain Error thrown in pipeline code fails the run, naming the pipeline, the last step and the line', async () => {
  const run = await env.kaon.start(throwsPlain, {});
  const msg = await failureOf(run);
  assert.match(msg, /pipeline "test-throws" threw Error: boom in my pipeline \(after step first\) at .*workflows\.ts:\d+/);
  assert.match(msg, /To fix: correct the pipeline code/);
  const h = await env.temporal.workflow.getHandle(run.id).fetchHistory();
  assert.equal((h.events ?? []).filter((e) => e.workflowTaskFailedEventAttributes).length, 0, 'no workflow task failed or retried');
  assert.equal((await run.progress()).status, 'failed');
});

test('a TypeError from calling an undefined step (an import typo) fails the run', async () => {
  const msg = await failureOf(await env.kaon.start(callsUndefined, {}));
  assert.match(msg, /pipeline "test-typo" threw TypeError: .* \(before its first step\)/);
});

test('an invalid retry policy on a call fails the run with the fix, not as a command Temporal refuses', async () => {
  const msg = await failureOf(await env.kaon.start(badRetry, {}));
  assert.match(msg, /retry\.backoffCoefficient 0\.5 is below 1 \(step "note", call note\)\. To fix: use 1/);
});

test('bad step options are refused where the step is defined', () => {
  const base = { name: 'x', version: 1, input: z.object({}), output: z.object({}) };
  const refused = (extra: Record<string, unknown>, what: RegExp) => assert.throws(() => defineStep({ ...base, ...extra } as never), (e: unknown) => e instanceof KaonError && what.test(e.message));
  refused({ retry: { backoffCoefficient: 0.9 } }, /backoffCoefficient 0\.9 is below 1 \(step "x"\)/);
  refused({ retry: { maximumAttempts: 1.5 } }, /maximumAttempts 1\.5 is not a whole number/);
  refused({ retry: { initialInterval: '10s', maximumInterval: '1s' } }, /maximumInterval \(1s\) is below retry\.initialInterval \(10s\)/);
  refused({ timeout: 0 }, /option timeout is 0/);
  refused({ queue: 'has space' }, /queue "has space" is not a valid queue name/);
  refused({ version: 0 }, /version 0 is not a positive whole number/);
  refused({ version: '1' }, /version "1" is not a positive whole number/);
});

test('a genuine non-determinism error still blocks the workflow task (and retries), for a deploy to fix', async () => {
  const taskQueue = `nondet-${randomUUID().slice(0, 6)}`;
  const v1 = await env.worker({ taskQueue, workflowsPath, activities });
  const run = await v1.runUntil(async () => {
    const r = await env.kaon.start(reordered, {}, { taskQueue });
    for (let i = 0; i < 100 && !(await r.progress()).steps.some((s) => s.step === 'sleep'); i++) await new Promise((res) => setTimeout(res, 100));
    return r;
  });
  // The deploy: the same pipeline with its steps reordered, on a fresh worker (no cached state: it must replay).
  const v2 = await env.worker({ taskQueue, workflowsPath: path.join(ROOT, 'test/fixtures/failures/nondet-v2.ts'), activities });
  await v2.runUntil(async () => {
    let failures: string[] = [];
    for (let i = 0; i < 100 && failures.length === 0; i++) {
      await new Promise((res) => setTimeout(res, 200));
      const h = await env.temporal.workflow.getHandle(run.id).fetchHistory();
      failures = (h.events ?? []).flatMap((e) => (e.workflowTaskFailedEventAttributes ? [String(e.workflowTaskFailedEventAttributes.failure?.message ?? '')] : []));
    }
    assert.ok(failures.some((m) => /nondeterminism/i.test(m)), `a non-determinism workflow task failure (got ${failures.join(' | ') || 'none'})`);
    assert.equal((await run.handle.describe()).status.name, 'RUNNING', 'the run is not failed: it waits for a fix');
  });
  await run.handle.terminate('test over');
});

test('a step no worker implements fails at once, naming it; kaon worker warns about it at start-up', async () => {
  const taskQueue = `unimpl-${randomUUID().slice(0, 6)}`;
  const worker = new CliProcess(['worker', '--workflows', 'test/fixtures/failures/workflows.ts', '--activities', 'test/fixtures/failures/index.ts'], {
    env: cliEnv({ TEMPORAL_ADDRESS: env.address, KAON_TASK_QUEUE: taskQueue }),
  });
  try {
    await worker.waitFor(/ready/);
    assert.match(worker.stderr, /warning: step contracts with no implementation in .*index\.ts: forgotten\. A run that calls one fails at once/);
    const msg = await failureOf(await env.kaon.start(callsForgotten, {}, { taskQueue }));
    assert.match(msg, /step "forgotten" is not implemented on the worker that took it \(task queue unimpl-\w+; it implements emitsBad, note\)\. To fix: implement it with implementStep/);
  } finally {
    worker.kill();
  }
});

test('definitions that are accepted but wrong refuse the worker: a step implemented twice, two steps or pipelines with one name, params not zod', () => {
  const a = defineStep({ name: 'twice', version: 1, input: z.object({}), output: z.object({}) });
  const b = defineStep({ name: 'twice', version: 1, input: z.object({}), output: z.object({}) });
  const refused = (fn: () => unknown, what: RegExp) => assert.throws(fn, (e: unknown) => e instanceof KaonError && what.test(e.message));
  refused(() => createStepActivities({ impls: [implementStep(a, () => ({})), implementStep(a, () => ({}))] }), /step "twice" is implemented twice/);
  refused(() => createStepActivities({ impls: [], steps: [a, b] }), /two different steps are named "twice"/);
  refused(() => createStepActivities({ impls: [implementStep(a, () => ({}))], steps: [b] }), /two different steps are named "twice"/);
  refused(() => definePipeline({ name: 'test-not-zod', params: { type: 'object' } as never, run: async () => 1 }), /params must be a zod schema \(pipeline "test-not-zod"\)/);
  refused(() => loadPipelines(path.join(ROOT, 'test/fixtures/failures/duplicates.ts')), /two pipelines in .*duplicates\.ts are named "test-dup" \(one exported as second\)/);
});

test('unknown params fields are refused at the client and in the workflow (with a suggestion), unless the pipeline opts out', async () => {
  await assert.rejects(env.kaon.start(withParams, { lerning_rate: 0.5 } as never), (e: unknown) => e instanceof KaonError && /unknown field "lerning_rate" \(did you mean "learning_rate"\?\); the schema declares learning_rate, epochs/.test(e.message));
  // Started past the client (a raw Temporal start): the workflow refuses it too, and the run fails at once.
  const raw = await env.temporal.workflow.start('test-params', { taskQueue: env.taskQueue, workflowId: `raw-${randomUUID().slice(0, 8)}`, args: [{ lerning_rate: 0.5 }] });
  await assert.rejects(raw.result(), (e: unknown) => /unknown field "lerning_rate"/.test(String((e as Error).cause ?? e)));
  const lenient = await env.kaon.start(lenientParams, { learning_rate: 0.2, extra: true } as never);
  assert.deepEqual(await lenient.result(), { learning_rate: 0.2 });
});

test('the same run key with other params is an error that shows both; with the same params it is the same run', async () => {
  const key = `k-${randomUUID().slice(0, 6)}`;
  const run = await env.kaon.start(withParams, { learning_rate: 0.2 }, { runKey: key });
  await run.result();
  const again = await env.kaon.start(withParams, { learning_rate: 0.2, epochs: 3 }, { runKey: key });
  assert.equal(again.existing, true, 'same params (after defaults): the same run');
  await assert.rejects(env.kaon.start(withParams, { learning_rate: 0.3 }, { runKey: key }), (e: unknown) =>
    e instanceof KaonError && new RegExp(`run key "${key}" already names run test-params--${key}, started with other params: \\{"learning_rate":0\\.2\\}; this start passed \\{"learning_rate":0\\.3\\}`).test(e.message));
});
