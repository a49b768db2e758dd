// Prometheus metrics on a real Temporal server: a worker with the metrics endpoint runs a pipeline (an artifact
// written and read, a retried step, a k.map sweep with a failed item, then a cached re-run); the test scrapes
// mid-run and after, parses the exposition text and checks the numbers against the runs' state.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DefaultLogger } from '@temporalio/worker';
import { parsePrometheusText, type ParsedSample, type RunState } from '../../src/observe';
import { startMetricsServer, type KaonMetricsServer } from '../../src/runtime/telemetry';
import type { KaonWorker } from '../../src/runtime/worker';
import * as activities from '../fixtures/telemetry';
import { holdSteps, releaseSteps } from '../fixtures/telemetry/steps.impl';
import { telemetryRun } from '../fixtures/telemetry/workflows';
import { testEnv, type TestEnv } from '../support/temporal';

const workflowsPath = path.join(__dirname, '../fixtures/telemetry/workflows.ts');

async function scrape(url: string): Promise<{ text: string; samples: ParsedSample[] }> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, samples: parsePrometheusText(text) };
}

/** The value of one series (0 when absent: a counter not yet incremented). */
function value(samples: ParsedSample[], name: string, labels: Record<string, string>): number {
  const hit = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hit.reduce((sum, s) => sum + s.value, 0);
}

/** Exposition checks: every sample belongs to a declared family; histograms are cumulative and end in +Inf = count. */
function checkExposition(text: string, samples: ParsedSample[]): void {
  const types = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
  for (const s of samples) {
    const family = types.has(s.name) ? s.name : s.name.replace(/_(bucket|sum|count|total)$/, '');
    assert.ok(types.has(family) || types.has(s.name.replace(/_(bucket|sum|count)$/, '')), `sample ${s.name} has a # TYPE line`);
  }
  const buckets = samples.filter((s) => s.name === 'kaon_step_duration_seconds_bucket');
  const bySeries = new Map<string, ParsedSample[]>();
  for (const b of buckets) {
    const { le: _le, ...rest } = b.labels;
    const k = JSON.stringify(rest);
    bySeries.set(k, [...(bySeries.get(k) ?? []), b]);
  }
  assert.ok(bySeries.size > 0, 'some step durations');
  for (const [k, series] of bySeries) {
    const values = series.map((b) => b.value);
    assert.deepEqual(values, [...values].sort((a, b) => a - b), `buckets of ${k} are cumulative`);
    assert.equal(series.at(-1)!.labels.le, '+Inf');
    assert.equal(series.at(-1)!.value, value(samples, 'kaon_step_duration_seconds_count', JSON.parse(k) as Record<string, string>), `+Inf bucket of ${k} = count`);
  }
}

async function waitUntil<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('kaon worker metrics (Prometheus)', () => {
  let server: KaonMetricsServer;
  let env: TestEnv;
  let worker: KaonWorker;
  let running: Promise<void>;

  before(async () => {
    // First: the SDK runtime must be installed with its exporter before this process's first connection.
    server = await startMetricsServer({ listen: '127.0.0.1:0', logger: new DefaultLogger('ERROR') });
    env = await testEnv('metrics');
    worker = await env.worker({ workflowsPath, activities, metrics: server.metrics });
    running = worker.run();
  });
  after(async () => {
    releaseSteps();
    worker?.shutdown();
    await running;
    await env?.close();
    await server?.close();
  });

  test('a second runtime install is refused with a clear error', async () => {
    await assert.rejects(startMetricsServer({ listen: '127.0.0.1:0' }), /installed once per process[\s\S]*To fix: start the metrics server/);
  });

  test('a scrape during and after runs matches the run state', async () => {
    const bytes = 4096;
    holdSteps();
    const first = await env.kaon.start(telemetryRun, { bytes, tag: 'a', items: 6 });
    // Mid-run: tmHeld is running, everything before it has finished.
    await waitUntil('tmHeld running', async () => ((await first.progress()).steps.find((s) => s.step === 'tmHeld')?.status === 'running' ? true : undefined));
    const mid = await scrape(server.url);
    const midState = await first.progress();
    for (const s of midState.steps.filter((x) => x.status === 'succeeded')) {
      assert.equal(value(mid.samples, 'kaon_step_attempts_total', { step: s.step }), s.attempts, `attempts of ${s.step} mid-run`);
      assert.equal(value(mid.samples, 'kaon_step_duration_seconds_count', { step: s.step, status: 'succeeded' }), 1, `${s.step} succeeded once`);
    }
    assert.equal(midState.steps.find((s) => s.step === 'tmFlaky')?.attempts, 2, 'sanity: the flaky step took two attempts');
    assert.equal(value(mid.samples, 'kaon_step_duration_seconds_count', { step: 'tmFlaky', status: 'failed' }), 1);
    assert.equal(value(mid.samples, 'kaon_step_retries_total', { step: 'tmFlaky' }), 1);
    assert.equal(value(mid.samples, 'kaon_step_duration_seconds_count', { step: 'tmHeld' }), 0, 'tmHeld has not finished');
    assert.equal(value(mid.samples, 'kaon_step_attempts_total', { step: 'tmHeld' }), 0, 'an attempt counts when it ends');
    assert.equal(value(mid.samples, 'kaon_cache_misses_total', { step: 'tmWriteBlob' }), 1);
    assert.equal(value(mid.samples, 'kaon_cache_hits_total', { step: 'tmWriteBlob' }), 0);
    assert.equal(value(mid.samples, 'kaon_artifact_bytes_total', { direction: 'in' }), bytes, 'the blob written');
    assert.equal(value(mid.samples, 'kaon_artifact_bytes_total', { direction: 'out' }), bytes, 'the blob read');
    // The SDK's own runtime metrics come through the same endpoint.
    assert.ok(mid.samples.some((s) => s.name.startsWith('temporal_')), `temporal_* metrics in the scrape:\n${mid.text.slice(0, 2000)}`);
    assert.ok(mid.samples.some((s) => s.name === 'temporal_activity_execution_latency_count' || s.name === 'temporal_activity_execution_latency_seconds_count'), 'SDK activity latency');
    releaseSteps();
    const r1 = await first.result();
    assert.equal(r1.length, bytes);

    // The re-run: tmWriteBlob is a cache hit (same input), the rest runs again.
    const second = await env.kaon.start(telemetryRun, { bytes, tag: 'a', items: 6 });
    await second.result();
    const end = await scrape(server.url);
    checkExposition(end.text, end.samples);
    const states: RunState[] = [await first.progress(), await second.progress()];
    const steps = states.flatMap((s) => s.steps).filter((s) => !s.sweep);
    const byStatus = new Map<string, number>();
    for (const s of steps) byStatus.set(`${s.step} ${s.status}`, (byStatus.get(`${s.step} ${s.status}`) ?? 0) + 1);
    assert.equal(byStatus.get('tmWriteBlob cached'), 1, 'sanity: the second run reused the blob');
    for (const [k, n] of byStatus) {
      const [step, status] = k.split(' ') as [string, string];
      assert.equal(value(end.samples, 'kaon_step_duration_seconds_count', { step, status }), n, `${k}: ${n} in the run state`);
    }
    const ran = steps.filter((s) => s.status === 'succeeded');
    for (const name of new Set(ran.map((s) => s.step))) {
      const attempts = ran.filter((s) => s.step === name).reduce((a, s) => a + s.attempts, 0);
      const cached = value(end.samples, 'kaon_step_duration_seconds_count', { step: name, status: 'cached' });
      assert.equal(value(end.samples, 'kaon_step_attempts_total', { step: name }), attempts + cached, `attempts of ${name}`);
    }
    assert.equal(value(end.samples, 'kaon_cache_hits_total', { step: 'tmWriteBlob' }), 1);
    assert.equal(value(end.samples, 'kaon_cache_misses_total', { step: 'tmWriteBlob' }), 1);
    assert.equal(value(end.samples, 'kaon_artifact_bytes_total', { direction: 'in' }), bytes, 'the cached run wrote nothing');
    assert.equal(value(end.samples, 'kaon_artifact_bytes_total', { direction: 'out' }), 2 * bytes, 'each run read the blob');
    // Sweep items: the counters add up to what the two runs' sweeps report.
    const sweeps = states.flatMap((s) => s.steps).filter((s) => s.sweep).map((s) => s.sweep!);
    assert.equal(sweeps.length, 2);
    const failed = sweeps.reduce((a, s) => a + s.failed, 0);
    const succeeded = sweeps.reduce((a, s) => a + s.succeeded, 0);
    assert.equal(failed, 2, 'sanity: item 3 failed in each run');
    assert.equal(value(end.samples, 'kaon_sweep_items_total', { pipeline: 'test-telemetry', step: 'tmItem', status: 'failed' }), failed);
    assert.equal(value(end.samples, 'kaon_sweep_items_total', { pipeline: 'test-telemetry', step: 'tmItem', status: 'succeeded' }), succeeded);
    // One item per activity (the default batch): each attempt's status is its item's.
    assert.equal(value(end.samples, 'kaon_step_duration_seconds_count', { step: 'tmItem', status: 'failed' }), failed);
    assert.equal(value(end.samples, 'kaon_step_duration_seconds_count', { step: 'tmItem', status: 'succeeded' }), succeeded);
    // Bounded labels: no run id and no item index in any kaon_ series.
    for (const s of end.samples.filter((x) => x.name.startsWith('kaon_'))) {
      for (const v of Object.values(s.labels)) {
        assert.ok(!v.includes(first.id) && !v.includes(second.id) && !/\[\d+\]/.test(v), `label value ${v} of ${s.name} is bounded`);
      }
    }
  });
});
