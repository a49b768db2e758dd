// Verified reads near the limit: verification records (a verified blob is not hashed again until it changes), the
// one-stage verified stream, and step inputs hard-linked to read-only blobs.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { createArtifactStore, type ArtifactStore, type ArtifactStoreOptions } from '../../src/data';
import { hashFile } from '../../src/data/streams';
import { ErrorCode, KaonError } from '../../src/definition/errors';
import { defineStep, python } from '../../src/definition/step';
import { defaultExecutors } from '../../src/runtime/worker';
import { fakeContext } from '../execution/fake-context';
import { ROOT, producer } from './helpers';

const isRoot = process.getuid?.() === 0;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;

function corrupt(e: unknown): boolean {
  return e instanceof KaonError && e.code === ErrorCode.artifactCorrupt;
}

async function drain(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('verified local reads', () => {
  let tmp: string;
  let hashed: string[];
  const open = (opts: ArtifactStoreOptions = {}): ArtifactStore => {
    const dir = mkdtempSync(path.join(tmp, 'store-'));
    return createArtifactStore(`file://${dir}`, { localDir: dir, hashFile: (f) => (hashed.push(f), hashFile(f)), ...opts });
  };
  /** A blob written a minute ago (a fresh one is "racy": hashed but never recorded, see verified.ts). */
  const age = (file: string) => {
    const t = new Date(Date.now() - 60_000);
    chmodSync(file, 0o444);
    utimesSync(file, t, t);
  };

  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-verified-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test('a verified blob is not hashed again until it changes; a fresh (racy) blob is hashed every time', async () => {
    hashed = [];
    const store = open();
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const ref = await store.put({ bytes: data }, { name: 'x.bin', producer: producer() });
    const blob = await store.getPath(ref);
    await store.getPath(ref);
    assert.equal(hashed.length, 2, 'just written: its mtime is too recent to trust a record, so each read hashes');
    age(blob);
    hashed = [];
    assert.equal(await store.getPath(ref), blob);
    assert.equal(hashed.length, 1, 'first read after ageing: hashed, then recorded');
    for (let i = 0; i < 3; i++) assert.equal(await store.getPath(ref), blob);
    assert.equal(hashed.length, 1, 'the record matches: no more hashing');
    assert.ok(readFileSync(blob).equals(data));

    // touch: same bytes, new mtime → hashed again (and fine), recorded again once old
    const later = new Date(Date.now() - 30_000);
    utimesSync(blob, later, later);
    await store.getPath(ref);
    assert.equal(hashed.length, 2);
    await store.getPath(ref);
    assert.equal(hashed.length, 2);

    // delete drops the record with the blob
    await store.delete(ref);
    await assert.rejects(store.getPath(ref), (e) => e instanceof KaonError && e.code === ErrorCode.artifactMissing);
    await store.put({ bytes: data }, { name: 'x.bin', producer: producer() });
    age(blob);
    hashed = [];
    await store.getPath(ref);
    assert.equal(hashed.length, 1, 'a re-put blob is verified afresh');
  });

  test('a blob changed in place (same size) or replaced behind a matching record is caught', async () => {
    hashed = [];
    const store = open();
    const data = randomBytes(1024 * 1024);
    const ref = await store.put({ bytes: data }, { producer: producer() });
    const blob = await store.getPath(ref);
    age(blob);
    await store.getPath(ref);
    await store.getPath(ref);
    assert.equal(hashed.length, 2, 'recorded after the first aged read');

    // in place, same size: the write moves mtime
    chmodSync(blob, 0o644);
    const fd = openSync(blob, 'r+');
    writeSync(fd, Buffer.from('XXXX'), 0, 4, 1000);
    closeSync(fd);
    await assert.rejects(store.getPath(ref), corrupt);
    assert.equal(hashed.length, 3);
    await assert.rejects(store.getPath(ref), corrupt, 'never recorded as good');

    // replaced by another file with the recorded mtime restored: the inode differs
    const fresh = await store.put({ bytes: data }, { producer: producer() });
    assert.equal(fresh.sha256, ref.sha256);
    age(blob);
    await store.getPath(ref); // recorded
    const n = hashed.length;
    const st = statSync(blob);
    const forged = path.join(path.dirname(blob), 'forged');
    const bad = Buffer.from(data);
    bad[5] = bad[5]! ^ 0xff;
    writeFileSync(forged, bad);
    utimesSync(forged, st.atime, st.mtime);
    renameSync(forged, blob);
    await assert.rejects(store.getPath(ref), corrupt);
    assert.equal(hashed.length, n + 1);
  });

  test('getStream: one stage, large chunks, verified; corrupt, truncated and longer blobs fail', async () => {
    const store = open();
    const data = randomBytes(5 * 1024 * 1024 + 3);
    const ref = await store.put({ bytes: data }, { producer: producer() });
    const s = await store.getStream(ref);
    const got = await drain(s);
    assert.ok(got.equals(data));
    const blob = await store.getPath(ref);
    for (const bad of [Buffer.concat([data, Buffer.from('x')]), data.subarray(0, data.length - 1), Buffer.concat([data.subarray(0, 10), Buffer.from('Z'), data.subarray(11)])]) {
      chmodSync(blob, 0o644);
      writeFileSync(blob, bad);
      await assert.rejects(drain(await store.getStream(ref)), corrupt);
    }
    rmSync(blob);
    await assert.rejects(store.getStream(ref), (e) => e instanceof KaonError && e.code === ErrorCode.artifactMissing);
    // A consumer that stops early does not leave the file open or the stream hanging.
    await store.put({ bytes: data }, { producer: producer() });
    const early = await store.getStream(ref);
    for await (const _ of early) break;
    assert.ok(early.destroyed);
  });

  test('getPath(ref, dir, { link: true }): a hard link to the read-only blob; a non-root writer gets EACCES', async (t) => {
    const store = open({ links: 'always' });
    const data = Buffer.from('linked bytes\n');
    const ref = await store.put({ bytes: data }, { name: 'in.txt', producer: producer() });
    const blob = await store.getPath(ref);
    chmodSync(blob, 0o644); // someone loosened it: linking makes it read-only again
    const dir = mkdtempSync(path.join(tmp, 'inputs-'));
    const p = await store.getPath(ref, dir, { link: true });
    assert.equal(p, path.join(dir, 'in.txt'));
    assert.equal(statSync(p).ino, statSync(blob).ino, 'a hard link, not a copy');
    assert.equal(statSync(blob).mode & 0o777, 0o444);
    assert.equal(await store.getPath(ref, dir, { link: true }), p, 'linking again is a no-op');
    if (!isRoot) {
      assert.throws(() => writeFileSync(p, 'x', { flag: 'a' }), /EACCES/);
    } else if (hasSetpriv) {
      chmodSync(tmp, 0o755);
      chmodSync(dir, 0o755);
      const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', `cat '${p}' > /dev/null || exit 7; echo tampered >> '${p}'`], { encoding: 'utf8' });
      assert.notEqual(r.status, 7, `nobody can read the input: ${r.stderr}`);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /Permission denied/);
    } else {
      t.diagnostic('running as root without setpriv: the EACCES check of a non-root writer is skipped');
    }
    assert.ok(readFileSync(blob).equals(data));
    assert.equal(sha(readFileSync(await store.getPath(ref))), ref.sha256);

    // links: 'never' (and 'auto' as root) copies
    const copyDir = mkdtempSync(path.join(tmp, 'copies-'));
    const c = await open({ links: 'never' }).put({ bytes: data }, { name: 'in.txt', producer: producer() });
    const never = createArtifactStore(c.uri.replace(/\/sha256\/.*$/, ''), { links: 'never' });
    const copied = await never.getPath(c, copyDir, { link: true });
    assert.notEqual(statSync(copied).ino, statSync(await never.getPath(c)).ino);
  });

  test('a Python step that writes its input cannot change the store (EACCES through the link; a copy as root)', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(path.join(tmp, 'step-store-'));
    const store = createArtifactStore(`file://${dir}`, { localDir: dir });
    const data = Buffer.from('a,b\n1,2\n');
    const ref = await store.put({ bytes: data }, { name: 'data.csv', producer: producer() });
    const blob = await store.getPath(ref);
    const work = path.join(dir, 'work'); // same filesystem as the store, so a link is possible
    mkdirSync(work);
    const def = defineStep({ name: 'writesInput', version: 1, input: z.object({ data: z.any() }), output: z.any(), run: python('test/fixtures/scripts/write_input.py') });
    const out = (await defaultExecutors(store, { root: ROOT, workDir: work }).python!(def, { data: ref }, fakeContext())) as { ino: number; wrote: boolean; errno?: string };
    if (isRoot) {
      assert.notEqual(out.ino, statSync(blob).ino, 'as root the permission bits would not hold: the step gets a copy');
    } else {
      assert.equal(out.ino, statSync(blob).ino, 'the input is a hard link to the blob');
      assert.equal(out.wrote, false);
      assert.equal(out.errno, 'EACCES');
    }
    assert.ok(readFileSync(blob).equals(data), 'the store blob is unchanged');
    assert.equal(sha(readFileSync(await store.getPath(ref))), ref.sha256);
    assert.ok(!existsSync(path.join(work, 'x')));
  });
});
