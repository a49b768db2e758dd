// Misuse of kaon_step, or of the protocol fd by a program that writes it itself, is bad input: the step fails on
// its first attempt (its retry policy allows 3), the message names the call or line and the fix, and nothing the
// attempt saved is recorded as an output of the run. The table lives in test/fixtures/step-misuse/cases.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RunFailedError } from '../../src/client';
import { createRunnerExecutors } from '../../src/execution';
import { misuseAlsoExpect, misuseCases, stepNameOf } from '../fixtures/step-misuse/cases';
import { misuseSteps } from '../fixtures/step-misuse/steps';
import { misuse } from '../fixtures/step-misuse/workflows';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
let dir: string;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-misuse-'));
  for (const c of misuseCases) writeFileSync(path.join(dir, c.file), c.script);
  ({ env, stop } = await runningWorker('misuse', {
    workflowsPath: path.join(ROOT, 'test/fixtures/step-misuse/workflows.ts'),
    activities: misuseSteps,
    executors: createRunnerExecutors({ root: dir, killGraceMs: 500 }),
  }));
});

after(async () => {
  await stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('kaon_step misuse is bad input, not retried', () => {
  test(`${misuseCases.length} misuse kinds (Python helper, R helper, raw protocol fd) fail on attempt 1 with the subject and the fix`, { timeout: 240_000 }, async () => {
    const results = await Promise.all(
      misuseCases.map(async (c) => {
        const run = await env.kaon.start(misuse, { step: stepNameOf(c) });
        const err = await run.result().then(
          () => undefined,
          (e: unknown) => e,
        );
        const state = await run.progress();
        const listed = await env.artifacts.listByRun(run.id);
        return { c, err, state, listed };
      }),
    );
    const problems: string[] = [];
    for (const { c, err, state, listed } of results) {
      const where = `${c.runner}/${c.kind}`;
      if (!(err instanceof RunFailedError)) {
        problems.push(`${where}: the run did not fail (${String(err)})`);
        continue;
      }
      for (const re of [c.expect, ...misuseAlsoExpect(c)]) if (!re.test(err.message)) problems.push(`${where}: message does not match ${re}:\n${err.message.slice(0, 1500)}`);
      const step = state.steps[0];
      if (step?.status !== 'failed' || step.attempts !== 1) problems.push(`${where}: step ${step?.status} after ${step?.attempts} attempts, want failed after 1`);
      if (listed.length) problems.push(`${where}: the failed attempt left ${listed.map((r) => r.name).join(', ')} listed as outputs of the run`);
    }
    assert.deepEqual(problems, [], problems.join('\n\n'));
  });
});
