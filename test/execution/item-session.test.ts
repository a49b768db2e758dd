// Many sweep items in one Python process (ItemSession, kaon_step.run_items): real processes, the python() executor
// called directly with fake StepContexts (no Temporal), as the batch activity calls it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import type { ArtifactRef, Producer } from '../../src/definition/artifact-ref';
import { ErrorCode, KaonError } from '../../src/definition/errors';
import { defineStep, python } from '../../src/definition/step';
import { createRunnerExecutors, type ArtifactIO, type ItemSession } from '../../src/execution';
import { collectRunnables } from '../../src/execution/activities';
import { alive, fakeContext, type FakeContext } from './fake-context';

const ROOT = path.resolve(__dirname, '..', '..');
const Any = z.any();
const items = defineStep({ name: 'score', version: 1, input: Any, output: Any, run: python('test/fixtures/scripts/items.py') });

async function rejection(p: Promise<unknown>): Promise<KaonError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof KaonError, `expected a KaonError, got ${String(err)}`);
    return err;
  }
  return assert.fail('expected the item to fail');
}

function savingStore(dir: string) {
  const saved: { name: string; content: string; producer: Producer }[] = [];
  const io: ArtifactIO = {
    async materialise(ref, into) {
      const p = path.join(into, ref.name ?? 'data');
      writeFileSync(p, readFileSync(path.join(dir, ref.sha256)));
      return p;
    },
    async save(file, _inputs, producer) {
      const content = readFileSync(file.path);
      saved.push({ name: file.name, content: content.toString(), producer });
      const sha256 = createHash('sha256').update(content).digest('hex');
      writeFileSync(path.join(dir, sha256), content);
      return { kind: 'kaon.artifact', uri: `file://${dir}/${sha256}`, sha256, size: content.length, mediaType: file.mediaType ?? 'application/octet-stream', name: file.name, producer };
    },
  };
  return { io, saved };
}

const messages = (ctx: FakeContext) => ctx.logs.map((l) => l.message);

describe('item sessions (kaon_step.run_items)', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-item-session-test-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  async function open(opts: Parameters<typeof createRunnerExecutors>[0] = {}, def = items): Promise<ItemSession> {
    const s = await createRunnerExecutors({ root: ROOT, workDir: tmp, ...opts }).python.session!(def, fakeContext('score'));
    assert.ok(s, 'a script that calls run_items gets a session');
    return s;
  }

  test('items run one after another in one process; each has its own output, progress, logs and metrics', async () => {
    const s = await open();
    try {
      const ctxs = [0, 1, 2, 3].map((i) => fakeContext(`score[${i}]`));
      const outs = [];
      for (const [i, ctx] of ctxs.entries()) outs.push((await s.run({ x: i + 1 }, ctx)) as { x: number; square: number; pid: number });
      assert.deepEqual(outs.map((o) => [o.x, o.square]), [[1, 1], [2, 4], [3, 9], [4, 16]]);
      assert.equal(new Set(outs.map((o) => o.pid)).size, 1, 'one process for all items');
      for (const [i, ctx] of ctxs.entries()) {
        const mine = messages(ctx).filter((m) => m.startsWith('item '));
        assert.deepEqual(mine, [`item ${i + 1} says hi`], `item ${i}'s prints are its own`);
        assert.deepEqual(ctx.record.all(), [{ name: 'x', value: i + 1 }]);
        const beats = ctx.heartbeats as { fraction?: number; message?: string }[];
        assert.ok(beats.length > 0 && beats.every((b) => b.message === `scoring ${i + 1}`), JSON.stringify(beats));
      }
      // The module's code ran once, before the first item.
      assert.ok(messages(ctxs[0]!).some((m) => m.startsWith('loaded in process')));
      assert.ok(ctxs.slice(1).every((c) => !messages(c).some((m) => m.startsWith('loaded'))));
    } finally {
      await s.close();
    }
  });

  test('an exception fails its item only (retried, its own traceback); bad input and misuse are not retried; the process goes on', async () => {
    const s = await open();
    try {
      const first = (await s.run({ x: 1 }, fakeContext('score[0]'))) as { pid: number };
      const raised = fakeContext('score[1]');
      const err = await rejection(s.run({ x: 2, do: 'raise' }, raised));
      assert.equal(err.retryable, true);
      assert.equal(err.code, ErrorCode.processFailed);
      assert.match(err.message, /Python step "score" \(key score\[1\], test\/fixtures\/scripts\/items\.py\) failed on this item \(ValueError: x=2 is not scorable/);
      assert.match(err.message, /line \d+, in score\n\s+raise ValueError/);
      assert.doesNotMatch(err.message, /item 1 says hi/);
      assert.ok(messages(raised).includes('ValueError: x=2 is not scorable'));

      const bad = await rejection(s.run({ x: 3, do: 'bad' }, fakeContext('score[2]')));
      assert.equal(bad.retryable, false);
      assert.equal(bad.code, ErrorCode.badInput);
      assert.match(bad.message, /rejected its input \(exit 65\)[\s\S]*bad input: field 'x': 3 is out of range/);

      const misuse = await rejection(s.run({ x: 4, do: 'misuse' }, fakeContext('score[3]')));
      assert.equal(misuse.retryable, false);
      assert.match(misuse.message, /kaon_step\.progress: the fraction is 2\.0, outside \[0, 1\]/);

      // A module the environment lacks is a fact of the code: not retried, as for a one-item process.
      const missing = await rejection(s.run({ x: 5, do: 'import' }, fakeContext('score[4]')));
      assert.equal(missing.retryable, false);
      assert.match(missing.message, /imports the module "kaon_no_such_module"/);

      const last = (await s.run({ x: 6 }, fakeContext('score[5]'))) as { square: number; pid: number };
      assert.deepEqual([last.square, last.pid], [36, first.pid], 'the same process ran every item');
    } finally {
      await s.close();
    }
  });

  test('a crash fails only the item that was running; the next item runs in a new process', async () => {
    const s = await open();
    try {
      const a = (await s.run({ x: 1 }, fakeContext('score[0]'))) as { pid: number };
      const crashed = await rejection(s.run({ x: 2, do: 'crash' }, fakeContext('score[1]')));
      assert.equal(crashed.retryable, true);
      assert.match(crashed.message, /exited with code 3 while running this item \(the next item starts a new process\); last output:\nitem 2 says hi/);
      assert.equal(alive(a.pid), false);
      const b = (await s.run({ x: 3 }, fakeContext('score[2]'))) as { square: number; pid: number };
      assert.equal(b.square, 9);
      assert.notEqual(b.pid, a.pid);
      const killed = await rejection(s.run({ x: 4, do: 'kill' }, fakeContext('score[3]')));
      assert.equal(killed.retryable, true);
      assert.match(killed.message, /was killed by SIGKILL while running this item/);
      const c = (await s.run({ x: 5 }, fakeContext('score[4]'))) as { square: number; pid: number };
      assert.equal(c.square, 25);
      assert.notEqual(c.pid, b.pid);
    } finally {
      await s.close();
    }
  });

  test("artifacts are saved with their item's producer; what an item leaves in the output dir is never the next item's", async () => {
    const storeDir = path.join(tmp, 'store');
    mkdirSync(storeDir, { recursive: true });
    const store = savingStore(storeDir);
    const s = await open({ artifacts: store.io });
    try {
      const out = (await s.run({ x: 7, do: 'artifact' }, fakeContext('score[7]'))) as { file: ArtifactRef };
      assert.equal(out.file.name, 'result.txt');
      assert.deepEqual(store.saved.map((a) => [a.name, a.content, a.producer.step]), [
        ['result.txt', 'result of 7', 'score[7]'],
        ['left-7.txt', 'left in the output dir by 7', 'score[7]'],
      ]);
      // A failed item's files are dropped, not passed on.
      await rejection(s.run({ x: 8, do: 'leave-and-fail' }, fakeContext('score[8]')));
      const plain = await s.run({ x: 9 }, fakeContext('score[9]'));
      assert.equal((plain as { square: number }).square, 81);
      assert.deepEqual(store.saved.map((a) => a.producer.step), ['score[7]', 'score[7]'], 'items 8 and 9 saved nothing');
      // Artifact inputs reach the item as files, by field path.
      writeFileSync(path.join(storeDir, 'in.txt'), 'features');
      const input = await store.io.save({ path: path.join(storeDir, 'in.txt'), name: 'in.txt' }, [], { pipeline: 'p', runId: 'r', step: 'prep', attempt: 1 });
      const env = (await s.run({ x: 10, do: 'env', features: input }, fakeContext('score[10]'))) as { key: string; paths: Record<string, string>; contents: Record<string, string> };
      assert.equal(env.key, 'score[10]');
      assert.deepEqual(env.contents, { features: 'features' });
      assert.equal(existsSync(env.paths.features!), false, "an item's input files are removed after it");
    } finally {
      await s.close();
    }
  });

  test("the items' environment is the step's allow-listed one; KAON_STEP_KEY and inputs() are the item's", async () => {
    process.env.KAON_TEST_WORKER_SECRET = 'not for steps';
    try {
      const s = await open();
      try {
        const a = (await s.run({ x: 1, do: 'env' }, fakeContext('score[0]'))) as { key: string; names: string[]; input: unknown; paths: unknown };
        const b = (await s.run({ x: 2, do: 'env' }, fakeContext('score[1]'))) as { key: string; input: unknown };
        assert.deepEqual([a.key, b.key], ['score[0]', 'score[1]']);
        assert.deepEqual([a.input, b.input], [{ x: 1, do: 'env' }, { x: 2, do: 'env' }]);
        assert.deepEqual(a.paths, {});
        assert.ok(!a.names.includes('KAON_TEST_WORKER_SECRET'), 'worker variables are not passed');
        assert.ok(!a.names.includes('KAON_INPUT'), 'no one-item input file');
        assert.ok(a.names.includes('KAON_ITEMS_FD'));
      } finally {
        await s.close();
      }
    } finally {
      delete process.env.KAON_TEST_WORKER_SECRET;
    }
  });

  test("each item's lines are its own, however fast it prints on stdout and stderr", async () => {
    const s = await open();
    try {
      for (const x of [1, 2, 3]) {
        const ctx = fakeContext(`score[${x}]`);
        await s.run({ x, do: 'chatty', lines: 300 }, ctx);
        const lines = messages(ctx).filter((m) => m.startsWith('item '));
        assert.equal(lines.length, 601, `item ${x}: ${lines.length} lines`);
        assert.ok(lines.every((l) => l.startsWith(`item ${x} `)), `item ${x} got another item's line`);
      }
    } finally {
      await s.close();
    }
  });

  test('cancellation kills the process and rethrows the reason; a timed-out item fails retryably; the next item runs', async () => {
    const s = await open({ killGraceMs: 500 });
    try {
      const a = (await s.run({ x: 1 }, fakeContext('score[0]'))) as { pid: number };
      const ctx = fakeContext('score[1]');
      const reason = new Error('run cancelled');
      setTimeout(() => ctx.controller.abort(reason), 300);
      await assert.rejects(s.run({ x: 2, do: 'sleep' }, ctx), (err) => err === reason);
      assert.equal(alive(a.pid), false);

      const slow = Object.assign(fakeContext('score[2]'), { timeoutMs: 1500 });
      const timedOut = await rejection(s.run({ x: 3, do: 'sleep' }, slow));
      assert.equal(timedOut.code, ErrorCode.timeout);
      assert.equal(timedOut.retryable, true);
      assert.match(timedOut.message, /timed out after \d+ ms on this item/);

      const b = (await s.run({ x: 4 }, fakeContext('score[3]'))) as { square: number };
      assert.equal(b.square, 16);
    } finally {
      await s.close();
    }
  });

  test('close() ends the process and removes the work dir and the live-step record; it is idempotent', async () => {
    const liveDir = path.join(tmp, 'live');
    const before = new Set(readdirSync(tmp));
    const s = await open({ liveDir });
    const { pid } = (await s.run({ x: 1 }, fakeContext('score[0]'))) as { pid: number };
    const records = readdirSync(liveDir);
    assert.equal(records.length, 1);
    const rec = JSON.parse(readFileSync(path.join(liveDir, records[0]!), 'utf8')) as { group?: { pgid: number }; workDir: string };
    assert.ok(rec.group?.pgid, 'the process group is recorded');
    assert.ok(existsSync(rec.workDir));
    await Promise.all([s.close(), s.close()]);
    await s.close();
    assert.equal(alive(pid), false);
    assert.equal(existsSync(rec.workDir), false);
    assert.deepEqual(readdirSync(liveDir), []);
    assert.deepEqual(readdirSync(tmp).filter((f) => !before.has(f) && f !== 'live'), []);
    await assert.rejects(s.run({ x: 2 }, fakeContext('score[1]')), /closed/);
  });

  test('a one-item script gets no session; one that only looks like an item script falls back, never running an item twice', async () => {
    const ex = createRunnerExecutors({ root: ROOT, workDir: tmp });
    const square = defineStep({ name: 'square', version: 1, input: Any, output: Any, run: python('test/fixtures/scripts/square.py') });
    assert.equal(await ex.python.session!(square, fakeContext('square')), undefined);
    // Wired through collectRunnables as the batch activity sees it.
    const runnable = collectRunnables({ impls: [], steps: [square, items], executors: ex });
    assert.equal(await runnable.get('square')!.session!(fakeContext('square')), undefined);
    const viaRunnable = await runnable.get('score')!.session!(fakeContext('score'));
    assert.ok(viaRunnable);
    await viaRunnable.close();

    const disguised = defineStep({ name: 'disguised', version: 1, input: Any, output: Any, run: python('test/fixtures/scripts/one_item_in_disguise.py') });
    const sessionCtx = fakeContext('disguised');
    const s = await ex.python.session!(disguised, sessionCtx);
    assert.ok(s, 'its source mentions run_items(');
    const log = path.join(tmp, 'disguised.log');
    try {
      const ctx = fakeContext('disguised[0]');
      assert.deepEqual(await s.run({ x: 1, log }, ctx), { y: 2 });
      assert.ok(messages(sessionCtx).some((m) => /has no item handler \(it called inputs outside an item handler\): its items run one process each/.test(m)), JSON.stringify(messages(sessionCtx)));
      assert.deepEqual(await s.run({ x: 2, log }, fakeContext('disguised[1]')), { y: 3 });
    } finally {
      await s.close();
    }
    assert.equal(readFileSync(log, 'utf8'), 'ran 1\nran 2\n', 'each item ran once');
  });

  test("the README's example (examples/python-items/score.py) scores items in one process", async () => {
    const scoreStep = defineStep({
      name: 'scoreConfig',
      version: 1,
      input: z.object({ lr: z.number(), depth: z.number().int() }),
      output: z.object({ lr: z.number(), depth: z.number().int(), score: z.number() }),
      run: python('examples/python-items/score.py'),
    });
    const s = await createRunnerExecutors({ root: ROOT, workDir: tmp }).python.session!(scoreStep, fakeContext('scoreConfig'));
    assert.ok(s);
    try {
      const ctx = fakeContext('scoreConfig[0]');
      const out = (await s.run({ lr: 0.1, depth: 4 }, ctx)) as { score: number };
      assert.ok(Math.abs(out.score - (-0.3 * Math.log(0.1) + 0.05 * 4)) < 1e-12);
      assert.deepEqual(ctx.record.all().map((m) => m.name), ['score']);
      const bad = await rejection(s.run({ lr: 0, depth: 4 }, fakeContext('scoreConfig[1]')));
      assert.equal(bad.retryable, false);
      assert.match(bad.message, /field 'lr': 0 is not positive/);
      assert.equal(((await s.run({ lr: 1, depth: 2 }, fakeContext('scoreConfig[2]'))) as { score: number }).score, 0.1);
    } finally {
      await s.close();
    }
  });

  test('the same run_items script works one item per process, without a session', async () => {
    const ex = createRunnerExecutors({ root: ROOT, workDir: tmp });
    const out = (await ex.python(items, { x: 5 }, fakeContext('score[5]'))) as { square: number };
    assert.equal(out.square, 25);
    assert.equal(await ex.python(items, { x: 5, do: 'none' }, fakeContext('score[5]')), undefined);
    const raised = await rejection(ex.python(items, { x: 6, do: 'raise' }, fakeContext('score[6]')));
    assert.equal(raised.retryable, true);
    assert.match(raised.message, /exited with code 1[\s\S]*ValueError: x=6 is not scorable/);
    const bad = await rejection(ex.python(items, { x: 7, do: 'bad' }, fakeContext('score[7]')));
    assert.equal(bad.retryable, false);
    assert.equal(bad.code, ErrorCode.badInput);
  });
});
