// A failed attempt leaves nothing that looks like a result: artifacts a step saved before a bad output or a refused
// artifact name keep their (content-addressed) blobs, but lineage never lists them as outputs of the run, nor as
// produced by it. The attempt that succeeds, a retry included, is listed.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RunFailedError } from '../../src/client';
import { defaultExecutors } from '../../src/runtime/worker';
import * as steps from '../fixtures/step-lineage/steps';
import { lineageOne } from '../fixtures/step-lineage/workflows';
import { ROOT, testEnv, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
let dir: string;

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-lineage-'));
  for (const [f, text] of Object.entries(steps.scripts)) writeFileSync(path.join(dir, f), text);
  const { scripts: _scripts, ...activities } = steps;
  env = await testEnv('lineage');
  const worker = await env.worker({
    workflowsPath: path.join(ROOT, 'test/fixtures/step-lineage/workflows.ts'),
    activities,
    executors: defaultExecutors(env.artifacts, { root: dir }),
  });
  const running = worker.run();
  stop = async () => {
    worker.shutdown();
    await running;
    await env.close();
  };
});

after(async () => {
  await stop();
  rmSync(dir, { recursive: true, force: true });
});

async function failed(step: 'pyBadName' | 'pyBadOutput' | 'tsBadOutput', message: RegExp): Promise<string> {
  const run = await env.kaon.start(lineageOne, { step });
  await assert.rejects(run.result(), (err: unknown) => {
    assert.ok(err instanceof RunFailedError, String(err));
    assert.match(err.message, message);
    return true;
  });
  const state = await run.progress();
  assert.equal(state.steps[0]?.attempts, 1, 'bad output and refused names are not retried');
  return run.id;
}

describe('a failed attempt is not recorded as a result in lineage', () => {
  test('Python: an artifact saved before a bad output is not an output of the run', { timeout: 60_000 }, async () => {
    const runId = await failed('pyBadOutput', /output of step "lnPyBadOutput".*score/s);
    assert.deepEqual(await env.artifacts.listByRun(runId), []);
    const bytes = sha('py bad output');
    assert.equal(await env.artifacts.exists(bytes), true, 'the blob itself may stay (content-addressed)');
    assert.deepEqual(await env.artifacts.producedBy(bytes), [], 'but no lineage record says the run produced it');
  });

  test('Python: an artifact saved before a refused artifact name is not an output of the run', { timeout: 60_000 }, async () => {
    const runId = await failed('pyBadName', /artifact name "\.\.\/outside\.txt" is not allowed/);
    assert.deepEqual(await env.artifacts.listByRun(runId), []);
    assert.deepEqual(await env.artifacts.producedBy(sha('py first, fine')), []);
  });

  test('TypeScript: ctx.artifacts.put before a bad output is not an output of the run', { timeout: 60_000 }, async () => {
    const runId = await failed('tsBadOutput', /output of step "lnTsBadOutput".*score/s);
    assert.deepEqual(await env.artifacts.listByRun(runId), []);
    assert.deepEqual(await env.artifacts.producedBy(sha('ts bad output, attempt 1')), []);
  });

  test('a successful Python step\'s artifacts are listed', { timeout: 60_000 }, async () => {
    const run = await env.kaon.start(lineageOne, { step: 'pyGood' });
    const out = (await run.result()) as { model: { sha256: string } };
    const listed = await env.artifacts.listByRun(run.id);
    assert.deepEqual(listed.map((r) => r.name), ['model.txt']);
    assert.equal(listed[0]!.sha256, out.model.sha256);
    assert.equal((await env.artifacts.producedBy(out.model.sha256)).filter((r) => r.producer.runId === run.id).length, 1);
  });

  test('TypeScript: a retried step lists only the successful attempt\'s artifacts (card included)', { timeout: 60_000 }, async () => {
    const run = await env.kaon.start(lineageOne, { step: 'tsRetry' });
    const out = (await run.result()) as { model: { sha256: string; producer: { attempt: number } } };
    assert.equal(out.model.producer.attempt, 2);
    const state = await run.progress();
    assert.equal(state.steps[0]?.attempts, 2);
    const listed = await env.artifacts.listByRun(run.id);
    assert.deepEqual(listed.map((r) => r.producer.attempt), listed.map(() => 2), `only attempt 2: ${JSON.stringify(listed.map((r) => [r.name, r.producer.attempt]))}`);
    assert.ok(listed.some((r) => r.sha256 === out.model.sha256), 'the returned model is listed');
    assert.ok(listed.length >= 2, 'the model and the card of attempt 2');
    assert.deepEqual(await env.artifacts.producedBy(sha('ts retry, attempt 1')), [], 'attempt 1\'s model has no lineage');
  });
});
