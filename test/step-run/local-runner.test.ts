// The local step runner in-process, no server: the activity's contract checks, hooks for progress and logs,
// cancellation through ctx.signal, and a store view whose artifacts carry local lineage.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, test } from 'node:test';
import { z } from 'zod';
import { ArtifactRef, defineStep, KaonError } from '../../src/definition';
import { createArtifactStore } from '../../src/data/store';
import { implementStep, type LocalStepEvent } from '../../src/execution';
import { localRunId, localSteps } from '../../src/runtime';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-local-runner-'));
const store = createArtifactStore(dir, { localDir: dir });
after(() => rmSync(dir, { recursive: true, force: true }));

const count = defineStep({
  name: 'localCount',
  version: 1,
  input: z.object({ text: z.string().min(1), upto: z.number().int().default(3) }),
  output: z.object({ words: z.number().int(), file: ArtifactRef }),
});
const countImpl = implementStep(count, async ({ text, upto }, ctx) => {
  for (let i = 1; i <= upto; i++) ctx.progress(i / upto, `pass ${i}`);
  ctx.log.info(`counting for ${ctx.key} attempt ${ctx.attempt}`);
  const file = await ctx.artifacts.put({ bytes: text }, { name: 'text.txt' });
  // A bad return is the step's fault: the output schema says an int.
  return { words: text === 'bad output' ? 1.5 : text.split(/\s+/).length, file };
});
const wait = defineStep({ name: 'localWait', version: 1, input: z.object({}), output: z.object({}) });
const waitImpl = implementStep(wait, async (_i, ctx) => {
  await sleep(30_000, undefined, { signal: ctx.signal });
  return {};
});

const steps = localSteps({ activities: [countImpl, waitImpl], artifacts: store });
const call = (input: unknown, step = 'localCount') => ({ step, key: `${step}[x]`, input, pipeline: 'p', runId: localRunId(new Date('2026-11-21T02:22:51.123Z')), attempt: 2 });

test('a TS step runs with the input parsed, progress and logs as events, artifacts marked local', async () => {
  assert.equal(call({}).runId, 'local-2026-11-21T02-22-51-123Z');
  const events: LocalStepEvent[] = [];
  const r = await steps.run(call({ text: 'a b c d' }), { onEvent: (e) => events.push(e) });
  assert.equal((r.output as { words: number }).words, 4);
  assert.deepEqual(events, [
    { type: 'progress', fraction: 1 / 3, message: 'pass 1' },
    { type: 'progress', fraction: 2 / 3, message: 'pass 2' },
    { type: 'progress', fraction: 1, message: 'pass 3' },
    { type: 'log', level: 'info', message: 'counting for localCount[x] attempt 2' },
  ]);
  assert.equal(r.artifacts.length, 1);
  assert.deepEqual(r.artifacts[0]!.producer, { pipeline: 'p', runId: 'local-2026-11-21T02-22-51-123Z', step: 'localCount[x]', attempt: 2, local: true });
  assert.equal((await store.getBytes(r.artifacts[0]!)).toString(), 'a b c d');
  assert.deepEqual((await store.listByRun('local-2026-11-21T02-22-51-123Z')).map((a) => a.sha256), [r.artifacts[0]!.sha256]);
});

test('bad input and bad output fail as on a worker: non-retryable, field by field', async () => {
  await assert.rejects(steps.run(call({ text: '', upto: 'x' })), (err: unknown) => {
    assert.ok(err instanceof KaonError);
    assert.equal(err.code, 'KAON_INVALID_INPUT');
    assert.equal(err.retryable, false);
    assert.deepEqual((err.details as { issues: string[] }).issues.map((i) => /^field "(\w+)"/.exec(i)?.[1]), ['text', 'upto']);
    return true;
  });
  await assert.rejects(steps.run(call({ text: 'bad output' })), /output of step "localCount" \(key localCount\[x\]\) is invalid: field "words": Invalid input: expected int, received number/);
  await assert.rejects(steps.run(call({}, 'nope')), /no step named "nope" here \(known: localCount, localWait\)/);
});

test('aborting the signal stops the step', async () => {
  const ac = new AbortController();
  const started = Date.now();
  setTimeout(() => ac.abort(new Error('interrupted by the test')), 100);
  await assert.rejects(steps.run(call({}, 'localWait'), { signal: ac.signal }), /abort|interrupted/i);
  assert.ok(Date.now() - started < 5000, 'stopped long before its 30 s sleep');
});
