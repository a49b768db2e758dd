// The board's sweep index at 100,000 items: a results manifest written straight to a real artifact store, then
// pages served from it (first page, a state filter, a signature filter, the last page) with the right rows and
// counts. Timings are printed as diagnostics (speed is measured by benchmarks; this machine is shared), with a
// generous bound that only a regression to quadratic work would cross.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import type { ArtifactRef } from '../../src/definition/artifact-ref';
import type { SweepLine } from '../../src/definition/sweep';
import { createArtifactStore } from '../../src/data';
import { errorSignature, SweepIndexes, type Segment } from '../../src/observe/board/sweep-index';

const N = 100_000;
const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-board-sweep-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const store = createArtifactStore(dir, { localDir: dir });
const producer = { pipeline: 'p', runId: 'run-1', step: 'train', attempt: 1 };

/** Item i's line: every 50th fails (three kinds of error), every 97th was skipped, every 10th is cached. */
function lineOf(i: number, model: ArtifactRef): SweepLine {
  if (i % 50 === 3) return { i, ok: false, status: 'failed', error: `ValueError: bad config ${i} for lr=0.${i % 7}\n  at train.py:${40 + (i % 3)}` };
  if (i % 50 === 13) return { i, ok: false, status: 'failed', error: `KAON_STEP_TIMEOUT: item ${i} timed out after 30 s on worker w-${(i * 7919).toString(16)}a1b2c3d4` };
  if (i % 50 === 23) return { i, ok: false, status: 'failed', error: `Traceback (most recent call last):\n  File "train.py", line 12\nRuntimeError: CUDA out of memory (tried ${i} MiB)` };
  if (i % 97 === 5) return { i, ok: false, status: 'skipped', error: 'not run: the sweep stopped at its first failure (fail-fast)' };
  return { i, ok: true, output: { loss: 1 / (i + 1), lr: i % 7, model }, ...(i % 10 === 0 ? { cached: true } : {}) };
}

test('100,000 items: the first page, a filtered page and a signature group, served from one scan', async () => {
  const model = await store.put({ bytes: 'weights' }, { name: 'model.bin', producer });
  const text = Array.from({ length: N }, (_, i) => `${JSON.stringify(lineOf(i, model))}\n`).join('');
  const results = await store.put({ bytes: text }, { name: 'train.results.jsonl', mediaType: 'application/x-ndjson', producer });
  const segments: Segment[] = [{ start: 0, end: N, ref: results }];
  const indexes = new SweepIndexes(store);
  const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const v = await fn();
    const ms = performance.now() - t0;
    console.log(`  ${what}: ${ms.toFixed(0)} ms`);
    // A generous bound: the target is under 1 s on a quiet machine; only a quadratic regression crosses 10 s.
    assert.ok(ms < 10_000, `${what} took ${ms.toFixed(0)} ms`);
    return v;
  };
  console.log(`  manifest: ${N} lines, ${(results.size / 1048576).toFixed(1)} MiB`);

  const first = await timed('first page (cold: verify + scan + page)', () => indexes.page(segments, { offset: 0, limit: 100 }));
  console.log(`  of which the scan: ${first.scanMs.toFixed(0)} ms`);
  assert.equal(first.total, N);
  assert.equal(first.matched, N);
  assert.deepEqual(first.rows.map((r) => r.i), Array.from({ length: 100 }, (_, i) => i));
  assert.equal(first.rows[3]!.state, 'failed');
  assert.equal(first.rows[3]!.preview, 'ValueError: bad config 3 for lr=0.3');
  assert.equal(first.rows[10]!.cached, true);
  assert.match(first.rows[1]!.preview, /^\{"loss":0\.5,"lr":1,"model":"⟨artifact model\.bin⟩"\}$/);
  // Counts are the manifest's, line by line.
  const expect = { ok: 0, failed: 0, skipped: 0, cached: 0 };
  for (let i = 0; i < N; i++) {
    const l = lineOf(i, model);
    if (l.ok) {
      expect.ok++;
      if (l.cached) expect.cached++;
    } else if (l.status === 'failed') expect.failed++;
    else expect.skipped++;
  }
  assert.deepEqual({ ok: first.counts.ok, failed: first.counts.failed, skipped: first.counts.skipped, cached: first.counts.cached }, expect);

  // Three signatures, numbers and ids stripped.
  assert.deepEqual(first.signatures.map((s) => [s.text, s.count]), [
    ['ValueError: bad config # for lr=#', N / 50],
    ['KAON_STEP_TIMEOUT: item # timed out after # s on worker w-<id>', N / 50],
    ['RuntimeError: CUDA out of memory (tried # MiB)', N / 50],
  ]);

  const failed = await timed('a page of failures (warm)', () => indexes.page(segments, { state: 'failed', offset: 100, limit: 100 }));
  assert.equal(failed.matched, expect.failed);
  assert.equal(failed.scanMs, 0, 'no second scan');
  assert.ok(failed.rows.every((r) => r.state === 'failed'));
  assert.equal(failed.rows[0]!.i, Math.floor(100 / 3) * 50 + [3, 13, 23][100 % 3]!);

  const sig = first.signatures.find((s) => s.text.startsWith('RuntimeError'))!;
  const group = await timed('a signature group, last page', () => indexes.page(segments, { state: 'failed', sig: sig.id, offset: N / 50 - 10, limit: 100 }));
  assert.equal(group.matched, N / 50);
  assert.deepEqual(group.rows.map((r) => r.i), Array.from({ length: 10 }, (_, k) => (N / 50 - 10 + k) * 50 + 23));

  const cached = await timed('cached items, a deep page', () => indexes.page(segments, { state: 'cached', offset: 5000, limit: 100 }));
  assert.ok(cached.rows.every((r) => r.cached && r.i % 10 === 0));
  const last = await timed('the last page', () => indexes.page(segments, { offset: N - 50, limit: 100 }));
  assert.deepEqual(last.rows.map((r) => r.i), Array.from({ length: 50 }, (_, k) => N - 50 + k));

  // A fresh server (new indexes) pays the scan again: that is the cold number above, measured twice.
  await timed('first page, cold again (a new board process)', () => new SweepIndexes(store).page(segments, { offset: 0, limit: 100 }));
  const line = await new SweepIndexes(store).line(segments, 99_913);
  assert.deepEqual(line, lineOf(99_913, model));
});

test('a running sweep: shards with a manifest list their items, the others are pending; filters span shards', async () => {
  const model = await store.put({ bytes: 'weights' }, { name: 'model.bin', producer });
  const shard = async (start: number, end: number) => store.put({ bytes: Array.from({ length: end - start }, (_, k) => `${JSON.stringify(lineOf(start + k, model))}\n`).join('') }, { name: 's.jsonl', producer });
  const segments: Segment[] = [{ start: 0, end: 100, ref: await shard(0, 100) }, { start: 100, end: 200 }, { start: 200, end: 250, ref: await shard(200, 250) }];
  const indexes = new SweepIndexes(store);
  const all = await indexes.page(segments, { offset: 95, limit: 10 });
  assert.equal(all.total, 250);
  assert.equal(all.counts.pending, 100);
  assert.deepEqual(all.rows.map((r) => `${r.i}:${r.state}`), ['95:ok', '96:ok', '97:ok', '98:ok', '99:ok', '100:pending', '101:pending', '102:pending', '103:pending', '104:pending']);
  const failed = await indexes.page(segments, { state: 'failed', offset: 0, limit: 100 });
  assert.deepEqual(failed.rows.map((r) => r.i), [3, 13, 23, 53, 63, 73, 203, 213, 223]);
  const pending = await indexes.page(segments, { state: 'pending', offset: 0, limit: 500 });
  assert.equal(pending.matched, 100);
  const value = failed.signatures.find((s) => s.text.startsWith('ValueError'))!;
  assert.equal(value.count, 3);
  assert.equal(value.first, 3);
  assert.equal(await indexes.line(segments, 150), undefined);
});

test('error signatures: the telling line, ids and numbers stripped, "To fix" cut', () => {
  assert.equal(errorSignature('ValueError: bad config 17'), 'ValueError: bad config #');
  assert.equal(errorSignature('step exited with code 1\nTraceback (most recent call last):\n  File "x.py", line 3\nKeyError: \'lr\''), "KeyError: 'lr'");
  assert.equal(errorSignature('KAON_BAD_INPUT: rows.csv has no header line. To fix: write the header "i,sq"'), 'KAON_BAD_INPUT: rows.csv has no header line.');
  assert.equal(errorSignature('run 3f2b9c1e-8d7a-4b6c-9e0f-1a2b3c4d5e6f failed on sha256 ab12cd34ef56'), 'run <id> failed on sha256 <id>');
  assert.equal(errorSignature(''), '(no message)');
});
