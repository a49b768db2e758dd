// Step metrics, logs, progress and errors from R (r/kaon_step.R) through the real runner executor and a real Rscript
// (no Temporal). The R tier (`npm run test:r`); the TS and Python cases are in test/execution/step-metrics.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { ErrorCode, KaonError } from '../../src/definition/errors';
import { command, defineStep } from '../../src/definition/step';
import { createRunnerExecutors } from '../../src/execution';
import { fakeContext } from '../execution/fake-context';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-metrics-r-test-'));
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

describe('r/kaon_step.R (Rscript)', () => {
  test('inputs, progress, log, metrics and the output round-trip', async () => {
    const r = script('step.R', [
      'source(Sys.getenv("KAON_R_HELPER"))',
      'p <- kaon_inputs()',
      'kaon_progress(0.5, "half way")',
      'kaon_log("hello from R", "warn")',
      'for (i in 1:3) kaon_log_metric("rmse", sum(p$xs) / i, step = i)',
      'print("plain stdout")',
      'kaon_output(list(total = sum(p$xs), n = length(p$xs), name = p$name, nested = list(a = 1L, b = c(1.5, 2.5))))',
    ].join('\n'));
    const ctx = fakeContext();
    const out = await exec.process(step(['Rscript', r]), { xs: [1, 2, 3.5], name: 'zürich' }, ctx);
    assert.deepEqual(out, { total: 6.5, n: 3, name: 'zürich', nested: { a: 1, b: [1.5, 2.5] } });
    assert.deepEqual(ctx.record.all(), [{ name: 'rmse', value: 6.5, step: 1 }, { name: 'rmse', value: 3.25, step: 2 }, { name: 'rmse', value: 6.5 / 3, step: 3 }]);
    assert.ok(ctx.heartbeats.some((h) => (h as { message?: string }).message === 'half way'), JSON.stringify(ctx.heartbeats));
    assert.ok(ctx.logs.some((l) => l.level === 'warn' && l.message === 'hello from R'));
    assert.ok(ctx.logs.some((l) => l.message.includes('plain stdout')));
  });

  test("an error in the R script fails the step with R's error message", async () => {
    const r = script('boom.R', ['source(Sys.getenv("KAON_R_HELPER"))', 'f <- function(x) stop("the model matrix is singular: ", x)', 'f("x2 is constant")'].join('\n'));
    const err = await rejection(exec.process(step(['Rscript', r]), {}, fakeContext()));
    assert.equal(err.code, ErrorCode.processFailed);
    assert.match(err.message, /exited with code 1/);
    assert.match(err.message, /Error in f\("x2 is constant"\) :\s*\n\s*the model matrix is singular: x2 is constant/);
  });

  test('kaon_bad_input and a non-finite metric exit 65: not retried, with the message', async () => {
    const r = script('inf.R', ['source(Sys.getenv("KAON_R_HELPER"))', 'kaon_log_metric("aic", Inf)', 'kaon_output(list())'].join('\n'));
    const err = await rejection(exec.process(step(['Rscript', r]), {}, fakeContext()));
    assert.equal(err.code, ErrorCode.badInput);
    assert.equal(err.retryable, false);
    assert.match(err.message, /metric 'aic' has the value Inf, not a finite number/);
  });
});
