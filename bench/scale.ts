// Scale benchmark: a Kaon k.map of no-op steps against plain Temporal doing the same work with the same sharding
// (a window of child workflows of 1,000 items, each running one activity per item), same server, same process.
//
//   npm run bench:scale                          # 10,000 items, 2 interleaved rounds, then batch 1/10/100
//   npm run bench:scale -- --items 100000 --rounds 1
//   npm run bench:scale -- --items 100000 --skip-compare --batches 100 --bytes 2048   # 2 KiB results: 0 lost lines?
//   npm run bench:scale -- --items 1000 --skip-compare --python --batches 1,10,100     # Python items/s
//
// Prints items/s for each, their ratio, the largest history of any execution, total events, the process's peak
// RSS (both workers live in it), and Kaon's items/s at batch 1, 10 and 100. It reports; it does not gate.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { readResults } from '../src/data/manifest';
import { createArtifactStore } from '../src/data';
import { shardItemsFor } from '../src/definition/internal/map';
import { createKaonWorker } from '../src/runtime/worker';
import { positiveInt, sideBySide } from './side-by-side';
import { shardWindow } from '../src/workflow/map-coordinator';
import { benchMap, benchMapPy, benchMapSized } from './fixtures/kaon-workflows';
import { pyItem } from './fixtures/noop';
import { noopImpl, sizedImpl } from './fixtures/noop.impl';
import * as plainActivities from './fixtures/plain-activities';
import type { plainSweep } from './fixtures/plain-workflows';

const GOAL_RATIO = 1.15;
const GOAL_BATCH100_ITEMS_PER_S = 5000;


async function histories(client: Client, prefix: string): Promise<{ executions: number; largest: number; total: number; largestBytes: number }> {
  let executions = 0;
  let largest = 0;
  let total = 0;
  let largestBytes = 0;
  for await (const w of client.workflow.list({ query: `WorkflowId STARTS_WITH '${prefix}'` })) {
    const h = await client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
    const n = h.events?.length ?? 0;
    executions++;
    total += n;
    largest = Math.max(largest, n);
    largestBytes = Math.max(largestBytes, temporal.api.history.v1.History.encode(h).finish().length);
  }
  return { executions, largest, total, largestBytes };
}

/** Wall time of each shard (child started → completed), in shard order, from a sweep's coordinator or plain parent. */
async function shardTimes(client: Client, id: string): Promise<number[]> {
  const at = (e: { eventTime?: { seconds?: unknown; nanos?: number | null } | null }) => Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
  const started = new Map<string, number>();
  const times: [string, number][] = [];
  for await (const w of client.workflow.list({ query: `WorkflowId = '${id}'` })) {
    for (const e of (await client.workflow.getHandle(w.workflowId, w.runId).fetchHistory()).events ?? []) {
      const s = e.childWorkflowExecutionStartedEventAttributes;
      const c = e.childWorkflowExecutionCompletedEventAttributes;
      if (s?.workflowExecution?.workflowId) started.set(s.workflowExecution.workflowId, at(e));
      if (c?.workflowExecution?.workflowId) times.push([c.workflowExecution.workflowId, at(e) - (started.get(c.workflowExecution.workflowId) ?? at(e))]);
    }
  }
  const n = (x: string) => Number(/shard-(\d+)$/.exec(x)?.[1] ?? 0);
  return times.sort((a, b) => n(a[0]) - n(b[0])).map(([, t]) => t);
}

function spread(ts: number[]): string {
  if (!ts.length) return 'none';
  const s = (xs: number[]) => xs.map((t) => (t / 1000).toFixed(1)).join(' ');
  return `first ${s(ts.slice(0, 3))} … last ${s(ts.slice(-3))} s (${ts.length} shards)`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { items: { type: 'string' }, rounds: { type: 'string' }, concurrency: { type: 'string' }, address: { type: 'string' }, 'skip-batches': { type: 'boolean' }, 'skip-compare': { type: 'boolean' }, batches: { type: 'string' }, side: { type: 'string' }, bytes: { type: 'string' }, python: { type: 'boolean' } } });
  const bytes = values.bytes === undefined ? undefined : positiveInt(values.bytes, 0, 'bytes');
  const items = positiveInt(values.items, 10_000, 'items');
  const rounds = positiveInt(values.rounds, 2, 'rounds');
  const concurrency = positiveInt(values.concurrency, 1000, 'concurrency');
  const { address, nativeConnection, client, kaon, kaonQueue, plainQueue, close } = await sideBySide('scale', values.address);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-scale-'));
  const store = createArtifactStore(dir, { localDir: dir });

  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
  const kaonWorker = await createKaonWorker({ workflowsPath: require.resolve('./fixtures/kaon-workflows'), activities: [noopImpl, sizedImpl, pyItem], taskQueue: kaonQueue, connection: nativeConnection, shutdownGraceTime: '2s', artifacts: store, workerOptions: { maxConcurrentActivityTaskExecutions: 1000 } });
  const plainWorker = await Worker.create({ connection: nativeConnection, taskQueue: plainQueue, workflowsPath: require.resolve('./fixtures/plain-workflows'), activities: plainActivities, shutdownGraceTime: '2s' });
  const running = Promise.all([kaonWorker.run(), plainWorker.run()]);

  const manifest = await store.put({ bytes: Array.from({ length: items }, (_, i) => `{"i":${i}}\n`).join('') }, { name: 'items.jsonl', producer: { pipeline: 'bench', runId: 'bench', step: 'items', attempt: 1 } });
  const runKaon = async (batch: number) => {
    const t0 = performance.now();
    if (values.python) {
      const run = await kaon.start(benchMapPy, { items: manifest, batch, concurrency });
      const out = await run.result();
      if (out.succeeded !== items) throw new Error(`kaon python sweep: ${out.succeeded} of ${items} succeeded`);
      return { ms: performance.now() - t0, id: run.id };
    }
    if (bytes !== undefined) {
      const run = await kaon.start(benchMapSized, { items: manifest, batch, concurrency, bytes });
      const out = await run.result();
      const ms = performance.now() - t0;
      // Read every line back: each item's own output, none lost, none a placeholder.
      let own = 0;
      let n = 0;
      for await (const l of readResults(store, out.results)) {
        if (l.i === n && l.ok && (l.output as { i: number; pad: string }).i === n && (l.output as { pad: string }).pad.length === bytes) own++;
        n++;
      }
      const h = await histories(client, run.id);
      console.log(`  ${items} items × ${bytes} B at batch ${batch}: ${n} lines, ${own} own outputs, ${items - own} lost; largest history ${h.largest} events, ${(h.largestBytes / 1048576).toFixed(2)} MiB (goal < 10 MiB: ${h.largestBytes < 10 << 20 ? 'PASS' : 'MISS'})`);
      if (out.succeeded !== items || own !== items) throw new Error(`kaon sized sweep: ${out.succeeded} succeeded, ${own} own lines of ${items}`);
      return { ms, id: run.id };
    }
    const run = await kaon.start(benchMap, { items: manifest, batch, concurrency });
    const out = await run.result();
    const ms = performance.now() - t0;
    if (out.succeeded !== items) throw new Error(`kaon sweep: ${out.succeeded} of ${items} succeeded`);
    return { ms, id: run.id };
  };
  const runPlain = async () => {
    const shardItems = shardItemsFor(1);
    const { window, perShard } = shardWindow(concurrency, shardItems, Math.ceil(items / shardItems));
    const id = `scale-plain-${randomUUID().slice(0, 8)}`;
    const t0 = performance.now();
    const out = await client.workflow.execute<typeof plainSweep>('plainSweep', { taskQueue: plainQueue, workflowId: id, args: [items, shardItems, window, perShard] });
    const ms = performance.now() - t0;
    if (out !== items) throw new Error(`plain sweep: ${out} of ${items}`);
    return { ms, id };
  };

  const rate = (ms: number) => (items * 1000) / ms;
  try {
    console.log(`bench:scale: ${items} items, concurrency ${concurrency}, ${rounds} interleaved rounds (A=kaon batch 1, B=plain), server ${address}`);
    const k: number[] = [];
    const p: number[] = [];
    let lastKaon = '';
    let lastPlain = '';
    for (let r = 1; r <= (values['skip-compare'] ? 0 : rounds); r++) {
      for (const side of (r % 2 ? (['kaon', 'plain'] as const) : (['plain', 'kaon'] as const)).filter((x) => !values.side || x === values.side)) {
        const s = side === 'kaon' ? await runKaon(1) : await runPlain();
        (side === 'kaon' ? k : p).push(s.ms);
        if (side === 'kaon') lastKaon = s.id;
        else lastPlain = s.id;
        console.log(`  round ${r} ${side.padEnd(5)} ${(s.ms / 1000).toFixed(1).padStart(7)} s  ${rate(s.ms).toFixed(0).padStart(6)} items/s`);
      }
    }
    if (lastKaon) console.log(`shards kaon  ${spread(await shardTimes(client, `${lastKaon}/benchNoop`))}`);
    if (lastPlain) console.log(`shards plain ${spread(await shardTimes(client, lastPlain))}`);
    if (k.length && p.length) {
      const best = (xs: number[]) => Math.min(...xs);
      const ratio = best(k) / best(p);
      const kh = await histories(client, lastKaon);
      const ph = await histories(client, lastPlain);
      console.log('');
      console.log(`kaon   ${rate(best(k)).toFixed(0).padStart(6)} items/s   ${kh.executions} executions, largest history ${kh.largest} events, ${kh.total} events in all`);
      console.log(`plain  ${rate(best(p)).toFixed(0).padStart(6)} items/s   ${ph.executions} executions, largest history ${ph.largest} events, ${ph.total} events in all`);
      console.log(`ratio  kaon/plain time ${ratio.toFixed(3)} (goal <= ${GOAL_RATIO}: ${ratio <= GOAL_RATIO ? 'PASS' : 'MISS'}); largest history <= 10,240: ${kh.largest <= 10_240 ? 'PASS' : 'MISS'}`);
    }
    if (!values['skip-batches']) {
      console.log('');
      const byBatch: Record<number, number> = {};
      const sizes = (values.batches ?? '1,10,100').split(',').map((b) => positiveInt(b, 1, 'batches'));
      for (const batch of sizes) {
        const s = await runKaon(batch);
        byBatch[batch] = rate(s.ms);
        console.log(`batch ${String(batch).padStart(3)}  ${(s.ms / 1000).toFixed(1).padStart(7)} s  ${rate(s.ms).toFixed(0).padStart(6)} items/s`);
      }
      if (byBatch[100] !== undefined) console.log(`goal   batch 100 >= ${GOAL_BATCH100_ITEMS_PER_S} items/s: ${byBatch[100] >= GOAL_BATCH100_ITEMS_PER_S ? 'PASS' : 'MISS'}`);
    }
    console.log(`peak RSS of the bench process (both workers, client, manifest) ${(peakRss / 1048576).toFixed(0)} MiB (goal < 1024: ${peakRss < 1 << 30 ? 'PASS' : 'MISS'})`);
  } finally {
    clearInterval(sampler);
    kaonWorker.shutdown();
    plainWorker.shutdown();
    await running;
    await close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
