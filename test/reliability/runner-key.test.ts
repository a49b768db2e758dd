// The cache key of a runner step covers its script's content (and argv, requirements): an edited script never
// serves the old result. The per-call timeout override reaches process steps (the process is killed at it).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RunFailedError } from '../../src/client';
import { createRunnerExecutors } from '../../src/execution';
import type { KaonWorker } from '../../src/runtime/worker';
import * as steps from '../fixtures/runner-key/steps';
import { cutShort, pidSweep, scoreSweep, versions } from '../fixtures/runner-key/workflows';
import { readResults } from '../../src/data/manifest';
import type { Sweep } from '../../src/definition';
import { ROOT, testEnv, type TestEnv } from '../support/temporal';

let env: TestEnv;
let worker: KaonWorker;
let running: Promise<void>;
let dir: string;

const py = (v: number) => `import kaon_step\nVERSION = ${v}\nkaon_step.output({"version": VERSION})\n`;
const sh = (v: number) => `echo '{"type":"output","value":{"version":${v}}}' >&"$KAON_PROTOCOL_FD"\n`;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-runner-key-'));
  writeFileSync(path.join(dir, 'version.py'), py(1));
  writeFileSync(path.join(dir, 'version.sh'), sh(1));
  writeFileSync(path.join(dir, 'sleep.py'), 'import time, kaon_step\nn = kaon_step.inputs()["seconds"]\ntime.sleep(n)\nkaon_step.output({"slept": n})\n');
  env = await testEnv('runner-key');
  worker = await env.worker({
    workflowsPath: path.join(ROOT, 'test/fixtures/runner-key/workflows.ts'),
    activities: steps,
    executors: createRunnerExecutors({ root: dir }),
  });
  running = worker.run();
});

after(async () => {
  worker.shutdown();
  await running;
  await env.close();
  rmSync(dir, { recursive: true, force: true });
});

const statuses = async (run: { progress(): Promise<{ steps: { step: string; status: string }[] }> }) =>
  Object.fromEntries((await run.progress()).steps.map((s) => [s.step, s.status]));

describe('runner steps: cache key and timeout', () => {
  // Issue 20, report 5: a Python sweep started one process per item, even with batch (17–23 items/s).
  test('5. a Python sweep at batch 10 runs each call\'s items in one process (run_items), each output its own', { timeout: 120_000 }, async () => {
    writeFileSync(path.join(dir, 'pid.py'), 'import os\nimport kaon_step as k\n\ndef item(p):\n    return {"i": p["i"], "pid": os.getpid()}\n\nk.run_items(item)\n');
    const sweep = (await (await env.kaon.start(pidSweep, { n: 40, batch: 10 })).result()) as Sweep;
    assert.equal(sweep.succeeded, 40);
    const byCall = new Map<number, Set<number>>();
    for await (const l of readResults(env.artifacts, sweep.results)) {
      assert.ok(l.ok && (l.output as { i: number }).i === l.i, `item ${l.i}'s own output`);
      const pid = (l.output as { pid: number }).pid;
      byCall.set(Math.floor(l.i / 10), (byCall.get(Math.floor(l.i / 10)) ?? new Set()).add(pid));
    }
    assert.deepEqual([...byCall.values()].map((s) => s.size), [1, 1, 1, 1], 'one process per call of 10 items');
  });

  // Issue 20, report 4: per-item keys included the script's hash, so a fix made every item miss on resume.
  test('4. resume after fixing score.py re-runs only the 10 failed items of 30, at batch 1 and 10', { timeout: 180_000 }, async () => {
    const buggy = 'import kaon_step as k\ni = k.inputs()["i"]\nif i % 3 == 0:\n    raise ValueError("bad config %d" % i)\nk.output({"i": i, "score": i * 0.5})\n';
    const fixed = 'import kaon_step as k\ni = k.inputs()["i"]\nk.output({"i": i, "score": i * 0.5 + 100})\n';
    for (const batch of [1, 10]) {
      writeFileSync(path.join(dir, 'score.py'), buggy);
      const first = await env.kaon.start(scoreSweep, { n: 30, batch });
      await assert.rejects(first.result(), (err: Error) => err instanceof RunFailedError && /10 of 30 items of sweep "score" failed/.test(err.message));
      writeFileSync(path.join(dir, 'score.py'), fixed);
      const second = await env.kaon.resume(first.id);
      const sweep = (await second.result()) as Sweep;
      assert.deepEqual({ succeeded: sweep.succeeded, failed: sweep.failed, resumed: sweep.resumed }, { succeeded: 30, failed: 0, resumed: 20 });
      for await (const l of readResults(env.artifacts, sweep.results)) {
        assert.ok(l.ok);
        // The 20 reused items keep the old script's output; the 10 re-run ones have the fixed script's.
        assert.equal((l.output as { score: number }).score, l.i % 3 === 0 ? l.i * 0.5 + 100 : l.i * 0.5, `item ${l.i}`);
        assert.equal(Boolean(l.resumed), l.i % 3 !== 0, `item ${l.i} reused`);
      }
      const state = await second.progress();
      const w = state.steps.find((s) => s.key === 'score')?.sweep;
      assert.equal(w?.resumed, 20, 'the run state reports the reuse in items');
    }
  });

  test('editing a cached Python or shell step\'s script recomputes it; an unchanged script is a cache hit', { timeout: 180_000 }, async () => {
    const n = Date.now(); // a fresh input: nothing cached from earlier test runs
    const first = await env.kaon.start(versions, { n });
    assert.deepEqual(await first.result(), { py: 1, sh: 1 });
    assert.deepEqual(await statuses(first), { rkPyVersion: 'succeeded', rkShVersion: 'succeeded' });

    const again = await env.kaon.start(versions, { n });
    assert.deepEqual(await again.result(), { py: 1, sh: 1 });
    assert.deepEqual(await statuses(again), { rkPyVersion: 'cached', rkShVersion: 'cached' });

    writeFileSync(path.join(dir, 'version.py'), py(2));
    const editedPy = await env.kaon.start(versions, { n });
    assert.deepEqual(await editedPy.result(), { py: 2, sh: 1 }, 'the edited script ran, not yesterday\'s result');
    assert.deepEqual(await statuses(editedPy), { rkPyVersion: 'succeeded', rkShVersion: 'cached' });

    writeFileSync(path.join(dir, 'version.sh'), sh(2));
    const editedSh = await env.kaon.start(versions, { n });
    assert.deepEqual(await editedSh.result(), { py: 2, sh: 2 });
    assert.deepEqual(await statuses(editedSh), { rkPyVersion: 'cached', rkShVersion: 'succeeded' });
  });

  test('a per-call timeout cuts a process step short (the definition says 10 minutes)', { timeout: 120_000 }, async () => {
    const t0 = Date.now();
    const run = await env.kaon.start(cutShort, { seconds: 60 });
    await assert.rejects(run.result(), (err: unknown) => {
      assert.ok(err instanceof RunFailedError, String(err));
      assert.match(err.message, /time(d)? ?out/i);
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took < 30_000, `failed after ${took} ms, not after the 60 s sleep or the 10 minute definition`);
    // One attempt ran, whichever reported the timeout first: the worker's kill (its error says attempt 1) or, on a
    // loaded machine, the server's start-to-close timeout (no step details; src/workflow/failures.ts attemptsOfFailure).
    const state = await run.progress();
    assert.equal(state.steps[0]?.status, 'failed');
    assert.equal(state.steps[0]?.attempts, 1);
  });
});
