// The streaming path stays bounded in memory: a child process puts and reads back 1 GiB (generated as a stream)
// and its peak RSS grows by less than 128 MiB, on both backends.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, statSync } from 'node:fs';
import { backends, runFixture } from './helpers';

const SIZE_MIB = Number(process.env.KAON_TEST_BIG_MIB ?? 1024);
const BUDGET_MIB = 128;

for (const backend of backends()) {
  describe(`streaming memory — ${backend.name} backend`, () => {
    before(() => backend.start());
    after(() => backend.stop());

    test(`put + getStream + getPath of ${SIZE_MIB} MiB grow peak RSS by < ${BUDGET_MIB} MiB`, { timeout: 10 * 60_000 }, async () => {
      const { config, blobs } = await backend.fresh();
      const child = runFixture('big-roundtrip.ts', { ...config, sizeMiB: SIZE_MIB });
      const { code, stdout, stderr } = await child.done();
      assert.equal(code, 0, stderr);
      const r = JSON.parse(stdout.trim().split('\n').pop()!) as { size: number; read: number; file: string; baselineMiB: number; afterPutMiB: number; peakMiB: number; putMs: number; getMs: number; pathMs: number };
      const mibps = (ms: number) => (SIZE_MIB / (ms / 1000)).toFixed(0);
      process.stderr.write(`  ${backend.name}: RSS ${r.baselineMiB.toFixed(0)} → ${r.afterPutMiB.toFixed(0)} (after put) → ${r.peakMiB.toFixed(0)} MiB peak; put ${mibps(r.putMs)} MiB/s, getStream ${mibps(r.getMs)} MiB/s, getPath ${mibps(r.pathMs)} MiB/s\n`);
      assert.equal(r.size, SIZE_MIB * 1024 * 1024);
      assert.equal(r.read, r.size, 'getStream delivered every byte (and verified them)');
      assert.equal(statSync(r.file).size, r.size);
      assert.equal((await blobs()).length, 2, 'the big blob and the warm-up blob');
      assert.ok(r.peakMiB - r.baselineMiB < BUDGET_MIB, `peak RSS grew by ${(r.peakMiB - r.baselineMiB).toFixed(0)} MiB (budget ${BUDGET_MIB})`);
      if (backend.name === 's3') rmSync(r.file, { force: true });
    });
  });
}
