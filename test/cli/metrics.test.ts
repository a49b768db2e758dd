// `kaon worker --metrics` from the real CLI: the endpoint it prints serves Kaon's and the SDK's metrics, and the
// counts follow a run; a bad address is a clear error. And traces across processes: `kaon run` in one, the worker
// in another, one trace.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Connection } from '@temporalio/client';
import { connect, type KaonClient } from '../../src/client';
import { parsePrometheusText } from '../../src/observe';
import { tracedChain } from '../fixtures/telemetry/workflows';
import { otlpReceiver, traceOf } from '../support/otlp-receiver';
import { testServer } from '../support/temporal';
import { CliProcess, cliEnv, kaon } from './cli-process';

const FLAGS = ['--workflows', 'test/fixtures/telemetry/workflows.ts', '--activities', 'test/fixtures/telemetry/index.ts'];

describe('kaon worker --metrics', { timeout: 300_000 }, () => {
  const queue = `cli-metrics-${randomUUID().slice(0, 8)}`;
  let address: string;
  let connection: Connection;
  let client: KaonClient;
  let tmp: string;
  let worker: CliProcess | undefined;

  before(async () => {
    address = (await testServer()).address;
    connection = await Connection.connect({ address });
    client = await connect({ connection, taskQueue: queue });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-cli-metrics-'));
  });
  after(async () => {
    worker?.kill();
    await connection?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('serves Prometheus text with kaon_* and temporal_* metrics that follow a run', async () => {
    const env = cliEnv({ TEMPORAL_ADDRESS: address, KAON_TASK_QUEUE: queue, KAON_ARTIFACTS: tmp, KAON_LOG_LEVEL: 'ERROR', OTEL_EXPORTER_OTLP_ENDPOINT: undefined });
    worker = new CliProcess(['worker', ...FLAGS, '--metrics', '127.0.0.1:0', '--grace', '5s'], { env });
    const [, url] = await worker.waitFor(/^ {2}metrics: (http:\/\/127\.0\.0\.1:\d+\/metrics) /m);
    await worker.waitFor(/^kaon worker: ready/m);
    const run = await client.start(tracedChain, { n: 1 });
    assert.equal(await run.result(), 3);
    const state = await run.progress();
    const res = await fetch(url!);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /^# HELP kaon_step_duration_seconds /m);
    assert.match(text, /^# TYPE kaon_step_duration_seconds histogram$/m);
    const samples = parsePrometheusText(text);
    const sum = (name: string, labels: Record<string, string>) =>
      samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
    for (const step of new Set(state.steps.map((s) => s.step))) {
      const mine = state.steps.filter((s) => s.step === step);
      assert.equal(sum('kaon_step_attempts_total', { step }), mine.reduce((a, s) => a + s.attempts, 0), `attempts of ${step}`);
      assert.equal(sum('kaon_step_duration_seconds_count', { step, status: 'succeeded', queue: 'default' }), mine.length, `${step} succeeded`);
    }
    assert.ok(samples.some((s) => s.name.startsWith('temporal_')), 'the SDK runtime metrics are in the same scrape');
    assert.equal((await fetch(url!.replace('/metrics', '/nope'))).status, 404);
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stdout, /kaon worker: stopped/);
    await assert.rejects(fetch(url!), 'the endpoint closes with the worker');
  });

  test('a bad --metrics address fails at once, saying how to fix it', async () => {
    const r = await kaon(['worker', ...FLAGS, '--metrics', 'localhost'], { env: cliEnv({ TEMPORAL_ADDRESS: address, KAON_TASK_QUEUE: queue }) });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--metrics "localhost" is not a listen address: expected \[host:\]port[\s\S]*To fix: pass e\.g\. --metrics 9464/);
  });

  test('with OTEL_EXPORTER_OTLP_ENDPOINT, `kaon run` and `kaon worker` (two processes) make one trace per run', async () => {
    const receiver = await otlpReceiver();
    const q = `${queue}-traced`;
    const env = cliEnv({ TEMPORAL_ADDRESS: address, KAON_TASK_QUEUE: q, KAON_ARTIFACTS: tmp, KAON_LOG_LEVEL: 'ERROR', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: undefined });
    const traced = new CliProcess(['worker', ...FLAGS, '--grace', '5s'], { env });
    try {
      await traced.waitFor(/^kaon worker: ready/m);
      assert.match(traced.stdout, new RegExp(`^  traces: OTLP to ${receiver.url.replace(/[.]/g, '\\.')}$`, 'm'));
      const r = await kaon(['run', 'test-traced', ...FLAGS, '--params', '{"n": 1}', '--wait'], { env });
      assert.equal(r.code, 0, r.stderr);
      const trace = await traceOf(receiver.spans, (s) => s.name === 'StartWorkflow:test-traced', 3, 5);
      const services = (prefix: string) => [...new Set(trace.filter((s) => s.name.startsWith(prefix)).map((s) => s.service))];
      assert.deepEqual(services('StartWorkflow:'), ['kaon-client'], 'the root comes from the kaon run process');
      assert.deepEqual(services('RunWorkflow:'), ['kaon-worker']);
      assert.deepEqual(services('RunActivity:'), ['kaon-worker']);
      assert.deepEqual(trace.filter((s) => s.name.startsWith('StartActivity:')).map((s) => s.name).sort(), ['StartActivity:tmFlaky', 'StartActivity:tmFlaky', 'StartActivity:tmHeld']);
    } finally {
      traced.child.kill('SIGTERM');
      await traced.exited;
      await receiver.close();
    }
  });
});
