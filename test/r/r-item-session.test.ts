// Many sweep items in one R process (ItemSession, kaon_run_items in r/kaon_step.R): real Rscript processes, the
// command() executor called directly with fake StepContexts (no Temporal), as the batch activity calls it.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import { ErrorCode, KaonError } from '../../src/definition/errors';
import { command, defineStep } from '../../src/definition/step';
import { createRunnerExecutors, type ArtifactIO, type ItemSession } from '../../src/execution';
import { alive, fakeContext, type FakeContext } from '../execution/fake-context';

const ROOT = path.resolve(__dirname, '..', '..');
const Any = z.any();
const items = defineStep({ name: 'score', version: 1, input: Any, output: Any, run: command(['Rscript', 'test/fixtures/scripts/items.R']) });
const messages = (ctx: FakeContext) => ctx.logs.map((l) => l.message);

async function rejection(p: Promise<unknown>): Promise<KaonError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof KaonError, `expected a KaonError, got ${String(err)}`);
    return err;
  }
  return assert.fail('expected the item to fail');
}

describe('R item sessions (kaon_run_items)', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-r-item-session-test-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  async function open(opts: Parameters<typeof createRunnerExecutors>[0] = {}): Promise<ItemSession> {
    const s = await createRunnerExecutors({ root: ROOT, workDir: tmp, ...opts }).process.session!(items, fakeContext('score'));
    assert.ok(s, 'an Rscript whose script calls kaon_run_items gets a session');
    return s;
  }

  test('items run one after another in one R process; each has its own output, progress, prints and metrics', async () => {
    const s = await open();
    try {
      const ctxs = [0, 1, 2, 3].map((i) => fakeContext(`score[${i}]`));
      const outs = [];
      for (const [i, ctx] of ctxs.entries()) outs.push((await s.run({ x: i + 1 }, ctx)) as { x: number; square: number; pid: number });
      assert.deepEqual(outs.map((o) => [o.x, o.square]), [[1, 1], [2, 4], [3, 9], [4, 16]]);
      assert.equal(new Set(outs.map((o) => o.pid)).size, 1, 'one process for all items');
      for (const [i, ctx] of ctxs.entries()) {
        assert.deepEqual(messages(ctx).filter((m) => m.startsWith('item ')), [`item ${i + 1} says hi`], `item ${i}'s prints are its own`);
        assert.deepEqual(ctx.record.all(), [{ name: 'x', value: i + 1 }]);
        const beats = ctx.heartbeats as { fraction?: number; message?: string }[];
        assert.ok(beats.length > 0 && beats.every((b) => b.message === `scoring ${i + 1}`), JSON.stringify(beats));
      }
      assert.ok(messages(ctxs[0]!).some((m) => m.startsWith('loaded in process')), 'the script ran once, before the first item');
      assert.ok(ctxs.slice(1).every((c) => !messages(c).some((m) => m.startsWith('loaded'))));
      // kaon_output() inside the function, NULL returned: no output; kaon_inputs() and the key are the item's.
      assert.deepEqual(await s.run({ x: 5, do: 'output' }, fakeContext('score[4]')), { x: 5, by: 'kaon_output' });
      assert.equal(await s.run({ x: 6, do: 'none' }, fakeContext('score[5]')), undefined);
      const env = (await s.run({ x: 7, do: 'env' }, fakeContext('score[6]'))) as Record<string, unknown>;
      assert.deepEqual(env, { key: 'score[6]', input: { x: 7, do: 'env' }, paths: {}, items_fd: '' });
      for (const x of [8, 9]) {
        const ctx = fakeContext(`score[${x}]`);
        await s.run({ x, do: 'chatty', lines: 200 }, ctx);
        const lines = messages(ctx).filter((m) => m.startsWith('item '));
        assert.equal(lines.length, 401, `item ${x}: ${lines.length} lines`);
        assert.ok(lines.every((l) => l.startsWith(`item ${x} `)), `item ${x} got another item's line`);
      }
    } finally {
      await s.close();
    }
  });

  test('an R error fails its item only (retried, its message); bad input and misuse are not retried; the process goes on', async () => {
    const s = await open();
    try {
      const first = (await s.run({ x: 1 }, fakeContext('score[0]'))) as { pid: number };
      const raised = fakeContext('score[1]');
      const err = await rejection(s.run({ x: 2, do: 'raise' }, raised));
      assert.equal(err.retryable, true);
      assert.equal(err.code, ErrorCode.processFailed);
      assert.match(err.message, /step "score" \(key score\[1\], Rscript\) failed on this item \(Error in check\(item\$x\) : x=2 is not scorable/);
      assert.match(err.message, /Calls: check/);
      assert.doesNotMatch(err.message, /item 1 says hi/);

      const bad = await rejection(s.run({ x: 3, do: 'bad' }, fakeContext('score[2]')));
      assert.equal(bad.retryable, false);
      assert.equal(bad.code, ErrorCode.badInput);
      assert.match(bad.message, /rejected its input \(exit 65\)[\s\S]*bad input: field 'x': 3 is out of range/);

      const misuse = await rejection(s.run({ x: 4, do: 'misuse' }, fakeContext('score[3]')));
      assert.equal(misuse.retryable, false);
      assert.match(misuse.message, /kaon_progress: the fraction is 2, outside \[0, 1\]/);

      // kaon_bad_input is not an R error: an item's tryCatch(error = ) does not swallow it.
      const caught = await rejection(s.run({ x: 5, do: 'caught' }, fakeContext('score[4]')));
      assert.equal(caught.code, ErrorCode.badInput);

      // A warning is printed when it happens, as the item's line, not after the last item.
      const warned = fakeContext('score[5]');
      assert.equal(((await s.run({ x: 6, do: 'warn' }, warned)) as { square: number }).square, 36);
      assert.ok(messages(warned).includes('Warning: item 6 is odd'), JSON.stringify(messages(warned)));

      const last = (await s.run({ x: 7 }, fakeContext('score[6]'))) as { square: number; pid: number };
      assert.deepEqual([last.square, last.pid], [49, first.pid], 'the same process ran every item');
    } finally {
      await s.close();
    }
  });

  test('a crash (quit, a signal) fails only the item that was running; the next item runs in a new process', async () => {
    const s = await open();
    try {
      const a = (await s.run({ x: 1 }, fakeContext('score[0]'))) as { pid: number };
      const quit = await rejection(s.run({ x: 2, do: 'quit' }, fakeContext('score[1]')));
      assert.equal(quit.retryable, true);
      assert.match(quit.message, /exited with code 3 while running this item \(the next item starts a new process\); last output:\nitem 2 says hi/);
      assert.equal(alive(a.pid), false);
      const b = (await s.run({ x: 3 }, fakeContext('score[2]'))) as { square: number; pid: number };
      assert.equal(b.square, 9);
      assert.notEqual(b.pid, a.pid);
      const termed = await rejection(s.run({ x: 4, do: 'term' }, fakeContext('score[3]')));
      assert.equal(termed.retryable, true);
      assert.match(termed.message, /was killed by SIGTERM while running this item/);
      const c = (await s.run({ x: 5 }, fakeContext('score[4]'))) as { square: number; pid: number };
      assert.notEqual(c.pid, b.pid);
      const killed = await rejection(s.run({ x: 6, do: 'kill' }, fakeContext('score[5]')));
      assert.match(killed.message, /was killed by SIGKILL while running this item/);
      const d = (await s.run({ x: 7 }, fakeContext('score[6]'))) as { square: number; pid: number };
      assert.equal(d.square, 49);
      assert.notEqual(d.pid, c.pid);
    } finally {
      await s.close();
    }
  });

  test("an item's artifacts are its own; an item's input artifacts reach it as files", async () => {
    const storeDir = mkdtempSync(path.join(tmp, 'store-'));
    const saved: { name: string; content: string; step: string }[] = [];
    const io: ArtifactIO = {
      async materialise(ref, into) {
        const p = path.join(into, ref.name ?? 'data');
        writeFileSync(p, 'features');
        return p;
      },
      async save(file, _inputs, producer) {
        const content = readFileSync(file.path, 'utf8');
        saved.push({ name: file.name, content, step: producer.step });
        return { kind: 'kaon.artifact', uri: `file://${storeDir}/${file.name}`, sha256: 'a'.repeat(64), size: content.length, mediaType: 'text/plain', name: file.name, producer };
      },
    };
    const s = await open({ artifacts: io });
    try {
      const out = (await s.run({ x: 7, do: 'artifact' }, fakeContext('score[7]'))) as { file: { name: string } };
      assert.equal(out.file.name, 'result.txt');
      assert.deepEqual(saved, [{ name: 'result.txt', content: 'result of 7\n', step: 'score[7]' }]);
      const ref = { kind: 'kaon.artifact', uri: 'file:///x', sha256: 'b'.repeat(64), size: 8, mediaType: 'text/plain', name: 'f.txt', producer: { pipeline: 'p', runId: 'r', step: 'prep', attempt: 1 } };
      const env = (await s.run({ x: 8, do: 'env', features: ref }, fakeContext('score[8]'))) as { paths: Record<string, string> };
      assert.deepEqual(Object.keys(env.paths), ['features']);
      assert.match(env.paths.features!, /f\.txt$/);
    } finally {
      await s.close();
    }
  });

  test('the same script runs one item per process without a session; other command steps get no session', async () => {
    const ex = createRunnerExecutors({ root: ROOT, workDir: tmp });
    assert.deepEqual(((await ex.process(items, { x: 5 }, fakeContext('score[5]'))) as { square: number }).square, 25);
    assert.equal(await ex.process(items, { x: 5, do: 'none' }, fakeContext('score[5]')), undefined);
    const raised = await rejection(ex.process(items, { x: 6, do: 'raise' }, fakeContext('score[6]')));
    assert.equal(raised.retryable, true);
    assert.match(raised.message, /exited with code 1[\s\S]*x=6 is not scorable/);
    const bad = await rejection(ex.process(items, { x: 7, do: 'bad' }, fakeContext('score[7]')));
    assert.equal(bad.retryable, false);
    assert.equal(bad.code, ErrorCode.badInput);

    const oneItem = path.join(tmp, 'one.R');
    writeFileSync(oneItem, ['source(Sys.getenv("KAON_R_HELPER"))', '# kaon_run_items( is only mentioned here', 'kaon_output(list(y = kaon_inputs()$x + 1))'].join('\n'));
    for (const argv of [['Rscript', oneItem], ['bash', 'test/fixtures/scripts/shell-step.sh'], ['Rscript', '-e', 'kaon_run_items(identity)']]) {
      const def = defineStep({ name: 'other', version: 1, input: Any, output: Any, run: command(argv) });
      assert.equal(await ex.process.session!(def, fakeContext('other')), undefined, argv.join(' '));
    }
  });

  test('a script that calls kaon_inputs() before kaon_run_items falls back to one process per item, running each once', async () => {
    const log = path.join(tmp, 'disguised.log');
    const script = path.join(tmp, 'disguised.R');
    writeFileSync(script, [
      'source(Sys.getenv("KAON_R_HELPER"))',
      'p <- kaon_inputs()',
      'cat(sprintf("ran %s\\n", p$x), file = p$log, append = TRUE)',
      'kaon_run_items(function(item) list(y = p$x + 1))',
    ].join('\n'));
    const def = defineStep({ name: 'disguised', version: 1, input: Any, output: Any, run: command(['Rscript', script]) });
    const sessionCtx = fakeContext('disguised');
    const s = await createRunnerExecutors({ root: ROOT, workDir: tmp }).process.session!(def, sessionCtx);
    assert.ok(s);
    try {
      assert.deepEqual(await s.run({ x: 1, log }, fakeContext('disguised[0]')), { y: 2 });
      assert.ok(messages(sessionCtx).some((m) => /has no item handler \(it called kaon_inputs outside an item handler\)/.test(m)), JSON.stringify(messages(sessionCtx)));
      assert.deepEqual(await s.run({ x: 2, log }, fakeContext('disguised[1]')), { y: 3 });
    } finally {
      await s.close();
    }
    assert.equal(readFileSync(log, 'utf8'), 'ran 1\nran 2\n', 'each item ran once');
  });
});

test("the README's R example (examples/r-items/score.R) scores items in one process", async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-r-items-example-'));
  const scoreStep = defineStep({
    name: 'scoreConfig',
    version: 1,
    input: z.object({ lr: z.number(), depth: z.number().int() }),
    output: z.object({ lr: z.number(), depth: z.number().int(), score: z.number() }),
    run: command(['Rscript', 'examples/r-items/score.R']),
  });
  const s = await createRunnerExecutors({ root: ROOT, workDir: tmp }).process.session!(scoreStep, fakeContext('scoreConfig'));
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
    rmSync(tmp, { recursive: true, force: true });
  }
});
