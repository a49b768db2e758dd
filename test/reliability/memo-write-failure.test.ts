// A failed memo or lineage write after a step succeeded does not fail the step: the output is valid and already
// on its way into history. It warns (worker log) and says so in the step's run-state note. The failures are
// injected through the store's backend (dependency injection: chmod does not deny a root test runner).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Backend, RecordStore } from '../../src/data/backend';
import { FileBackend } from '../../src/data/file-backend';
import { createArtifactStore, type ArtifactStore } from '../../src/data/store';
import type { KaonWorker } from '../../src/runtime/worker';
import { saverWorker } from '../fixtures/memo-revalidate/steps';
import { saved } from '../fixtures/memo-revalidate/workflows';
import { ROOT, testEnv, type TestEnv } from '../support/temporal';

let env: TestEnv;
let dir: string;
let store: ArtifactStore;
let worker: KaonWorker;
let running: Promise<void>;
/** Record keys whose writes fail (EACCES, as from a read-only volume). */
let refuse: RegExp | undefined;

function failingRecords(inner: RecordStore): RecordStore {
  return {
    get: (k) => inner.get(k),
    list: (p) => inner.list(p),
    delete: (k) => inner.delete(k),
    put: async (k, v) => {
      if (refuse?.test(k)) throw Object.assign(new Error(`EACCES: permission denied, open '${k}'`), { code: 'EACCES' });
      return inner.put(k, v);
    },
  };
}

before(async () => {
  env = await testEnv('memo-write-failure');
  dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-memo-fail-'));
  const file = new FileBackend(dir);
  const records = failingRecords(file.records);
  // The file backend, with its records behind the failing wrapper (methods stay bound to the real backend).
  const backend = new Proxy(file, {
    get: (t, p) => {
      if (p === 'records') return records;
      const v = Reflect.get(t, p, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  }) as Backend;
  store = createArtifactStore(undefined, { backend, localDir: dir });
  worker = await env.worker({ workflowsPath: path.join(ROOT, 'test/fixtures/memo-revalidate/workflows.ts'), activities: saverWorker, artifacts: store });
  running = worker.run();
});

after(async () => {
  worker.shutdown();
  await running;
  await env.close();
  rmSync(dir, { recursive: true, force: true });
});

const stepOf = async (run: { progress(): Promise<{ steps: { step: string; status: string; note?: string }[] }> }) => (await run.progress()).steps[0];

describe('a failed memo or lineage write after success warns, it does not fail the step', () => {
  test('the memo table cannot be written: the step succeeds, says so, and the next run recomputes', { timeout: 60_000 }, async () => {
    const n = Date.now();
    refuse = /^memo\//;
    try {
      const run = await env.kaon.start(saved, { n });
      const out = (await run.result()) as { n: number };
      assert.equal(out.n, n);
      const st = await stepOf(run);
      assert.equal(st?.status, 'succeeded');
      assert.match(st?.note ?? '', /writing the cache entry of step "mrSaver" failed after the step succeeded \(EACCES: permission denied.*\); the output stands, but the next run with this input recomputes it/);
      const again = await env.kaon.start(saved, { n });
      await again.result();
      assert.equal((await stepOf(again))?.status, 'succeeded', 'nothing was cached');
      assert.equal((await store.listByRun(run.id)).length, 1, 'lineage was still recorded');
    } finally {
      refuse = undefined;
    }
    const healed = await env.kaon.start(saved, { n });
    await healed.result();
    const cached = await env.kaon.start(saved, { n });
    await cached.result();
    assert.equal((await stepOf(cached))?.status, 'cached', 'once the store is writable again, caching works');
  });

  test('lineage cannot be written: the step succeeds and says its artifacts are missing from the listing', { timeout: 60_000 }, async () => {
    const n = Date.now() + 1;
    refuse = /^(lineage|runs|used-by)\//;
    try {
      const run = await env.kaon.start(saved, { n });
      const out = (await run.result()) as { file: { sha256: string } };
      const st = await stepOf(run);
      assert.equal(st?.status, 'succeeded');
      assert.match(st?.note ?? '', /recording lineage failed after the step succeeded \(EACCES.*\); the output stands, but the run's artifact listing and lineage miss this step's artifacts/);
      assert.equal(await store.exists(out.file.sha256), true, 'the artifact itself is stored');
      assert.deepEqual(await store.listByRun(run.id), []);
    } finally {
      refuse = undefined;
    }
  });
});
