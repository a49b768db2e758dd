// k.map with batch: a worker process killed mid-batch. The retry (on another worker) skips the items the batch
// had reported done by heartbeat, and each item's output appears exactly once in the results manifest.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { KaonClient } from '../../src/client';
import { readResults } from '../../src/data/manifest';
import { CliProcess, cliEnv } from '../cli/cli-process';
import { manifestSweep } from '../fixtures/scale/workflows';
import { testEnv, type TestEnv } from '../support/temporal';

const project = ['--workflows', 'test/fixtures/scale/workflows.ts', '--activities', 'test/fixtures/scale/index.ts'];
const workers: CliProcess[] = [];
let env: TestEnv | undefined;
after(async () => {
  for (const w of workers) w.kill();
  await env?.close();
});

test('a worker killed mid-batch: the retry skips the items already done; every output appears once', async (t) => {
  env = await testEnv('batch');
  const trace = path.join(mkdtempSync(path.join(os.tmpdir(), 'kaon-batch-')), 'trace.txt');
  const childEnv = cliEnv({ TEMPORAL_ADDRESS: env.address, KAON_TASK_QUEUE: `batch-${randomUUID().slice(0, 8)}`, KAON_ARTIFACTS: `file://${env.artifactsDir}`, KAON_TEST_TRACE: trace });
  const kaon = new KaonClient(env.temporal, childEnv.KAON_TASK_QUEUE!, false);
  const first = new CliProcess(['worker', ...project], { env: childEnv });
  workers.push(first);
  await first.waitFor(/ready/);

  // 120 items of 100 ms in batches of 40, one item (so one batch) at a time: each batch takes 4 s, and heartbeats (throttled to
  // one per 2 s for a 3 s heartbeat timeout) report its done items.
  const run = await kaon.start(manifestSweep, { n: 120, batch: 40, concurrency: 1, ms: 100 });
  const ran = () => (existsSync(trace) ? readFileSync(trace, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split(' ').map(Number) as [number, number]) : []);
  for (let i = 0; i < 400 && ran().length < 72; i++) await new Promise((r) => setTimeout(r, 50));
  first.child.kill('SIGKILL');
  const beforeKill = ran();
  assert.ok(beforeKill.length >= 72 && beforeKill.length < 80, `killed inside the second batch (${beforeKill.length} items ran)`);

  const second = new CliProcess(['worker', ...project], { env: childEnv });
  workers.push(second);
  await second.waitFor(/ready/);
  const { sweep } = await run.result();
  second.kill();

  assert.equal(sweep.succeeded, 120);
  const outputs: number[] = [];
  for await (const l of readResults(env.artifacts, sweep.results)) if (l.ok) outputs.push((l.output as { i: number }).i);
  assert.deepEqual(outputs, Array.from({ length: 120 }, (_, i) => i), 'each item once, in order');
  const all = ran();
  const retried = all.filter(([, attempt]) => attempt === 2).map(([i]) => i);
  const doneInKilledBatch = new Set(beforeKill.filter(([i]) => i >= 40 && i < 80).map(([i]) => i));
  assert.ok(retried.every((i) => i >= 40 && i < 80), 'only the killed batch was retried');
  assert.ok(retried.length < 40 - 10, `the retry skipped the items heartbeated done: it ran ${retried.length} of 40 (${doneInKilledBatch.size} were done before the kill)`);
  for (let i = 40; i < 80; i++) if (!doneInKilledBatch.has(i)) assert.ok(retried.includes(i), `item ${i}, not done before the kill, ran on the retry`);
  t.diagnostic(`killed batch: ${doneInKilledBatch.size} done before the kill, ${retried.length} ran on the retry`);
});
