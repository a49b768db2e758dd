// OpenTelemetry traces on a real Temporal server: with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a loopback OTLP/HTTP
// receiver (the collector is outside Kaon, so the test plays it), a run is one trace: the client's start, the
// workflow, and one span per step.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@temporalio/client';
import type { KaonWorker } from '../../src/runtime/worker';
import * as activities from '../fixtures/telemetry';
import { tracedChain } from '../fixtures/telemetry/workflows';
import { otlpReceiver, traceOf, type Span } from '../support/otlp-receiver';
import { testEnv, type TestEnv } from '../support/temporal';

const workflowsPath = path.join(__dirname, '../fixtures/telemetry/workflows.ts');

describe('OpenTelemetry traces', () => {
  let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
  let env: TestEnv;
  let worker: KaonWorker;
  let running: Promise<void>;

  before(async () => {
    receiver = await otlpReceiver();
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
    process.env.OTEL_SERVICE_NAME = 'kaon-traces-test';
    process.env.KAON_TEST_LOG_LEVEL ??= 'ERROR'; // tmFlaky's first attempts fail on purpose
    env = await testEnv('traces');
    // No workflowBundle: the worker bundles the pipelines with the OTel workflow interceptors itself.
    worker = await env.worker({ workflowsPath, activities });
    running = worker.run();
  });
  after(async () => {
    worker?.shutdown();
    await running;
    await env?.close();
    await receiver?.close();
    delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  });

  test('a run started by the Kaon client is one trace: client start, workflow, one span per step', async () => {
    const run = await env.kaon.start(tracedChain, { n: 1 });
    assert.equal(await run.result(), 3);
    const state = await run.progress();
    const attempts = state.steps.reduce((a, s) => a + s.attempts, 0);
    assert.equal(attempts, 5, 'sanity: each tmFlaky call took two attempts');
    const trace = await traceOf(receiver.spans, (s) => s.name === 'StartWorkflow:test-traced', state.steps.length, attempts);
    const names = trace.map((s) => s.name);
    assert.equal(names.filter((n) => n === 'StartWorkflow:test-traced').length, 1, 'the client start is the root');
    const root = trace.find((s) => s.name === 'StartWorkflow:test-traced')!;
    assert.equal(root.parentSpanId, undefined, 'nothing above the client start');
    assert.equal(names.filter((n) => n === 'RunWorkflow:test-traced').length, 1, `one workflow span in ${names.join(', ')}`);
    const workflow = trace.find((s) => s.name === 'RunWorkflow:test-traced')!;
    assert.equal(workflow.parentSpanId, root.spanId, 'the workflow runs under the client start');
    // A span per step (the workflow schedules it), and under it a span per attempt (the worker runs it).
    const stepSpans = trace.filter((s) => s.name.startsWith('StartActivity:'));
    assert.deepEqual(stepSpans.map((s) => s.name.slice('StartActivity:'.length)).sort(), state.steps.map((s) => s.step).sort(), 'one span per step, named by the step');
    for (const s of stepSpans) assert.equal(s.parentSpanId, workflow.spanId);
    for (const step of state.steps) {
      const mine = stepSpans.filter((s) => s.name === `StartActivity:${step.step}`).map((s) => s.spanId);
      const runs = trace.filter((s) => s.name === `RunActivity:${step.step}` && mine.includes(s.parentSpanId ?? ''));
      assert.equal(runs.length, state.steps.filter((x) => x.step === step.step).reduce((a, x) => a + x.attempts, 0), `attempt spans of ${step.step} = its attempts`);
    }
    // Every span of the run hangs under the root: one trace id, parents inside the trace.
    const ids = new Set(trace.map((s) => s.spanId));
    for (const s of trace) if (s !== root) assert.ok(s.parentSpanId && ids.has(s.parentSpanId), `${s.name} has its parent in the trace`);
    assert.ok(trace.every((s) => s.service === 'kaon-traces-test'));
  });

  test('a run started elsewhere (a plain Temporal client) is still one trace, rooted at the workflow', async () => {
    const plain = new Client({ connection: env.temporal.connection });
    const id = `traced-plain-${Date.now()}`;
    const handle = await plain.workflow.start('test-traced', { taskQueue: env.taskQueue, workflowId: id, args: [{ n: 10 }] });
    assert.equal(await handle.result(), 12);
    const isRoot = (s: Span) => s.name === 'RunWorkflow:test-traced' && s.parentSpanId === undefined;
    const trace = await traceOf(receiver.spans, isRoot, 3, 5);
    assert.equal(trace.filter((s) => s.name.startsWith('StartWorkflow')).length, 0);
    assert.deepEqual(trace.filter((s) => s.name.startsWith('StartActivity:')).map((s) => s.name).sort(), ['StartActivity:tmFlaky', 'StartActivity:tmFlaky', 'StartActivity:tmHeld']);
    assert.equal(trace.filter((s) => s.name.startsWith('RunActivity:')).length, 5, 'two attempts of each tmFlaky call, one of tmHeld');
  });
});
