// The R example on a real server: makeData (TS) writes a seeded CSV, fitGlm (Rscript + r/kaon_step.R) fits a
// gaussian glm. The coefficients are checked against ordinary least squares solved here, independently of R.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { RunFailedError } from '../../src/client';
import * as activities from '../../examples/r-glm';
import { rGlm } from '../../examples/r-glm/workflows';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
before(async () => {
  ({ env, stop } = await runningWorker('r-glm', { workflowsPath: path.join(ROOT, 'examples/r-glm/workflows.ts'), activities }));
});
after(() => stop());

/** OLS by the normal equations (XᵀX)β = Xᵀy, solved by Gaussian elimination with partial pivoting. */
function leastSquares(rows: number[][], y: number[]): number[] {
  const p = rows[0]!.length;
  const a = Array.from({ length: p }, (_, i) => [...Array.from({ length: p }, (_, j) => rows.reduce((s, r) => s + r[i]! * r[j]!, 0)), rows.reduce((s, r, n) => s + r[i]! * y[n]!, 0)]);
  for (let c = 0; c < p; c++) {
    const piv = a.reduce((best, r, i) => (i >= c && Math.abs(r[c]!) > Math.abs(a[best]![c]!) ? i : best), c);
    [a[c], a[piv]] = [a[piv]!, a[c]!];
    for (let r = 0; r < p; r++) {
      if (r === c) continue;
      const f = a[r]![c]! / a[c]![c]!;
      for (let k = c; k <= p; k++) a[r]![k]! -= f * a[c]![k]!;
    }
  }
  return a.map((r, i) => r[p]! / r[i]!);
}

test('the R step fits a glm on the CSV artifact: coefficients match least squares, the plot is a PNG, metrics land in the run state', { timeout: 180_000 }, async () => {
  const run = await env.kaon.start(rGlm, { rows: 400, seed: 7 });
  const fit = await run.result();
  const state = await run.progress();
  const data = state.steps.find((s) => s.key === 'makeData');
  assert.equal(data?.status, 'succeeded');

  // The CSV the R step read, from the artifact store.
  const refs = await env.artifacts.listByRun(run.id);
  const csvRef = refs.find((r) => r.name === 'data.csv');
  assert.ok(csvRef, refs.map((r) => r.name).join(', '));
  const lines = readFileSync(await env.artifacts.getPath(csvRef), 'utf8').trim().split('\n').slice(1);
  const xy = lines.map((l) => l.split(',').map(Number));
  const beta = leastSquares(xy.map(([x1, x2]) => [1, x1!, x2!]), xy.map((r) => r[2]!));
  assert.equal(fit.n, 400);
  assert.deepEqual(Object.keys(fit.coefficients), ['(Intercept)', 'x1', 'x2']);
  const got = [fit.coefficients['(Intercept)']!, fit.coefficients.x1!, fit.coefficients.x2!];
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(got[i]! - beta[i]!) < 1e-9, `coefficient ${i}: R ${got[i]} vs least squares ${beta[i]}`);
  // …and near the truth the data was made from (1.5, 2, -0.7).
  assert.ok(Math.abs(got[1]! - 2) < 0.05 && Math.abs(got[2]! + 0.7) < 0.05, JSON.stringify(fit.coefficients));

  assert.equal(fit.plot.mediaType, 'image/png');
  assert.equal(fit.plot.name, 'fit.png');
  const png = readFileSync(await env.artifacts.getPath(fit.plot));
  assert.equal(png.length, fit.plot.size);
  assert.ok(png.length > 1000);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a real PNG');

  const step = state.steps.find((s) => s.key === 'fitGlm');
  assert.equal(step?.status, 'succeeded');
  assert.deepEqual(step?.metrics?.map((m) => m.name), ['aic', 'deviance']);
  assert.equal(step?.metrics?.[0]?.value, fit.aic);
});

test('a formula naming a missing column fails the R step once (bad input), with its message', { timeout: 180_000 }, async () => {
  const run = await env.kaon.start(rGlm, { rows: 50, seed: 1, formula: 'y ~ x1 + x3' });
  await assert.rejects(run.result(), (err: unknown) => {
    assert.ok(err instanceof RunFailedError, String(err));
    assert.match(err.message, /field 'formula' uses x3, not a column of the CSV \(columns: x1, x2, y\)/);
    return true;
  });
  const step = (await run.progress()).steps.find((s) => s.key === 'fitGlm');
  assert.equal(step?.status, 'failed');
  assert.equal(step?.attempts, 1, 'exit 65 is not retried');
});
