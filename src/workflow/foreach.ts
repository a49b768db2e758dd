import { ApplicationFailure, CancellationScope, isCancellation, log } from '@temporalio/workflow';
import { ErrorCode } from '../definition/errors';
import type { FailedItem } from '../observe/run-state';
import type { RunCore } from './core';
import { failureMessage } from './failures';

export type FailurePolicy = 'fail-fast' | 'after-running' | 'ignore';

export interface ForeachOptions<T> {
  /** How many items run at once. Default: all. */
  concurrency?: number;
  /** Default 'fail-fast'. */
  onFailure?: FailurePolicy;
  /** The label of an item in step keys (`train[US]`). Default: the item itself if a string or number, else its index. */
  label?: (item: T, index: number) => string;
}

export type Settled<T, R> =
  | { item: T; label: string; ok: true; value: R }
  | { item: T; label: string; ok: false; error: string };

/**
 * Items in one foreach, which keeps every item's steps in this run's history (a sub-DAG per item, each step
 * visible in the run state). Sweeps beyond it are k.map's job.
 */
export const MAX_FOREACH_ITEMS = 1000;

/** Split items into batches of `size` (for one child pipeline per batch). */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const n = Math.max(1, Math.floor(size));
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: ErrorCode.invalidDefinition, nonRetryable: true, message });
}

/** k.foreach: fn per item, `concurrency` at a time, with a failure policy. */
export async function runForeach<T, R>(core: RunCore, items: readonly T[], opts: ForeachOptions<T>, fn: (item: T, index: number) => Promise<R>): Promise<R[] | Settled<T, R>[]> {
  if (items.length > MAX_FOREACH_ITEMS) {
    throw invalid(
      `foreach over ${items.length} items exceeds its cap of ${MAX_FOREACH_ITEMS}: foreach keeps every item's steps in this run's history. To fix: use k.map(step, items, { input, concurrency, onFailure }) — it shards the items over child workflows, each with its own history, takes items as an array or a JSON-lines manifest artifact, and returns a Sweep with a results manifest`,
    );
  }
  const policy = opts.onFailure ?? 'fail-fast';
  const concurrency = Math.max(1, Math.min(opts.concurrency ?? items.length, items.length || 1));
  const labels = items.map((item, i) => opts.label?.(item, i) ?? (typeof item === 'string' || typeof item === 'number' ? String(item) : String(i)));
  if (new Set(labels).size !== labels.length) {
    throw invalid(`foreach item labels are not unique (${labels.length - new Set(labels).size} duplicates), so step keys would collide. To fix: pass { label: (item, i) => ... } returning a unique label per item.`);
  }
  const group = core.tracker.addForeach(items.length, core.foreach);
  const settled: (Settled<T, R> | undefined)[] = new Array(items.length);
  let next = 0;
  let firstError: unknown;
  let cancellation: unknown;
  // Fail fast: the first failure cancels the items still running (their steps see the cancellation).
  const failScope = policy === 'fail-fast' ? new CancellationScope() : undefined;
  const runOne = async (i: number): Promise<void> => {
    const item = items[i] as T;
    const label = labels[i]!;
    try {
      settled[i] = { item, label, ok: true, value: await core.withLabel(label, () => fn(item, i), group) };
    } catch (err) {
      if (isCancellation(err)) cancellation ??= err;
      if (failScope && firstError === undefined && !isCancellation(err)) {
        firstError = err;
        failScope.cancel();
      }
      settled[i] = { item, label, ok: false, error: failureMessage(err) };
    }
  };
  const lane = async (): Promise<void> => {
    while (next < items.length && firstError === undefined) await runOne(next++);
  };
  const lanes = () => Promise.all(Array.from({ length: concurrency }, lane));
  if (failScope) {
    await failScope.run(lanes);
    if (firstError !== undefined) throw firstError;
    if (cancellation !== undefined) throw cancellation;
    return settled.map((s) => (s as { value: R }).value);
  }
  await lanes();
  // The whole run was cancelled: report that, not a list of 'failed' items.
  if (cancellation !== undefined && CancellationScope.current().consideredCancelled) throw cancellation;
  const failed = settled.filter((s): s is Extract<Settled<T, R>, { ok: false }> => s !== undefined && !s.ok);
  const failedItems: FailedItem[] = failed.map((f) => ({ key: f.label, error: f.error }));
  core.tracker.state.failedItems.push(...failedItems);
  if (policy === 'ignore') {
    if (failed.length > 0) log.warn(`foreach: ${failed.length} of ${items.length} items failed and were ignored`, { failed: failedItems });
    return settled as Settled<T, R>[];
  }
  if (failed.length > 0) {
    throw ApplicationFailure.create({
      type: ErrorCode.foreachFailed,
      nonRetryable: true,
      message: `${failed.length} of ${items.length} items failed: ${failed.map((f) => `[${f.label}] ${f.error.split('\n')[0]}`).join('; ')}`,
      details: [{ failed: failedItems }],
    });
  }
  return settled.map((s) => (s as { value: R }).value);
}

/** k.parallel: named branches; the first failure cancels the others, and every branch settles before it propagates. */
export async function runParallel<B extends Record<string, () => Promise<unknown>>>(core: RunCore, branches: B): Promise<{ [K in keyof B]: Awaited<ReturnType<B[K]>> }> {
  const names = Object.keys(branches);
  // Promise.all would return while siblings are still acknowledging cancellation, so a step could outlive the run.
  const scope = new CancellationScope();
  let first: { err: unknown } | undefined;
  const settled = await scope.run(() =>
    Promise.allSettled(
      names.map((name) =>
        core.inBranch(name, () => branches[name]!()).catch((err: unknown) => {
          if (!first || (isCancellation(first.err) && !isCancellation(err))) first = { err };
          if (!isCancellation(err)) scope.cancel();
          throw err;
        }),
      ),
    ),
  );
  if (first) throw first.err;
  return Object.fromEntries(names.map((n, i) => [n, (settled[i] as PromiseFulfilledResult<unknown>).value])) as { [K in keyof B]: Awaited<ReturnType<B[K]>> };
}
