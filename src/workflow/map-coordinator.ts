// The coordinator of one k.map: a child workflow of the pipeline that plans the items, keeps a sliding window
// of shard workflows so the sweep's concurrency holds across shards, merges their results in item order, and
// continues-as-new every SHARDS_PER_EXECUTION shards, so no execution's history grows with the sweep's size.
import { artifactBase, boundedId } from '../definition/internal/ids';
import {
  CancellationScope,
  condition,
  CancelledFailure,
  continueAsNew,
  executeChild,
  getExternalWorkflowHandle,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  MAP_PROGRESS_SIGNAL,
  MapActivity,
  MAX_LISTED_FAILURES,
  SHARD_WORKFLOW,
  SHARDS_PER_EXECUTION,
  shardItemsFor,
  SLICE_ITEMS,
  type CoordinatorState,
  type MapSpec,
  type ResultPart,
  type ShardArgs,
  type ShardResult,
  type SweepProgress,
  type WriteCall,
  type WrittenResults,
} from '../definition/internal/map';
import type { ArtifactRef } from '../definition/artifact-ref';
import type { Sweep } from '../definition/sweep';
import { childMessage } from './failures';
import { pausedSignal } from './control';
import { sweepQuery } from './map-shard';
import { now } from './run-state-tracker';

// Long internal activities heartbeat (see map-activities.ts): a lost worker costs 20 s, not the 30-minute timeout.
const io = proxyActivities<{
  [MapActivity.plan](a: { ref: ArtifactRef; sliceItems: number }): Promise<{ total: number; offsets: number[] }>;
  [MapActivity.write](c: WriteCall): Promise<WrittenResults>;
}>({ startToCloseTimeout: '30m', heartbeatTimeout: '20s', retry: { maximumAttempts: 5, initialInterval: '500ms' } });

/**
 * How many shards run at once and how many items each runs at once, so that the total never exceeds `concurrency`.
 * A call runs its items one after another, so a shard runs at most `shardCalls` items at once.
 */
export function shardWindow(concurrency: number, shardCalls: number, shards: number): { window: number; perShard: number } {
  if (concurrency >= 2 * shardCalls) return { window: Math.max(1, Math.min(shards, Math.floor(concurrency / shardCalls))), perShard: shardCalls };
  // Two shards share the bound, so one shard's tail overlaps the next one's start instead of draining the pool.
  const window = Math.max(1, Math.min(shards, concurrency >= 2 ? 2 : 1));
  return { window, perShard: Math.floor(concurrency / window) };
}

export async function kaonMap(spec: MapSpec, carried?: CoordinatorState): Promise<Sweep> {
  const info = workflowInfo();
  let state: CoordinatorState;
  if (carried) state = { ...carried, executions: carried.executions + 1 };
  else {
    const plan = spec.source.kind === 'inline' ? { total: spec.source.inputs.length, offsets: [] } : await io[MapActivity.plan]({ ref: spec.source.ref, sliceItems: SLICE_ITEMS });
    state = { total: plan.total, offsets: plan.offsets, nextShard: 0, counts: { succeeded: 0, failed: 0, cached: 0, notRun: 0 }, failures: [], parts: [], startedAt: now(), executions: 1 };
  }
  const { total } = state;
  const shardItems = shardItemsFor(spec.batch);
  const shards = Math.ceil(total / shardItems);
  const { window, perShard } = shardWindow(spec.concurrency, Math.ceil(shardItems / spec.batch), shards);
  const running = new Map<number, number>();
  const progress = (): SweepProgress => {
    const done = state.counts.succeeded + state.counts.failed;
    return { key: spec.key, total, running: [...running.values()].reduce((a, b) => a + b, 0), startedAt: state.startedAt, rate: (done * 1000) / Math.max(1, now() - state.startedAt), ...state.counts, runningShards: [...running.keys()] };
  };
  setHandler(sweepQuery, progress);
  const parent = getExternalWorkflowHandle(spec.parentId);
  let lastSignal = 0;
  const report = (force = false) => {
    const p = progress();
    setCurrentDetails(`**${spec.key}** — ${p.succeeded + p.failed}/${total} done (${p.failed} failed, ${p.cached} cached), ${running.size} shards running, ${p.rate.toFixed(0)} items/s; execution ${state.executions}`);
    // Progress reaches the parent's run state by signal, spaced out so a months-long sweep sends a few hundred.
    const t = now();
    if (force || t - lastSignal >= Math.max(2000, (t - state.startedAt) / 50)) {
      lastSignal = t;
      const { runningShards: _shards, ...counts } = p;
      parent.signal(MAP_PROGRESS_SIGNAL, counts).catch(() => undefined);
    }
  };
  report(true);
  let paused = false;
  setHandler(pausedSignal, (p) => {
    paused = p;
    for (const n of running.keys()) getExternalWorkflowHandle(boundedId(`${info.workflowId}/shard-${n}`)).signal(pausedSignal, p).catch(() => undefined);
  });

  const firstShard = state.nextShard;
  let stopped = false;
  let cancellation: unknown;
  const scope = new CancellationScope();
  const runShard = async (n: number): Promise<void> => {
    const start = n * shardItems;
    const end = Math.min(total, start + shardItems);
    const { source, ...rest } = spec;
    const args: ShardArgs =
      source.kind === 'inline'
        ? { spec: { ...rest, source: { kind: 'inline' } }, shard: n, start, end, concurrency: perShard, inputs: source.inputs.slice(start, end) }
        : { spec: { ...rest, source }, shard: n, start, end, concurrency: perShard, offsets: state.offsets.slice(start / SLICE_ITEMS, Math.ceil(end / SLICE_ITEMS)) };
    running.set(n, Math.min(perShard, Math.ceil((end - start) / spec.batch)));
    let res: Omit<ShardResult, 'part'> & { part?: ResultPart };
    try {
      res = await executeChild(SHARD_WORKFLOW, {
        workflowId: boundedId(`${info.workflowId}/shard-${n}`),
        taskQueue: info.taskQueue,
        args: [args],
        staticSummary: `shard ${n} of sweep ${spec.key} (${spec.parentId}): items ${start}–${end - 1}`,
        priority: spec.priority,
      });
    } catch (err) {
      if (isCancellation(err)) throw err;
      // A shard that failed as a whole (not its items) counts its items as failed; their result lines say why.
      const error = `shard ${n} failed: ${childMessage(err)}`;
      state.failedShards = [...(state.failedShards ?? []), { start, end, error }];
      res = { succeeded: 0, failed: end - start, cached: 0, notRun: 0, failures: [{ index: start, error }] };
    } finally {
      running.delete(n);
    }
    const c = state.counts;
    c.succeeded += res.succeeded;
    c.failed += res.failed;
    c.cached += res.cached;
    c.notRun += res.notRun;
    // The lowest-numbered failures, whichever shard finished first.
    if (res.failures.length) state.failures = [...state.failures, ...res.failures].sort((a, b) => a.index - b.index).slice(0, MAX_LISTED_FAILURES);
    if (res.part) state.parts.push(res.part);
    if (spec.onFailure === 'fail-fast' && res.failed > 0 && !stopped) {
      stopped = true;
      scope.cancel();
    }
    report();
  };
  const lane = async (): Promise<void> => {
    while (state.nextShard < shards && !stopped && state.nextShard - firstShard < (spec.shardsPerExecution ?? SHARDS_PER_EXECUTION)) {
      try {
        if (paused) await condition(() => !paused);
        if (stopped || state.nextShard >= shards) return;
        await runShard(state.nextShard++);
      } catch (err) {
        if (!isCancellation(err)) throw err;
        cancellation ??= err;
        return;
      }
    }
  };
  const settled = await scope.run(() => Promise.allSettled(Array.from({ length: window }, lane)));
  const bug = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bug) throw bug.reason;
  if (CancellationScope.current().consideredCancelled) throw cancellation ?? new CancelledFailure('sweep cancelled');

  const producer = { pipeline: spec.pipeline, runId: spec.parentId, step: spec.key, attempt: 1 };
  const missing: WriteCall['missing'] = { status: 'skipped', error: stopped ? 'not run: the sweep stopped at its first failure (fail-fast)' : 'not run' };
  const failed = state.failedShards ?? [];
  if (!stopped && state.nextShard < shards) {
    // Every shard of this execution has finished: merge their results into one part, then continue as new.
    const end = state.nextShard * shardItems;
    const merged = await io[MapActivity.write]({ mode: 'concat', start: 0, end, parts: state.parts, failed, missing, name: `${artifactBase(spec.key)}.results-0-${end}.jsonl`, producer });
    await continueAsNew<typeof kaonMap>(spec, { ...state, parts: [{ start: 0, end, ref: merged.ref }], failedShards: [] });
  }
  const { ref: results, ...counts } = await io[MapActivity.write]({ mode: 'concat', start: 0, end: total, parts: state.parts, failed, missing, name: `${artifactBase(spec.key)}.results.jsonl`, producer });
  // The counts are the manifest's, line by line: what the file says is what the sweep reports.
  state.counts = counts;
  const durationMs = now() - state.startedAt;
  const sweep: Sweep = {
    kind: 'kaon.sweep',
    key: spec.key,
    target: spec.target.name,
    total,
    ...counts,
    failures: state.failures,
    results,
    durationMs,
    rate: ((state.counts.succeeded + state.counts.failed) * 1000) / Math.max(1, durationMs),
  };
  running.clear();
  report(true);
  return sweep;
}
