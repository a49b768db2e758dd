// A sweep shard: one child workflow running items [start, end) of a k.map, with its own history. It reads its
// items (inline, or manifest slices through an activity), runs them one or a batch per activity call, and
// writes its results manifest. It returns counts; it throws only when cancelled.
import {
  ActivityCancellationType,
  CancellationScope,
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
  let detailsQueued = false;
  const publish = () => {
    if (detailsQueued) return;
    detailsQueued = true;
    void Promise.resolve().then(() => {
      detailsQueued = false;
      setCurrentDetails(`**${spec.key}** shard ${args.shard}: items ${start}–${end - 1} — ${counts.succeeded} succeeded (${counts.cached} cached), ${counts.failed} failed, ${running} running`);
    });
  };

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
    const ref = await io[MapActivity.write]({ mode: 'collect', start, end, parts: [], lines: batch, missing: { status: 'cancelled', error: 'not run' }, name: `${spec.key}.shard-${args.shard}.part-${parts.length}.jsonl`, producer });
    parts.push({ start, end, ref });
  };

  // Items: inline inputs, or slices of the manifest read on demand (and one ahead).
  const slices = new Map<number, Promise<unknown[]>>();
  const slice = (s: number): Promise<unknown[]> => {
    let p = slices.get(s);
    if (!p) {
      const src = spec.source;
      if (src.kind !== 'manifest') throw new Error('unreachable: inline shards carry their inputs');
      const first = start + s * SLICE_ITEMS;
      p = io[MapActivity.slice]({ ref: src.ref, offset: args.offsets![s]!, start: first, count: Math.min(SLICE_ITEMS, end - first), template: src.template });
      slices.set(s, p);
    }
    return p;
  };
  const inputOf = async (i: number): Promise<unknown> => {
    if (args.inputs) return args.inputs[i - start];
    const s = Math.floor((i - start) / SLICE_ITEMS);
    if (slices.size > 2) for (const k of slices.keys()) if (k < s) slices.delete(k);
    if ((i - start) % SLICE_ITEMS === 0 && start + (s + 1) * SLICE_ITEMS < end) void slice(s + 1).catch(() => undefined);
    return (await slice(s))[(i - start) % SLICE_ITEMS];
  };

  // On resume, the earlier run's results for this same shard.
  const prior = spec.resumeFrom ? await io[MapActivity.prior]({ shardId: `${spec.resumeFrom}/shard-${args.shard}` }) : null;

  const batch = spec.batch;
  const calls = Math.ceil(total / batch);
  const lanesCount = Math.max(1, Math.min(calls, Math.floor(args.concurrency / batch) || 1));
  const target = spec.target;
  const runCall = async (c: number): Promise<void> => {
    const first = start + c * batch;
    const last = Math.min(end, first + batch) - 1;
    const items: { i: number; input: unknown }[] = [];
    for (let i = first; i <= last; i++) items.push({ i, input: await inputOf(i) });
    running += items.length;
    try {
      if (target.kind === 'pipeline') {
        const { i, input } = items[0]!;
        const childRun = spec.childRun as { resumeFrom?: { workflowId: string } } | undefined;
        try {
          const output = await executeChild(target.name, {
            workflowId: `${info.workflowId}/${i}`,
            taskQueue: info.taskQueue,
            args: [input, { ...childRun, ...(childRun?.resumeFrom && spec.resumeFrom ? { resumeFrom: { ...childRun.resumeFrom, workflowId: `${spec.resumeFrom}/shard-${args.shard}/${i}` } } : {}) }],
            staticSummary: `${target.name} — item ${i} of sweep ${spec.key} (${spec.parentId})`,
            priority: spec.priority,
          });
          record({ i, ok: true, output });
        } catch (err) {
          if (isCancellation(err)) throw err;
          record({ i, ok: false, status: 'failed', error: childMessage(err) });
        }
      } else {
        const key = items.length === 1 ? `${spec.key}[${first}]` : `${spec.key}[${first}-${last}]`;
        const act = proxyActivities<Record<string, (c: BatchCall) => Promise<BatchResult>>>({
          ...target.options,
          activityId: key,
          summary: key,
          cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
          priority: spec.priority,
        });
        try {
          const res = await act[target.name]!({ key: spec.key, pipeline: spec.pipeline, cache: spec.cache, items, ...(prior ? { prior: { ref: prior.ref, start } } : {}) });
          for (const l of res.lines) record(l);
        } catch (err) {
          if (isCancellation(err)) throw err;
          // The call failed for good (retries exhausted): every item of it failed with that error.
          const error = failureMessage(err);
          for (const { i } of items) record({ i, ok: false, status: 'failed', error });
        }
      }
    } finally {
      running -= items.length;
    }
    if (lineBytes > FLUSH_BYTES) await flush();
  };

  let next = 0;
  let stopped = false;
  let cancellation: unknown;
  const scope = new CancellationScope();
  const lane = async (): Promise<void> => {
    while (next < calls && !stopped) {
      try {
        await runCall(next++);
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
  const settled = await scope.run(() => Promise.allSettled(Array.from({ length: lanesCount }, lane)));
  const bug = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bug) throw bug.reason;
  const cancelled = CancellationScope.current().consideredCancelled;
  const shardEnd = await CancellationScope.nonCancellable(() =>
    io[MapActivity.write]({
      mode: 'collect',
      start,
      end,
      parts,
      lines,
      missing: stopped ? { status: 'skipped', error: 'not run: the sweep stopped at its first failure (fail-fast)' } : { status: 'cancelled', error: 'not run: the sweep was cancelled' },
      name: `${spec.key}.shard-${args.shard}.jsonl`,
      producer,
      record: info.workflowId,
    }),
  );
  if (cancelled) throw cancellation ?? new CancelledFailure('shard cancelled');
  const notRun = total - counts.succeeded - counts.failed;
  return { ...counts, notRun, failures, part: { start, end, ref: shardEnd } };
}
