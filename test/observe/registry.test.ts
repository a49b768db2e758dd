// Kaon's metrics registry and listen addresses, without a server: the exact exposition text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createKaonMetrics, MetricsRegistry, parsePrometheusText } from '../../src/observe';
import { parseListenAddress } from '../../src/runtime/telemetry';

test('counters and histograms render in the Prometheus text format', () => {
  const r = new MetricsRegistry();
  const c = r.counter('kaon_test_total', 'A test counter.');
  const h = r.histogram('kaon_test_seconds', 'A test histogram.', [0.1, 1]);
  c.inc({ step: 'a"b\\c' });
  c.inc({ step: 'a"b\\c' }, 2);
  h.observe({ step: 'x' }, 0.05);
  h.observe({ step: 'x' }, 0.5);
  h.observe({ step: 'x' }, 7);
  assert.equal(
    r.render(),
    [
      '# HELP kaon_test_seconds A test histogram.',
      '# TYPE kaon_test_seconds histogram',
      'kaon_test_seconds_bucket{step="x",le="0.1"} 1',
      'kaon_test_seconds_bucket{step="x",le="1"} 2',
      'kaon_test_seconds_bucket{step="x",le="+Inf"} 3',
      'kaon_test_seconds_sum{step="x"} 7.55',
      'kaon_test_seconds_count{step="x"} 3',
      '# HELP kaon_test_total A test counter.',
      '# TYPE kaon_test_total counter',
      'kaon_test_total{step="a\\"b\\\\c"} 3',
      '',
    ].join('\n'),
  );
  assert.deepEqual(parsePrometheusText(r.render()).find((s) => s.name === 'kaon_test_total')?.labels, { step: 'a"b\\c' }, 'escaping round-trips');
  assert.throws(() => c.inc({}, -1), /can only go up/);
  assert.throws(() => r.histogram('kaon_test_total', 'x'), /already registered as a counter/);
  assert.throws(() => c.inc({ 'bad-label': 'x' }), /label name "bad-label" is not valid/);
});

test("Kaon's families are declared before the first step, so a scrape shows them at once", () => {
  const m = createKaonMetrics();
  const text = m.registry.render();
  for (const name of ['kaon_step_duration_seconds', 'kaon_step_attempts_total', 'kaon_step_retries_total', 'kaon_cache_hits_total', 'kaon_cache_misses_total', 'kaon_artifact_bytes_total', 'kaon_sweep_items_total']) {
    assert.match(text, new RegExp(`^# TYPE ${name} (counter|histogram)$`, 'm'));
  }
  m.stepFinished({ step: 'train', queue: 'python', status: 'failed', seconds: 2, attempt: 1 });
  m.stepFinished({ step: 'train', queue: 'python', status: 'succeeded', seconds: 3, attempt: 2 });
  const samples = parsePrometheusText(m.registry.render());
  const get = (name: string, labels: Record<string, string>) => samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  assert.equal(get('kaon_step_attempts_total', { step: 'train', queue: 'python' }), 2);
  assert.equal(get('kaon_step_retries_total', { step: 'train' }), 1);
  assert.equal(get('kaon_step_duration_seconds_sum', { step: 'train', status: 'succeeded' }), 3);
});

test('listen addresses: a bare :port is loopback; a host is taken as given', () => {
  assert.deepEqual(parseListenAddress(':9464'), { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(parseListenAddress('0.0.0.0:9464'), { host: '0.0.0.0', port: 9464 });
  assert.deepEqual(parseListenAddress('[::]:9464'), { host: '::', port: 9464 });
  assert.deepEqual(parseListenAddress('9464'), { host: '127.0.0.1', port: 9464 });
  assert.throws(() => parseListenAddress('localhost'), /--metrics "localhost" is not a listen address[\s\S]*To fix/);
  assert.throws(() => parseListenAddress(':99999'), /not a listen address/);
});
