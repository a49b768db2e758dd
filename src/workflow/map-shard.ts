// A sweep shard: one child workflow running items [start, end) of a k.map, with its own history. It reads its
// items (inline, or manifest slices through an activity), runs them one or a batch per activity call, and
// writes its results manifest. It returns counts; it throws only when cancelled.
import { artifactBase, boundedId } from '../definition/internal/ids';
import {
  ActivityCancellationType,
  CancellationScope,
  condition,
  CancelledFailure,
  defineQuery,
  TimeoutFailure,
  executeChild,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  FAILURE_TEXT_CHARS,
  MapActivity,
  MAX_LISTED_FAILURES,
  POOL_FLUSH_BYTES,
  SLICE_ITEMS,
  SWEEP_QUERY,
  type AssembleCall,
  type BatchBeat,
  type BatchCall,
  type BatchResult,
  type BlobRef,
  type CallOutcome,
  type ResultPart,
  type ShardArgs,
  type SliceCall,
  type ShardResult,
  type SweepProgress,
  type WrittenResults,
} from '../definition/internal/map';
import type { SweepLine } from '../definition/sweep';
import { pausedSignal } from './control';
import { childMessage, failureMessage } from './failures';
import { now } from './run-state-tracker';

const retry = { maximumAttempts: 5, initialInterval: '500ms' } as const;
// Every internal activity is short or heartbeats: a lost worker costs at most its heartbeat timeout.
const io = proxyActivities<{
  [MapActivity.pool](c: { lines: SweepLine[] }): Promise<BlobRef>;
  [MapActivity.prior](a: { shardId: string }): Promise<ResultPart | null>;
  [MapActivity.slice](c: SliceCall): Promise<unknown[]>;
}>({ startToCloseTimeout: '1m', retry });
const longIo = proxyActivities<{
  [MapActivity.assemble](c: AssembleCall): Promise<WrittenResults>;
}>({ startToCloseTimeout: '30m', heartbeatTimeout: '20s', retry });

export const sweepQuery = defineQuery<SweepProgress>(SWEEP_QUERY);

export async function kaonMapShard(args: ShardArgs): Promise<ShardResult> {
  const { spec, start, end } = args;
  const info = workflowInfo();
  const total = end - start;
  const counts = { succeeded: 0, failed: 0, cached: 0, notRun: 0 };
  const failures: { index: number; error: string }[] = [];
  let running = 0;
  const startedAt = now();
  setHandler(sweepQuery, () => ({ key: spec.key, total, running, startedAt, rate: rate(), ...counts }));
  const rate = () => ((counts.succeeded + counts.failed) * 1000) / Math.max(1, now() - startedAt);
  // Web UI details every 1% of the items (and at the end), without a microtask per activation.
  const step = Math.max(1, Math.floor(total / 100));
  let published = -1;
  const publish = (force = false) => {
    const done = counts.succeeded + counts.failed + counts.notRun;
    if (!force && done - published < step) return;
    published = done;
    setCurrentDetails(`**${spec.key}** shard ${args.shard}: items ${start}–${end - 1} — ${counts.succeeded} succeeded (${counts.cached} cached), ${counts.failed} failed, ${running} running`);
  };
  publish(true);

  // Results: a call's part is recorded by call index; inline lines are pooled and flushed as pool blobs. No line is
  // ever written twice or filled in for a result that exists (the assembly refuses both).
  let pool: SweepLine[] = [];
  let poolBytes = 0;
  const pools: BlobRef[] = [];
  const parts: AssembleCall['parts'] = [];
  const producer = { pipeline: spec.pipeline, runId: info.workflowId, step: spec.key, attempt: 1 };
  const failed = (index: number, error: string) => {
    if (failures.length < MAX_LISTED_FAILURES) failures.push({ index, error: error.slice(0, FAILURE_TEXT_CHARS) });
  };
  const tally = (l: SweepLine) => {
    if (l.ok) {
      counts.succeeded++;
      if (l.cached) counts.cached++;
    } else if (l.status === 'failed') {
      counts.failed++;
      failed(l.i, l.error);
    } else counts.notRun++;
  };
  const keep = (lines: SweepLine[]) => {
    for (const l of lines) {
      pool.push(l);
      poolBytes += JSON.stringify(l).length;
    }
  };
  const flush = async () => {
    const lines = pool;
    pool = [];
    poolBytes = 0;
    pools.push(await io[MapActivity.pool]({ lines }));
  };
  /** A finished call: its part, or its lines into the pool. */
  const took = (c: number, r: BatchResult) => {
    counts.succeeded += r.succeeded;
    counts.failed += r.failed;
    counts.cached += r.cached;
    for (const f of r.failures ?? []) failed(f.index, f.error);
    if (r.part) parts.push({ c, part: r.part });
    else keep(r.lines ?? []);
  };
  /** What a call that was cancelled, or failed for good, had done: its items' own outcomes are kept. */
  const salvaged = (o: CallOutcome | undefined): Set<number> => {
    const kept = new Set<number>();
    if (!o) return kept;
    if (o.part) {
      // Only a cancelled call hands back a part (of the items it finished): pooled, as the assembly reads pools whole.
      pools.push(o.part);
      return kept;
    }
    for (const l of o.lines ?? []) {
      kept.add(l.i);
      tally(l);
    }
    keep(o.lines ?? []);
    return kept;
  };

  // Items: inline inputs, or read by the worker from the manifest: inputs never enter this history.
  const sliceOf = (first: number, count: number): BatchCall['slice'] => {
    const src = spec.source;
    if (src.kind !== 'manifest') throw new Error('unreachable: inline shards carry their inputs');
    const a = Math.floor((first - start) / SLICE_ITEMS);
    const b = Math.floor((first + count - 1 - start) / SLICE_ITEMS);
    return { ref: src.ref, offsets: args.offsets!.slice(a, b + 1), sliceStart: start + a * SLICE_ITEMS, first, count, template: src.template };
  };

  // On resume, the earlier run's results for this same shard.
  const prior = spec.resumeFrom ? await io[MapActivity.prior]({ shardId: boundedId(`${spec.resumeFrom}/shard-${args.shard}`) }) : null;

  const batch = spec.batch;
  const calls = Math.ceil(total / batch);
  // `concurrency` is items running at once: a call runs its items one after another, so each lane is one item.
  const lanesCount = Math.max(1, Math.min(calls, args.concurrency));
  const target = spec.target;
  const baseOptions = target.kind === 'step' ? { ...target.options, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED, priority: spec.priority } : undefined;
  const childRun = spec.childRun as { resumeFrom?: { workflowId: string } } | undefined;
  // A pipeline item's input is its child's argument, so here (only) the shard reads manifest slices itself.
  const slices = new Map<number, Promise<unknown[]>>();
  const inputOf = async (i: number): Promise<unknown> => {
    if (args.inputs) return args.inputs[i - start];
    const src = spec.source;
    if (src.kind !== 'manifest') throw new Error('unreachable: inline shards carry their inputs');
    const s = Math.floor((i - start) / SLICE_ITEMS);
    let p = slices.get(s);
    if (!p) {
      for (const k of slices.keys()) if (k < s) slices.delete(k);
      const first = start + s * SLICE_ITEMS;
      p = io[MapActivity.slice]({ ref: src.ref, offset: args.offsets![s]!, start: first, count: Math.min(SLICE_ITEMS, end - first), template: src.template });
      slices.set(s, p);
    }
    return (await p)[(i - start) % SLICE_ITEMS];
  };
  const runChildItem = async (i: number): Promise<SweepLine> => {
    const input = await inputOf(i);
    try {
      const output = await executeChild(target.name, {
        workflowId: boundedId(`${info.workflowId}/${i}`),
        taskQueue: info.taskQueue,
        args: [input, { ...childRun, ...(childRun?.resumeFrom && spec.resumeFrom ? { resumeFrom: { ...childRun.resumeFrom, workflowId: boundedId(`${boundedId(`${spec.resumeFrom}/shard-${args.shard}`)}/${i}`) } } : {}) }],
        staticSummary: `${target.name} — item ${i} of sweep ${spec.key} (${spec.parentId})`,
        priority: spec.priority,
      });
      return { i, ok: true, output };
    } catch (err) {
      if (isCancellation(err)) throw err;
      return { i, ok: false, status: 'failed', error: childMessage(err) };
    }
  };
  const priorRef = prior ? { ref: prior.ref, start } : undefined;
  /** The activity of one call. Built without object spread: the bundle compiles spread into helper calls. */
  const stepCall = (first: number, last: number): Promise<BatchResult> => {
    const opts = Object.assign({}, baseOptions, { activityId: boundedId(first === last ? `${spec.key}[${first}]` : `${spec.key}[${first}-${last}]`) });
    const call: BatchCall = { key: spec.key, pipeline: spec.pipeline, cache: spec.cache };
    if (args.inputs) {
      const items: { i: number; input: unknown }[] = [];
      for (let i = first; i <= last; i++) items.push({ i, input: args.inputs[i - start] });
      call.items = items;
    } else call.slice = sliceOf(first, last - first + 1);
    if (priorRef) call.prior = priorRef;
    if (target.kind === 'step' && target.itemTimeoutMs && last > first) call.itemTimeoutMs = target.itemTimeoutMs;
    // No per-item summary: the activity id already reads `sweep[123]`, and 100,000 summaries are history bytes.
    return proxyActivities<Record<string, (c: BatchCall) => Promise<BatchResult>>>(opts)[target.name]!(call);
  };
  /** Lines for a call that failed for good: items with an outcome keep it; the one running failed; the rest did not run. */
  const failedCall = (first: number, last: number, err: unknown) => {
    const error = failureMessage(err);
    const beat = lastBeatOf(err);
    const kept = salvaged(beat ? { first, count: last - first + 1, lines: beat.done } : undefined);
    for (const cp of beat?.checkpoints ?? []) {
      pools.push({ uri: cp.uri, sha256: cp.sha256, size: cp.size });
      for (const i of cp.items) kept.add(i);
    }
    const lines: SweepLine[] = [];
    for (let i = first; i <= last; i++) {
      if (kept.has(i)) continue;
      if (beat?.current !== undefined && i > beat.current) lines.push({ i, ok: false, status: 'skipped', error: `not run: the call for items ${first}–${last} failed before it reached this item: ${error}` });
      else lines.push({ i, ok: false, status: 'failed', error: first === last ? error : `no outcome: the last attempt of the call for items ${first}–${last} failed before this item finished: ${error}` });
    }
    for (const l of lines) tally(l);
    keep(lines);
  };

  let next = 0;
  let stopped = false;
  let cancellation: unknown;
  const scope = new CancellationScope();
  // The hot loop awaits once per call: every await in workflow code makes a promise, and the SDK captures a stack
  // trace for each one, which is most of a sweep's workflow-side cost per item.
  let paused = false;
  setHandler(pausedSignal, (p) => void (paused = p));
  const lane = async (): Promise<void> => {
    while (next < calls && !stopped) {
      if (paused) {
        try {
          await condition(() => !paused);
        } catch (err) {
          if (!isCancellation(err)) throw err;
          cancellation ??= err;
          return;
        }
        if (next >= calls || stopped) return;
      }
      const c = next++;
      const first = start + c * batch;
      const last = Math.min(end, first + batch) - 1;
      running++;
      try {
        if (target.kind === 'pipeline') {
          const l = await runChildItem(first);
          tally(l);
          keep([l]);
        } else {
          try {
            took(c, await stepCall(first, last));
          } catch (err) {
            if (isCancellation(err)) {
              salvaged(cancelledOutcome(err));
              throw err;
            }
            failedCall(first, last, err);
          }
        }
        if (poolBytes > POOL_FLUSH_BYTES) await flush();
      } catch (err) {
        if (!isCancellation(err)) throw err;
        cancellation ??= err;
        return;
      } finally {
        running--;
        publish();
      }
      // Fail fast: the first failure stops this shard and cancels its running calls.
      if (spec.onFailure === 'fail-fast' && counts.failed > 0 && !stopped) {
        stopped = true;
        scope.cancel();
      }
    }
  };
  // Every lane settles (cancelled calls acknowledge first), so no result is lost and nothing outlives the shard.
  // Start the lanes from a microtask: each promise costs a stack capture, and here the stack is shallow.
  await Promise.resolve();
  const settled = await scope.run(() => Promise.allSettled(Array.from({ length: lanesCount }, lane)));
  const bug = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bug) throw bug.reason;
  const cancelled = CancellationScope.current().consideredCancelled;
  publish(true);
  const written = await CancellationScope.nonCancellable(async () => {
    // Each payload stays small: the pool is flushed before the assembly if it is large.
    if (poolBytes > POOL_FLUSH_BYTES / 4) await flush();
    return longIo[MapActivity.assemble]({
      start,
      end,
      batch: target.kind === 'pipeline' ? 1 : batch,
      parts,
      pools,
      lines: pool,
      missing: stopped ? { status: 'skipped', error: 'not run: the sweep stopped at its first failure (fail-fast)' } : { status: 'cancelled', error: 'not run: the sweep was cancelled' },
      name: `${artifactBase(spec.key)}.shard-${args.shard}.jsonl`,
      producer,
      record: info.workflowId,
    });
  });
  if (cancelled) throw cancellation ?? new CancelledFailure('shard cancelled');
  // The counts are the manifest's: what the file says is what the sweep reports.
  const { ref, ...written_ } = written;
  return { ...written_, failures, part: { start, end, ref } };
}

/** The last heartbeat of a call that timed out (its worker lost, or too slow): the items it had done. */
function lastBeatOf(err: unknown): BatchBeat | undefined {
  const cause = (err as { cause?: unknown })?.cause;
  if (!(cause instanceof TimeoutFailure)) return undefined;
  const d = cause.lastHeartbeatDetails as Partial<BatchBeat> | undefined;
  return d && Array.isArray(d.done) ? (d as BatchBeat) : undefined;
}

/** What a cancelled call handed back (see the batch activity): the outcomes it reached before the cancel. */
function cancelledOutcome(err: unknown): CallOutcome | undefined {
  const cause = (err as { cause?: unknown })?.cause;
  if (!(cause instanceof CancelledFailure)) return undefined;
  const d = cause.details[0] as Partial<CallOutcome> | undefined;
  return d && typeof d.first === 'number' && typeof d.count === 'number' ? (d as CallOutcome) : undefined;
}
