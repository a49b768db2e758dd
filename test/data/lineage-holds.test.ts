// The store holds an attempt's lineage until commit: nothing of it is visible before, nothing after a discard,
// and puts by other producers (other attempts, local runs) record at once.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { createArtifactStore } from '../../src/data/store';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-holds-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const store = createArtifactStore(dir, { localDir: dir });
const producer = (attempt: number) => ({ pipeline: 'p', runId: 'run-holds', step: 'train', attempt });

describe('ArtifactStore.holdLineage', () => {
  test('held records appear on commit, never after a discard; other producers are not held', async () => {
    const first = store.holdLineage(producer(1));
    const a = await store.put({ bytes: 'attempt 1' }, { name: 'a.txt', producer: producer(1) });
    const other = await store.put({ bytes: 'someone else' }, { name: 'o.txt', producer: producer(9) });
    assert.equal(first.size, 1);
    assert.equal(await store.exists(a), true, 'the blob is stored at once');
    assert.deepEqual((await store.listByRun('run-holds')).map((r) => r.name), ['o.txt'], 'only the unheld put is listed');
    first.discard();
    await first.commit(); // a commit after a discard writes nothing
    assert.deepEqual(await store.producedBy(a), []);

    const second = store.holdLineage(producer(2));
    const b = await store.put({ bytes: 'attempt 2' }, { name: 'b.txt', producer: producer(2), inputs: [other] });
    assert.deepEqual(await store.usedBy(other), []);
    await second.commit();
    assert.deepEqual((await store.listByRun('run-holds')).map((r) => r.name).sort(), ['b.txt', 'o.txt']);
    assert.deepEqual((await store.producedBy(b)).map((r) => r.producer.attempt), [2]);
    assert.deepEqual((await store.usedBy(other)).map((r) => r.ref.sha256), [b.sha256]);
    const late = await store.put({ bytes: 'after commit' }, { name: 'c.txt', producer: producer(2) });
    assert.equal((await store.producedBy(late)).length, 1, 'after commit, puts record at once again');
  });
});
