import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ArtifactRef } from '../../src/definition/artifact-ref';
import { ErrorCode, KaonError } from '../../src/definition/errors';
import { canonicalJson, createMemoTable, memoKey } from '../../src/data';
import { backends, producer } from './helpers';

const ref = (sha256: string, over: Partial<ArtifactRef> = {}): ArtifactRef => ({
  kind: 'kaon.artifact',
  uri: `file:///somewhere/sha256/${sha256.slice(0, 2)}/${sha256}`,
  sha256,
  size: 10,
  mediaType: 'application/octet-stream',
  producer: producer(),
  ...over,
});

describe('memoKey', () => {
  const features = ref('a'.repeat(64));

  test('is a sha256 of step, version, salt and input, independent of key order and undefined members', () => {
    const k = memoKey({ step: 'train', version: 1, input: { country: 'US', rank: 32, features } });
    assert.match(k, /^[0-9a-f]{64}$/);
    assert.equal(memoKey({ step: 'train', version: 1, input: { features, rank: 32, country: 'US', note: undefined } }), k);
    assert.notEqual(memoKey({ step: 'train', version: 2, input: { country: 'US', rank: 32, features } }), k);
    assert.notEqual(memoKey({ step: 'train', version: '1', input: { country: 'US', rank: 32, features } }), k, 'version 1 and "1" differ');
    assert.notEqual(memoKey({ step: 'train', version: 1, salt: 'v2', input: { country: 'US', rank: 32, features } }), k);
    assert.notEqual(memoKey({ step: 'evaluate', version: 1, input: { country: 'US', rank: 32, features } }), k);
    assert.notEqual(memoKey({ step: 'train', version: 1, input: { country: 'BR', rank: 32, features } }), k);
    assert.equal(memoKey({ step: 'train', version: 1, salt: undefined, input: { country: 'US', rank: 32, features } }), k);
  });

  test('an ArtifactRef counts by its sha256 only: the same bytes from another run give the same key', () => {
    const fromOtherRun = ref('a'.repeat(64), { uri: 's3://bucket/p/sha256/aa/…', name: 'f.parquet', producer: producer({ runId: 'run-9', attempt: 3 }) });
    const input = (f: ArtifactRef) => ({ models: [{ f, weight: 0.5 }], features: f });
    assert.equal(memoKey({ step: 's', version: 1, input: input(features) }), memoKey({ step: 's', version: 1, input: input(fromOtherRun) }));
    assert.notEqual(memoKey({ step: 's', version: 1, input: input(features) }), memoKey({ step: 's', version: 1, input: input(ref('b'.repeat(64))) }));
    assert.equal(canonicalJson({ b: [1, undefined], a: features }), `{"a":{"kaon.artifact":"${'a'.repeat(64)}"},"b":[1,null]}`);
  });

  test('values without a JSON form are refused rather than hashed ambiguously', () => {
    assert.throws(() => memoKey({ step: 's', version: 1, input: { m: new Map() } }), (e: unknown) => e instanceof KaonError && e.code === ErrorCode.badInput && /Map/.test(e.message));
    assert.throws(() => memoKey({ step: 's', version: 1, input: { n: 10n } }), (e: unknown) => e instanceof KaonError && /bigint/.test(e.message));
  });
});

for (const backend of backends()) {
  describe(`memo table — ${backend.name} backend`, () => {
    before(() => backend.start());
    after(() => backend.stop());

    test('put then get returns the entry; an unknown key is a miss', async () => {
      const { store } = await backend.fresh();
      const memo = createMemoTable(store);
      const key = memoKey({ step: 'train', version: 1, input: { country: 'US' } });
      assert.equal(await memo.get(key), undefined);
      const put = await memo.put(key, { output: { accuracy: 0.9, labels: ['a', 'b'] }, refs: [], runId: 'run-1', stepKey: 'train[US]', createdAt: new Date('2026-01-02T03:04:05Z') });
      assert.equal(put.step, 'train', 'the step name defaults to the step key without its [item] suffix');
      const got = await memo.get(key);
      assert.deepEqual(got, { key, step: 'train', stepKey: 'train[US]', runId: 'run-1', output: { accuracy: 0.9, labels: ['a', 'b'] }, refs: [], createdAt: '2026-01-02T03:04:05.000Z' });
      await assert.rejects(memo.get('not-a-key'), (e: unknown) => e instanceof KaonError && e.code === ErrorCode.badInput);
    });

    test('a hit whose blobs were deleted is a miss, and a hit again once the bytes are back', async () => {
      const { store } = await backend.fresh();
      const memo = createMemoTable(store);
      const model = await store.put({ bytes: 'model weights' }, { name: 'model.pt', producer: producer({ step: 'train[US]' }) });
      const report = await store.put({ bytes: 'report' }, { name: 'report.md', producer: producer({ step: 'train[US]' }) });
      const key = memoKey({ step: 'train', version: 1, input: { country: 'US' } });
      // `model` is found inside the output; `report` is listed in refs only.
      await memo.put(key, { output: { model, scores: [{ recall: 0.4 }] }, refs: [report], runId: 'run-1', stepKey: 'train[US]' });
      assert.deepEqual((await memo.get(key))?.output, { model, scores: [{ recall: 0.4 }] });

      await store.delete(model);
      assert.equal(await memo.get(key), undefined, 'output ref deleted → miss');
      await store.put({ bytes: 'model weights' }, { name: 'model.pt', producer: producer({ step: 'train[US]', runId: 'run-2' }) });
      assert.ok(await memo.get(key), 'same bytes stored again → hit');

      await store.delete(report.sha256);
      assert.equal(await memo.get(key), undefined, 'listed ref deleted → miss');
    });

    test('delete and clear({ step }) remove entries of one step; clear() removes all', async () => {
      const { store } = await backend.fresh();
      const memo = createMemoTable(store);
      const keys = ['US', 'BR', 'DE'].map((country) => memoKey({ step: 'train', version: 1, input: { country } }));
      const evalKey = memoKey({ step: 'evaluate', version: 1, input: {} });
      for (const [i, key] of keys.entries()) await memo.put(key, { output: i, refs: [], runId: 'r', stepKey: `train[${i}]` });
      await memo.put(evalKey, { output: 'e', refs: [], runId: 'r', stepKey: 'evaluate#2', step: 'evaluate' });

      assert.equal(await memo.delete(keys[0]!), true);
      assert.equal(await memo.delete(keys[0]!), false);
      assert.equal(await memo.get(keys[0]!), undefined);
      assert.equal(await memo.clear({ step: 'train' }), 2);
      assert.equal(await memo.get(keys[1]!), undefined);
      assert.equal(await memo.get(keys[2]!), undefined);
      assert.equal((await memo.get(evalKey))?.output, 'e', 'other steps keep their entries');

      await memo.put(keys[1]!, { output: 1, refs: [], runId: 'r', stepKey: 'train[1]' });
      assert.equal(await memo.clear(), 2);
      assert.equal(await memo.get(evalKey), undefined);
      assert.deepEqual(await store.records.list('memo/'), []);
    });
  });
}
