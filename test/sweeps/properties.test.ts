// The sweep's invariants, checked over generated shapes on a real server (fast-check: seeded, shrinking). For any
// item count, batch, concurrency, output size (0 B to near the 256 KiB output limit, around every internal
// threshold), source (inline, staged, manifest), target (TS, Python) and failure pattern:
//   - the results manifest has exactly n lines, and line i is item i's own output (equal to the reference) or
//     its own error;
//   - the sweep's counts equal what the file says;
//   - no item runs to success twice unless a worker kill forced it (TS items, traced by the worker);
//   - every execution's history is ≤ 10,240 events, under Temporal's 10 MiB warning, and no event carries a
//     payload near the 512 KiB blob warning; the worker (a `kaon worker` process) never logs TMPRL1103.
// Some cases kill -9 the worker mid-sweep and start another. KAON_SWEEP_PROP_RUNS and KAON_SWEEP_PROP_SEED widen
// or replay the search (bench/sweep-soak.sh runs more).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { temporal } from '@temporalio/proto';
import fc from 'fast-check';
import { readResults } from '../../src/data/manifest';
import type { Sweep, SweepLine } from '../../src/definition';
import { INLINE_INPUT_BYTES, INLINE_RESULT_BYTES, POOL_FLUSH_BYTES } from '../../src/definition/internal/map';
import { MAX_OUTPUT_BYTES } from '../../src/execution/activities';
import { KaonClient } from '../../src/client';
import { CliProcess, cliEnv } from '../cli/cli-process';
import { reference } from '../fixtures/sweep-props/reference';
import { propSweep } from '../fixtures/sweep-props/workflows';
import { testEnv, type TestEnv } from '../support/temporal';

const RUNS = Number(process.env.KAON_SWEEP_PROP_RUNS ?? 8);
const SEED = Number(process.env.KAON_SWEEP_PROP_SEED ?? 20261208);

const project = ['--workflows', 'test/fixtures/sweep-props/workflows.ts', '--activities', 'test/fixtures/sweep-props/index.ts'];
const trace = path.join(mkdtempSync(path.join(os.tmpdir(), 'kaon-sweep-props-')), 'successes.txt');
let env: TestEnv;
let kaon: KaonClient;
let childEnv: NodeJS.ProcessEnv;
let worker: CliProcess;
/** Worker output of the processes killed so far (each case checks the current one's too). */
let earlierStderr = '';
const startWorker = async () => {
  worker = new CliProcess(['worker', ...project], { env: childEnv });
  await worker.waitFor(/ready/);
};
before(async () => {
  env = await testEnv('sweep-props');
  childEnv = cliEnv({ TEMPORAL_ADDRESS: env.address, KAON_TASK_QUEUE: `props-${randomUUID().slice(0, 8)}`, KAON_ARTIFACTS: `file://${env.artifactsDir}`, KAON_TEST_TRACE: trace });
  kaon = new KaonClient(env.temporal, childEnv.KAON_TASK_QUEUE!, false);
  await startWorker();
});
after(async () => {
  if (process.env.KAON_SWEEP_PROP_LOG) (await import('node:fs')).writeFileSync(process.env.KAON_SWEEP_PROP_LOG, earlierStderr + (worker?.stderr ?? ''));
  worker?.kill();
  await env?.close();
});
const successes = (tag: string): Map<number, number> => {
  const m = new Map<number, number>();
  if (!existsSync(trace)) return m;
  for (const line of readFileSync(trace, 'utf8').split('\n')) {
    const [t, i] = line.split(' ');
    if (t === tag) m.set(Number(i), (m.get(Number(i)) ?? 0) + 1);
  }
  return m;
};

type Kind = 'none' | 'permanent' | 'transient' | 'always' | 'crash';
const OVERHEAD = 64; // the output's JSON around its pad
/** Output sizes around every threshold: a call's inline lines, the shard's pool flush, the per-output limit. */
const SIZES = [0, 1, 200, INLINE_RESULT_BYTES - OVERHEAD - 20, INLINE_RESULT_BYTES - OVERHEAD, INLINE_RESULT_BYTES, 2048, 60 * 1024, POOL_FLUSH_BYTES - OVERHEAD, POOL_FLUSH_BYTES + 10, MAX_OUTPUT_BYTES - OVERHEAD - 40];

const shape = fc
  .record({
    target: fc.constantFrom<'ts' | 'python'>('ts', 'ts', 'ts', 'python'),
    source: fc.constantFrom<'inline' | 'manifest'>('inline', 'manifest'),
    bytes: fc.constantFrom(...SIZES),
    n: fc.integer({ min: 1, max: 2400 }),
    batch: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 60 }), fc.constant(1000)),
    concurrency: fc.integer({ min: 1, max: 150 }),
    failures: fc.array(fc.record({ at: fc.nat(), kind: fc.constantFrom<Kind>('permanent', 'transient', 'always', 'crash') }), { maxLength: 4 }),
    atBatchEnd: fc.boolean(),
    // kill -9 of the worker this many ms into the sweep (then a new one starts), in about one case of six.
    killAfterMs: fc.oneof({ arbitrary: fc.constant(null), weight: 5 }, { arbitrary: fc.integer({ min: 100, max: 1500 }), weight: 1 }),
  })
  .map((c) => {
    // Keep a case within seconds: items per second fall with batch 1, Python starts a process per item, and bytes add up.
    let n = Math.min(c.n, c.target === 'python' ? (c.batch === 1 ? 12 : 300) : c.batch === 1 ? 1200 : 2400, Math.max(1, Math.floor((24 << 20) / Math.max(1, c.bytes))));
    if (c.source === 'inline' && c.bytes > 0) n = Math.min(n, 4000);
    const fail = new Map<number, Kind>();
    for (const f of c.failures) fail.set(f.at % n, f.kind);
    // A failure at the last item of a batch: the case that used to fail its batch-mates.
    if (c.atBatchEnd && c.failures.length) fail.set(Math.min(n, c.batch) - 1, c.failures[0]!.kind);
    return { ...c, n, fail };
  });

async function histories(runId: string): Promise<{ id: string; events: number; bytes: number; maxEvent: number }[]> {
  const out: { id: string; events: number; bytes: number; maxEvent: number }[] = [];
  for await (const w of env.temporal.workflow.list({ query: `WorkflowId STARTS_WITH '${runId}'` })) {
    const h = await env.temporal.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
    const events = h.events ?? [];
    let maxEvent = 0;
    for (const e of events) maxEvent = Math.max(maxEvent, temporal.api.history.v1.HistoryEvent.encode(e).finish().length);
    out.push({ id: `${w.workflowId} (${w.runId})`, events: events.length, bytes: temporal.api.history.v1.History.encode(h).finish().length, maxEvent });
  }
  return out;
}

let cases = 0;
test(`sweep invariants over ${RUNS} generated shapes (seed ${SEED})`, { timeout: 30 * 60_000 }, async (t) => {
  await fc.assert(
    fc.asyncProperty(shape, async (c) => {
      const tag = `c${cases++}`;
      const items = Array.from({ length: c.n }, (_, i) => ({ i, bytes: c.bytes, fail: c.fail.get(i) ?? ('none' as Kind) }));
      const inlineBytes = JSON.stringify(items).length;
      const started = Date.now();
      const run = await kaon.start(propSweep, { tag, items, batch: c.batch, concurrency: c.concurrency, source: c.source, target: c.target });
      let killed = false;
      if (c.killAfterMs !== null) {
        await new Promise((r) => setTimeout(r, c.killAfterMs!));
        const described = await env.temporal.workflow.getHandle(run.id).describe().catch(() => undefined);
        if (described?.status.name === 'RUNNING') {
          worker.child.kill('SIGKILL');
          await worker.exited;
          earlierStderr += worker.stderr;
          killed = true;
          await startWorker();
        }
      }
      const sweep = (await run.result()) as Sweep;
      const lines: SweepLine[] = [];
      for await (const l of readResults(env.artifacts, sweep.results)) lines.push(l);

      assert.equal(lines.length, c.n, 'one line per item');
      const counted = { succeeded: 0, failed: 0, cached: 0, notRun: 0 };
      for (const [i, l] of lines.entries()) {
        assert.equal(l.i, i, `line ${i} is item ${i}'s`);
        const kind = c.fail.get(i) ?? 'none';
        if (kind === 'permanent' || kind === 'always') {
          assert.ok(!l.ok && l.status === 'failed', `item ${i} (${kind}) failed`);
          assert.ok(!l.ok && l.error.includes(`item ${i}`), `item ${i}'s error is its own: ${l.ok ? '' : l.error.slice(0, 200)}`);
        } else {
          assert.ok(l.ok, `item ${i} (${kind}) succeeded: ${l.ok ? '' : l.error.slice(0, 300)}`);
          assert.deepEqual(l.output, reference(i, c.bytes), `item ${i}'s output is its own`);
        }
        if (l.ok) counted.succeeded++;
        else if (l.status === 'failed') counted.failed++;
        else counted.notRun++;
        if (l.ok && l.cached) counted.cached++;
      }
      assert.deepEqual({ succeeded: sweep.succeeded, failed: sweep.failed, cached: sweep.cached, notRun: sweep.notRun }, counted, 'counts equal the file');
      if (c.target === 'ts' && !killed) {
        for (const [i, k] of successes(tag)) assert.equal(k, 1, `item ${i} ran to success once (${k} times)`);
      }
      assert.doesNotMatch(earlierStderr + worker.stderr, /TMPRL1103/, 'the worker never warned of a payload size');
      for (const h of await histories(run.id)) {
        assert.ok(h.events <= 10_240, `${h.id}: ${h.events} events`);
        assert.ok(h.bytes < 10 << 20, `${h.id}: ${h.bytes} bytes of history`);
        assert.ok(h.maxEvent < 512 << 10, `${h.id}: an event of ${h.maxEvent} bytes (TMPRL1103 warns at 512 KiB)`);
      }
      t.diagnostic(`${tag}: ${killed ? `worker killed at ${c.killAfterMs} ms; ` : ''}${c.target} ${c.source}${c.source === 'inline' && inlineBytes > INLINE_INPUT_BYTES ? ' (staged)' : ''} n=${c.n} batch=${c.batch} conc=${c.concurrency} bytes=${c.bytes} fail=${JSON.stringify([...c.fail])} → ${sweep.succeeded} ok, ${sweep.failed} failed in ${Date.now() - started} ms`);
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
});
