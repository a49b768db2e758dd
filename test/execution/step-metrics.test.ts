// Step metrics and model registrations from TS (ctx.metrics / ctx.registerModel) and Python (kaon_step.log_metric,
// register_model), through the real runner executors and real interpreters (no Temporal). R: test/r/step-metrics-r.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import type { ArtifactRef } from '../../src/definition/artifact-ref';
import { ErrorCode, KaonError } from '../../src/definition/errors';
import { command, defineStep } from '../../src/definition/step';
import { createRunnerExecutors } from '../../src/execution';
import { createStepRecord, MAX_RUN_STATE_METRICS } from '../../src/execution/step-record';
import { renderTable } from '../../src/observe';
import { fakeContext } from './fake-context';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-metrics-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const ROOT = path.resolve(__dirname, '..', '..');
const exec = createRunnerExecutors({ root: ROOT, workDir: dir });

function script(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

function step(argv: string[]) {
  return defineStep({ name: 'metricStep', version: 1, input: z.any(), output: z.any(), run: command(argv), retry: { maximumAttempts: 1 } });
}

async function rejection(p: Promise<unknown>): Promise<KaonError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof KaonError, `expected a KaonError, got ${String(err)}`);
    return err;
  }
  return assert.fail('expected a failure');
}

describe('ctx.metrics (TS)', () => {
  test('finite numbers are kept in order with their steps; the run state keeps the latest 1,000', () => {
    const r = createStepRecord('step "t" (key t)');
    for (let i = 0; i < 1200; i++) r.metrics.log('loss', 1 / (i + 1), i);
    r.metrics.log('acc', 0.9);
    assert.equal(r.all().length, 1201);
    const latest = r.latest();
    assert.equal(latest.length, MAX_RUN_STATE_METRICS);
    assert.deepEqual(latest.at(-1), { name: 'acc', value: 0.9 });
    assert.deepEqual(latest[0], { name: 'loss', value: 1 / 202, step: 201 });
  });

  test('NaN, Infinity, a bad name or a fractional step is a non-retryable bad-input error naming the metric', () => {
    const r = createStepRecord('step "t" (key t)');
    for (const [name, value, stepNo, pattern] of [
      ['loss', Number.NaN, undefined, /metric "loss" has the value NaN, not a finite number/],
      ['gain', Number.POSITIVE_INFINITY, undefined, /metric "gain" has the value Infinity/],
      ['bad"name', 1, undefined, /metric name "bad\\"name" is not valid/],
      ['loss', 1, 1.5, /metric "loss" has step 1.5, not an integer/],
    ] as const) {
      assert.throws(() => r.metrics.log(name, value, stepNo), (err: unknown) => {
        assert.ok(err instanceof KaonError);
        assert.equal(err.code, ErrorCode.badInput);
        assert.equal(err.retryable, false);
        assert.match(err.message, pattern);
        assert.match(err.message, /To fix:/);
        return true;
      });
    }
    assert.equal(r.all().length, 0, 'nothing partial kept');
  });

  test('kaon status shows the last value of each metric', () => {
    const text = renderTable({
      pipeline: 'p', status: 'succeeded', startedAt: 0, endedAt: 1000, failedItems: [],
      steps: [{ key: 'train[US]', step: 'train', status: 'succeeded', attempts: 1, startedAt: 0, endedAt: 900, metrics: [{ name: 'loss', value: 0.5, step: 1 }, { name: 'loss', value: 0.123456, step: 2 }, { name: 'auc', value: 0.91 }] }],
    }, 1000);
    assert.match(text, /train\[US\].*loss=0\.1235 auc=0\.91/);
  });
});

describe('kaon_step.log_metric / register_model (Python)', () => {
  test('metrics and model registrations (an input ref, a saved artifact) reach the step context', async () => {
    const py = script('metrics.py', [
      'import kaon_step as k',
      'for e in range(3):',
      '    k.log_metric("loss", 1.0 / (e + 1), step=e)',
      'k.log_metric("accuracy", 0.75)',
      'p = k.inputs()',
      'k.register_model("m-US", p["model"], description="d", tags={"stage": "test"})',
      'open("new.bin", "w").write("new")',
      'k.register_model("m-new", k.save_artifact("new.bin"))',
      'k.output({"ok": True})',
    ].join('\n'));
    const ctx = fakeContext();
    const model: ArtifactRef = { kind: 'kaon.artifact', uri: 's3://b/sha256/ab/cd', sha256: 'ab'.repeat(32), size: 3, mediaType: 'application/octet-stream', producer: { pipeline: 'p', runId: 'r', step: 's', attempt: 1 } };
    const saved = { ...model, uri: 's3://b/new', name: 'new.bin' };
    const withStore = createRunnerExecutors({
      root: dir,
      workDir: dir,
      artifacts: { materialise: async (_ref, into) => (writeFileSync(path.join(into, 'm'), 'm'), path.join(into, 'm')), save: async () => saved },
    });
    const out = await withStore.process(step(['python3', py]), { model }, ctx);
    assert.deepEqual(out, { ok: true });
    assert.deepEqual(ctx.record.all(), [{ name: 'loss', value: 1, step: 0 }, { name: 'loss', value: 0.5, step: 1 }, { name: 'loss', value: 1 / 3, step: 2 }, { name: 'accuracy', value: 0.75 }]);
    assert.deepEqual(ctx.record.models(), [{ name: 'm-US', model, description: 'd', tags: { stage: 'test' } }, { name: 'm-new', model: saved }]);
  });

  test('a NaN metric stops the step as bad input (exit 65), naming the metric', async () => {
    const py = script('nan.py', ['import kaon_step as k', 'k.log_metric("val_loss", float("nan"), step=3)', 'k.output({})'].join('\n'));
    const err = await rejection(exec.process(step(['python3', py]), {}, fakeContext()));
    assert.equal(err.code, ErrorCode.badInput);
    assert.equal(err.retryable, false);
    assert.match(err.message, /metric 'val_loss' has the value nan, not a finite number/);
  });

  test('a protocol metric line with a bad name (written by hand) fails the step, not retried', async () => {
    const py = script('rawbad.py', ['import os', 'f = os.fdopen(int(os.environ["KAON_PROTOCOL_FD"]), "w")', 'f.write(\'{"type":"metric","name":"no\\\\"quotes","value":1}\\n\')', 'f.write(\'{"type":"output","value":1}\\n\')', 'f.flush()'].join('\n'));
    const err = await rejection(exec.process(step(['python3', py]), {}, fakeContext()));
    assert.equal(err.code, ErrorCode.badInput);
    assert.match(err.message, /metric name "no\\"quotes" is not valid/);
  });
});
