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
  executeChild,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  MapActivity,
  MAX_LISTED_FAILURES,
  SLICE_ITEMS,
  SWEEP_QUERY,
  type BatchCall,
  type BatchResult,
  type ResultPart,
  type ShardArgs,
  type ShardResult,
  type SliceCall,
  type SweepProgress,
  type WriteCall,
} from '../definition/internal/map';
import type { SweepLine } from '../definition/sweep';
import { pausedSignal } from './control';
import { childMessage, failureMessage } from './failures';
import { now } from './run-state-tracker';

/** Flush collected results to a part artifact past this many bytes of JSON, so the shard's memory stays bounded. */
const FLUSH_BYTES = 1024 * 1024;

const io = proxyActivities<{
  [MapActivity.slice](c: SliceCall): Promise<unknown[]>;
  [MapActivity.write](c: WriteCall): Promise<ResultPart['ref']>;
  [MapActivity.prior](a: { shardId: string }): Promise<ResultPart | null>;
}>({ startToCloseTimeout: '5m', retry: { maximumAttempts: 5, initialInterval: '500ms' } });

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

  // Results: lines collected here until FLUSH_BYTES, then written as parts.
  let lines: SweepLine[] = [];
  let lineBytes = 0;
  const parts: ResultPart[] = [];
  const producer = { pipeline: spec.pipeline, runId: info.workflowId, step: spec.key, attempt: 1 };
  const record = (l: SweepLine) => {
    if (l.ok) {
      counts.succeeded++;
      if (l.cached) counts.cached++;
    } else if (l.status === 'failed') {
      counts.failed++;
      if (failures.length < MAX_LISTED_FAILURES) failures.push({ index: l.i, error: l.error });
    } else counts.notRun++;
    lines.push(l);
    lineBytes += JSON.stringify(l).length;
    publish();
  };
  const flush = async () => {
    const batch = lines;
    lines = [];
    lineBytes = 0;
    const ref = await io[MapActivity.write]({ mode: 'collect', start, end, parts: [], lines: batch, missing: { status: 'cancelled', error: 'not run' }, name: `${artifactBase(spec.key)}.shard-${args.shard}.part-${parts.length}.jsonl`, producer });
    parts.push({ start, end, ref });
  };

  // Items: inline inputs, or slices of the manifest read on demand (and one ahead). Every promise made in workflow
  // code costs a stack capture (the SDK's stack-trace query), so loaded slices are read synchronously.
  const loaded = new Map<number, unknown[]>();
  const loading = new Map<number, Promise<unknown[]>>();
  const load = (s: number): Promise<unknown[]> => {
    let p = loading.get(s);
    if (!p) {
      const src = spec.source;
      if (src.kind !== 'manifest') throw new Error('unreachable: inline shards carry their inputs');
      const first = start + s * SLICE_ITEMS;
      p = io[MapActivity.slice]({ ref: src.ref, offset: args.offsets![s]!, start: first, count: Math.min(SLICE_ITEMS, end - first), template: src.template }).then((inputs) => {
        loaded.set(s, inputs);
        return inputs;
      });
      loading.set(s, p);
    }
    return p;
  };
  /** The inputs of items [first, last], or undefined while a slice they need is still loading. */
  const inputsOf = (first: number, last: number): { i: number; input: unknown }[] | undefined => {
    const out: { i: number; input: unknown }[] = [];
    for (let i = first; i <= last; i++) {
      if (args.inputs) {
        out.push({ i, input: args.inputs[i - start] });
        continue;
      }
      const s = Math.floor((i - start) / SLICE_ITEMS);
      const slice = loaded.get(s);
      if (!slice) return undefined;
      out.push({ i, input: slice[(i - start) % SLICE_ITEMS] });
    }
    return out;
  };
  const slicesOf = (first: number, last: number): number[] => {
    const a = Math.floor((first - start) / SLICE_ITEMS);
    const b = Math.floor((last - start) / SLICE_ITEMS);
    return Array.from({ length: b - a + 1 }, (_, k) => a + k);
  };
  const prefetch = (first: number) => {
    if (args.inputs) return;
    const s = Math.floor((first - start) / SLICE_ITEMS);
    // Read the next slice while this one runs; drop slices no call needs any more.
    if (start + (s + 1) * SLICE_ITEMS < end && !loading.has(s + 1)) load(s + 1).catch(() => undefined);
    for (const k of loaded.keys()) if (k < s) {
      loaded.delete(k);
      loading.delete(k);
    }
  };

  // On resume, the earlier run's results for this same shard.
  const prior = spec.resumeFrom ? await io[MapActivity.prior]({ shardId: boundedId(`${spec.resumeFrom}/shard-${args.shard}`) }) : null;

  const batch = spec.batch;
  const calls = Math.ceil(total / batch);
  const lanesCount = Math.max(1, Math.min(calls, Math.floor(args.concurrency / batch) || 1));
  const target = spec.target;
  const baseOptions = target.kind === 'step' ? { ...target.options, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED, priority: spec.priority } : undefined;
  const childRun = spec.childRun as { resumeFrom?: { workflowId: string } } | undefined;
  const runChildItem = async ({ i, input }: { i: number; input: unknown }): Promise<SweepLine[]> => {
    try {
      const output = await executeChild(target.name, {
        workflowId: boundedId(`${info.workflowId}/${i}`),
        taskQueue: info.taskQueue,
        args: [input, { ...childRun, ...(childRun?.resumeFrom && spec.resumeFrom ? { resumeFrom: { ...childRun.resumeFrom, workflowId: boundedId(`${boundedId(`${spec.resumeFrom}/shard-${args.shard}`)}/${i}`) } } : {}) }],
        staticSummary: `${target.name} — item ${i} of sweep ${spec.key} (${spec.parentId})`,
        priority: spec.priority,
      });
      return [{ i, ok: true, output }];
    } catch (err) {
      if (isCancellation(err)) throw err;
      return [{ i, ok: false, status: 'failed', error: childMessage(err) }];
    }
  };
  const priorRef = prior ? { ref: prior.ref, start } : undefined;
  /** The activity of one call. Built without object spread: the bundle compiles spread into helper calls. */
  const stepCall = (items: { i: number; input: unknown }[]): Promise<BatchResult> => {
    const first = items[0]!.i;
    const opts = Object.assign({}, baseOptions, { activityId: boundedId(items.length === 1 ? `${spec.key}[${first}]` : `${spec.key}[${first}-${items[items.length - 1]!.i}]`) });
    const call: BatchCall = { key: spec.key, pipeline: spec.pipeline, cache: spec.cache, items };
    if (priorRef) call.prior = priorRef;
    // No per-item summary: the activity id already reads `sweep[123]`, and 100,000 summaries are history bytes.
    return proxyActivities<Record<string, (c: BatchCall) => Promise<BatchResult>>>(opts)[target.name]!(call);
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
      let items = inputsOf(first, last);
      try {
        if (!items) {
          await Promise.all(slicesOf(first, last).map(load));
          items = inputsOf(first, last)!;
        }
        prefetch(first);
        running += items.length;
        let lines: SweepLine[];
        try {
          if (target.kind === 'pipeline') lines = await runChildItem(items[0]!);
          else {
            try {
              lines = (await stepCall(items)).lines;
            } catch (err) {
              if (isCancellation(err)) throw err;
              // The call failed for good (retries exhausted): every item of it failed with that error.
              const error = failureMessage(err);
              lines = items.map(({ i }): SweepLine => ({ i, ok: false, status: 'failed', error }));
            }
          }
        } finally {
          running -= items.length;
        }
        for (const l of lines) record(l);
        if (lineBytes > FLUSH_BYTES) await flush();
      } catch (err) {
        if (!isCancellation(err)) throw err;
        cancellation ??= err;
        return;
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
  const shardEnd = await CancellationScope.nonCancellable(() =>
    io[MapActivity.write]({
      mode: 'collect',
      start,
      end,
      parts,
      lines,
      missing: stopped ? { status: 'skipped', error: 'not run: the sweep stopped at its first failure (fail-fast)' } : { status: 'cancelled', error: 'not run: the sweep was cancelled' },
      name: `${artifactBase(spec.key)}.shard-${args.shard}.jsonl`,
      producer,
      record: info.workflowId,
    }),
  );
  if (cancelled) throw cancellation ?? new CancelledFailure('shard cancelled');
  const notRun = total - counts.succeeded - counts.failed;
  return { ...counts, notRun, failures, part: { start, end, ref: shardEnd } };
}
