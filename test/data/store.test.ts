import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { ErrorCode, KaonError } from '../../src/definition/errors';
import { createArtifactStore } from '../../src/data';
import { defaultArtifactStore } from '../../src/runtime/artifacts';
import { BUCKET, backends, producer, runFixture } from './helpers';
import { patternChunk, patternSha256 } from './fixtures/content';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function isKaon(code: string, ...mentions: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof KaonError, `expected a KaonError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.retryable, false);
    assert.match(err.message, /To fix: /);
    for (const m of mentions) assert.ok(err.message.includes(m), `message should mention ${m}: ${err.message}`);
    return true;
  };
}

describe('artifact store setting (KAON_ARTIFACTS)', () => {
  test('file:// URLs, bare absolute paths and s3:// URLs pick the backend; anything else is refused', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-url-'));
    try {
      assert.equal(createArtifactStore(`file://${dir}`).url, `file://${dir}`);
      assert.equal(createArtifactStore(dir).url, `file://${dir}`);
      assert.equal(createArtifactStore('s3://my-bucket/a/b/', { s3: { region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } } }).url, 's3://my-bucket/a/b');
      assert.throws(() => createArtifactStore('relative/dir'), isKaon(ErrorCode.config, 'KAON_ARTIFACTS'));
      assert.throws(() => createArtifactStore('s3://Bad_Bucket/x'), isKaon(ErrorCode.config, 'invalid bucket'));
      assert.throws(() => createArtifactStore('s3://bucket/a/../b'), isKaon(ErrorCode.config));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the default store is <KAON_HOME>/artifacts, or KAON_ARTIFACTS when set', () => {
    const saved = { home: process.env.KAON_HOME, artifacts: process.env.KAON_ARTIFACTS };
    try {
      process.env.KAON_HOME = '/tmp/kaon-home-x';
      delete process.env.KAON_ARTIFACTS;
      assert.equal(defaultArtifactStore().url, 'file:///tmp/kaon-home-x/artifacts');
      assert.equal(createArtifactStore(undefined, { home: '/tmp/kaon-home-y' }).url, 'file:///tmp/kaon-home-y/artifacts');
      // The data seam does not look for .kaon/ itself: without url, KAON_ARTIFACTS or home it says what to pass.
      assert.throws(() => createArtifactStore(), isKaon(ErrorCode.config, 'no artifact store location'));
      process.env.KAON_ARTIFACTS = 'file:///tmp/kaon-elsewhere';
      assert.equal(defaultArtifactStore().url, 'file:///tmp/kaon-elsewhere');
      assert.equal(createArtifactStore().url, 'file:///tmp/kaon-elsewhere');
    } finally {
      for (const [k, v] of [['KAON_HOME', saved.home], ['KAON_ARTIFACTS', saved.artifacts]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

for (const backend of backends()) {
  describe(`artifact store — ${backend.name} backend`, () => {
    before(() => backend.start());
    after(() => backend.stop());

    test('content addressing: the same bytes give the same uri and are stored once', async () => {
      const { store, blobs } = await backend.fresh();
      const a = await store.put({ bytes: 'hello kaon' }, { name: 'a.txt', producer: producer({ step: 'one' }) });
      const b = await store.put({ bytes: Buffer.from('hello kaon') }, { name: 'b.txt', producer: producer({ step: 'two', runId: 'run-2' }) });
      const c = await store.put({ bytes: 'other bytes' }, { producer: producer() });
      assert.equal(a.sha256, sha('hello kaon'));
      assert.equal(a.uri, b.uri);
      assert.equal(a.size, 10);
      assert.equal(a.mediaType, 'text/plain');
      assert.equal(a.name, 'a.txt');
      assert.equal(b.name, 'b.txt');
      assert.notEqual(a.uri, c.uri);
      assert.ok(a.uri.endsWith(`/sha256/${a.sha256.slice(0, 2)}/${a.sha256}`), a.uri);
      assert.ok(a.uri.startsWith(backend.name === 'file' ? 'file:///' : `s3://${BUCKET}/`), a.uri);
      assert.deepEqual(await blobs(), [`sha256/${a.sha256.slice(0, 2)}/${a.sha256}`, `sha256/${c.sha256.slice(0, 2)}/${c.sha256}`].sort());
      assert.equal(c.mediaType, 'application/octet-stream');
    });

    test('round trip: path, stream and bytes sources give the same ref; getStream, getPath and getBytes return the bytes', async () => {
      const { store, config } = await backend.fresh();
      const data = Buffer.concat([randomBytes(5 * 1024 * 1024 + 123), patternChunk(1, 4 * 1024 * 1024)]);
      const src = path.join(config.localDir, 'src.bin');
      writeFileSync(src, data);
      const fromPath = await store.put({ path: src }, { name: 'data/x.bin', producer: producer() });
      const fromStream = await store.put({ stream: Readable.from([data.subarray(0, 1000), data.subarray(1000, 7_000_000), data.subarray(7_000_000)]) }, { name: 'data/x.bin', producer: producer() });
      const fromBytes = await store.put({ bytes: new Uint8Array(data) }, { producer: producer() });
      assert.equal(fromPath.sha256, sha(data));
      assert.equal(fromPath.size, data.length);
      assert.equal(fromStream.uri, fromPath.uri);
      assert.equal(fromBytes.uri, fromPath.uri);

      assert.ok((await collect(await store.getStream(fromPath))).equals(data));
      assert.ok((await store.getBytes(fromPath)).equals(data));
      const local = await store.getPath(fromPath);
      assert.ok(readFileSync(local).equals(data));
      if (backend.name === 'file') assert.ok(local.endsWith(fromPath.sha256), 'the file backend hands out the verified blob itself');

      const out = mkdtempSync(path.join(config.localDir, 'out-'));
      const named = await store.getPath(fromPath, out);
      assert.equal(named, path.join(out, 'data', 'x.bin'));
      assert.ok(readFileSync(named).equals(data));
      assert.equal(await store.getPath(fromPath, out), named, 'materialising again reuses the verified copy');
      const unnamed = await store.getPath(fromBytes, out);
      assert.equal(unnamed, path.join(out, fromBytes.sha256));

      const st = await store.stat(fromPath);
      assert.equal(st.size, data.length);
      assert.equal(st.sha256, fromPath.sha256);
      assert.equal(st.uri, fromPath.uri);

      const empty = await store.put({ bytes: '' }, { name: 'empty.json', producer: producer() });
      assert.equal(empty.size, 0);
      assert.equal(empty.mediaType, 'application/json');
      assert.equal((await store.getBytes(empty)).length, 0);
    });

    test('a writer killed mid-write leaves no visible artifact and no blob for its hash', async () => {
      const { store, config, blobs } = await backend.fresh();
      const runId = `run-${randomUUID()}`;
      const chunks = 24;
      const chunkSize = 1024 * 1024;
      const expected = patternSha256(chunks, chunkSize);

      const writer = runFixture('slow-writer.ts', { ...config, mode: 'stream', chunks, chunkSize, delayMs: 40, runId });
      await writer.waitFor(/^HALF$/);
      await writer.kill();
      if (backend.name === 'file') {
        const litter = readdirSync(path.join(fileURLToPath(config.url), 'tmp'));
        assert.equal(litter.length, 1, 'the killed writer left its partial temp file (invisible to readers)');
        assert.match(litter[0]!, /^\..*\.tmp$/);
      }
      assert.equal(await store.exists(expected), false);
      assert.deepEqual(await blobs(), []);
      assert.deepEqual(await store.listByRun(runId), []);
      assert.deepEqual(await store.producedBy(expected), []);

      if (backend.name === 's3') {
        // Also kill it while the multipart upload to the content key is under way.
        const slow = runFixture('slow-writer.ts', { ...config, mode: 'slow-upload', chunks, chunkSize, delayMs: 400, runId });
        await slow.waitFor(/^PART$/);
        await new Promise((r) => setTimeout(r, 150));
        await slow.kill();
        const prefix = config.url.slice(`s3://${BUCKET}/`.length);
        const key = `${prefix}/sha256/${expected.slice(0, 2)}/${expected}`;
        const uploads = await backend.s3!().send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }));
        assert.ok((uploads.Uploads ?? []).some((u) => u.Key === key), 'the writer was killed during its multipart upload');
        await assert.rejects(backend.s3!().send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })), (err: { name?: string }) => err.name === 'NotFound');
        assert.equal(await store.exists(expected), false);
        assert.deepEqual(await blobs(), []);
        assert.deepEqual(await store.listByRun(runId), []);
      }

      // The same content written to the end by a writer that is not killed is stored whole.
      const ok = await store.put({ stream: Readable.from(Array.from({ length: chunks }, (_, i) => patternChunk(i, chunkSize))) }, { producer: producer({ runId }) });
      assert.equal(ok.sha256, expected);
      assert.deepEqual(await blobs(), [`sha256/${expected.slice(0, 2)}/${expected}`]);
    });

    test('a corrupt blob fails the read with a clear non-retryable error naming the artifact', async () => {
      const { store, tamper, config } = await backend.fresh();
      const data = Buffer.concat([patternChunk(7, 3 * 1024 * 1024), Buffer.from('tail')]);
      const ref = await store.put({ bytes: data }, { name: 'model.pt', producer: producer({ step: 'train' }) });
      await tamper(ref.sha256, (b) => {
        const copy = Buffer.from(b);
        copy[1234] = copy[1234]! ^ 0xff;
        return copy;
      });
      const corrupt = isKaon(ErrorCode.artifactCorrupt, '"model.pt"', ref.uri, 'train', 'delete');
      await assert.rejects(collect(await store.getStream(ref)), corrupt);
      await assert.rejects(store.getPath(ref), corrupt);
      const out = mkdtempSync(path.join(config.localDir, 'out-'));
      await assert.rejects(store.getPath(ref, out), corrupt);
      assert.equal(existsSync(path.join(out, 'model.pt')), false, 'nothing is materialised from corrupt bytes');
      await assert.rejects(store.getBytes(ref), corrupt);

      // Truncated bytes are corrupt too; a ref with a wrong size is caught before the hash.
      await tamper(ref.sha256, (b) => b.subarray(0, 100));
      await assert.rejects(collect(await store.getStream(ref)), corrupt);
      assert.equal(await store.exists(ref), false, 'a blob of the wrong size does not count as present');

      // The fix the error names works: delete and put again.
      assert.equal(await store.delete(ref), true);
      await store.put({ bytes: data }, { name: 'model.pt', producer: producer({ step: 'train' }) });
      assert.ok((await store.getBytes(ref)).equals(data));
    });

    test('a deleted blob is missing: exists is false and reads fail with KAON_ARTIFACT_MISSING', async () => {
      const { store } = await backend.fresh();
      const ref = await store.put({ bytes: 'short-lived' }, { name: 'x.txt', producer: producer({ step: 'tmp' }) });
      assert.equal(await store.exists(ref), true);
      assert.equal(await store.exists(ref.sha256), true);
      assert.equal(await store.delete(ref), true);
      assert.equal(await store.delete(ref), false);
      assert.equal(await store.exists(ref), false);
      const missing = isKaon(ErrorCode.artifactMissing, '"x.txt"', 're-run step "tmp"');
      await assert.rejects(store.getStream(ref), missing);
      await assert.rejects(store.getPath(ref), missing);
      await assert.rejects(store.stat(ref), missing);
      // A ref from another store says where its bytes were.
      await assert.rejects(store.getStream({ ...ref, uri: 's3://elsewhere/sha256/xx/yy' }), isKaon(ErrorCode.artifactMissing, 's3://elsewhere', 'KAON_ARTIFACTS'));
    });

    test('unsafe names are refused and nothing is written', async () => {
      const { store, blobs } = await backend.fresh();
      const bad = ['../escape.txt', 'a/../../b', '/etc/passwd', 'C:/x', 'a\\b', 'bell\u0007.txt', 'nul\u0000', 'line\nbreak', '', 'x'.repeat(256), 'a//b', 'dir/', './a'];
      for (const name of bad) {
        await assert.rejects(store.put({ bytes: 'payload' }, { name, producer: producer() }), isKaon(ErrorCode.artifactName, 'To fix'), `name ${JSON.stringify(name)}`);
      }
      await assert.rejects(store.put({ bytes: 'payload' }, { name: 'ok.txt', producer: { pipeline: 'p' } as never }), isKaon(ErrorCode.badInput, 'producer'));
      await assert.rejects(store.put({ path: '/nonexistent/kaon/file' }, { producer: producer() }), isKaon(ErrorCode.badInput, 'does not exist'));
      await assert.rejects(store.put({ bytes: 'x', path: '/tmp' } as never, { producer: producer() }), isKaon(ErrorCode.badInput, 'exactly one'));
      assert.deepEqual(await blobs(), []);
      assert.deepEqual(await store.listByRun('run-1'), []);

      const ok = await store.put({ bytes: 'payload' }, { name: 'features/US.parquet', producer: producer() });
      assert.equal(ok.name, 'features/US.parquet');
      assert.equal(ok.mediaType, 'application/vnd.apache.parquet');
      assert.equal((await store.put({ bytes: 'payload' }, { name: 'v1..2.txt', producer: producer() })).name, 'v1..2.txt');
    });

    test('lineage answers what produced X, what used X, and what a run produced', async () => {
      const { store } = await backend.fresh();
      const raw = await store.put({ bytes: 'raw rows' }, { name: 'raw.csv', producer: producer({ runId: 'r1', step: 'ingest' }) });
      const features = await store.put({ bytes: 'features' }, { name: 'features.parquet', producer: producer({ runId: 'r1', step: 'featurize' }), inputs: [raw] });
      // The same bytes produced again by another step of another run: a second record, the same blob.
      const again = await store.put({ bytes: 'features' }, { name: 'features.parquet', producer: producer({ runId: 'r2', step: 'featurize-v2' }), inputs: [raw] });
      const model = await store.put({ bytes: 'weights' }, { name: 'model.pt', producer: producer({ runId: 'r2', step: 'train[US]' }), inputs: [features, raw] });
      assert.equal(again.uri, features.uri);

      const made = await store.producedBy(features);
      assert.deepEqual(made.map((r) => r.producer.step).sort(), ['featurize', 'featurize-v2']);
      assert.deepEqual(made[0]!.inputs.map((i) => i.sha256), [raw.sha256]);
      assert.equal(made[0]!.inputs[0]!.name, 'raw.csv');
      assert.ok(!Number.isNaN(Date.parse(made[0]!.createdAt)));

      const fromRaw = await store.usedBy(raw.sha256);
      assert.deepEqual(fromRaw.map((r) => `${r.producer.step}:${r.ref.name}`).sort(), ['featurize-v2:features.parquet', 'featurize:features.parquet', 'train[US]:model.pt']);
      const fromFeatures = await store.usedBy(features);
      assert.deepEqual(fromFeatures.map((r) => r.ref.sha256), [model.sha256]);
      assert.deepEqual(fromFeatures[0]!.inputs.map((i) => i.sha256).sort(), [features.sha256, raw.sha256].sort());
      assert.deepEqual(await store.usedBy(model), []);
      assert.deepEqual((await store.producedBy(model.sha256)).map((r) => r.producer), [model.producer]);

      assert.deepEqual((await store.listByRun('r1')).map((r) => r.name).sort(), ['features.parquet', 'raw.csv']);
      assert.deepEqual((await store.listByRun('r2')).map((r) => `${r.producer.step}:${r.name}`).sort(), ['featurize-v2:features.parquet', 'train[US]:model.pt']);
      assert.deepEqual(await store.listByRun('r3'), []);

      // A retried put of the same thing keeps one record; run ids that are not plain path segments are safe.
      await store.put({ bytes: 'weights' }, { name: 'model.pt', producer: producer({ runId: 'r2', step: 'train[US]' }), inputs: [raw, features] });
      assert.equal((await store.producedBy(model)).length, 1);
      await store.put({ bytes: 'odd' }, { producer: producer({ runId: '../../odd/run id' }) });
      assert.equal((await store.listByRun('../../odd/run id')).length, 1);
    });
  });
}
