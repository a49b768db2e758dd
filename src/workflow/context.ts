import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  AsyncLocalStorage,
  CancellationScope,
  CancelledFailure,
  ChildWorkflowFailure,
  executeChild,
  isCancellation,
  log,
  proxyActivities,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import { toMs } from '../definition/duration';
import { ErrorCode } from '../definition/errors';
import { SAKey, type StepCall, type StepFailureDetails, type StepResult } from '../definition/internal/protocol';
import type { AnyPipeline, PipelineParams, PipelineResult } from '../definition/pipeline';
import type { StepDef, StepInput, StepOptions, StepOutput } from '../definition/step';
import type { FailedItem } from '../observe/run-state';
import { now, type RunStateTracker } from './run-state-tracker';

/** Per-call overrides of a step's options. `key` names the call in the run state (default: the step name). */
export interface StepCallOptions extends Omit<StepOptions, 'cache'> {
  key?: string;
}

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

/** Items in one foreach run in this workflow's history; beyond this, history would approach Temporal's limits. */
export const MAX_FOREACH_ITEMS = 1000;

/**
 * A run stops scheduling steps past this many history events, well under Temporal's 10,240-event warning and
 * 51,200-event hard limit, so a too-large run fails with a clear error instead of being terminated by the server.
 */
export const MAX_HISTORY_EVENTS = 9000;

/** Default retry policy: ML steps fail for real reasons more often than transient ones; 3 attempts, backing off. */
export const DEFAULT_RETRY = { maximumAttempts: 3, initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m' } as const;
export const DEFAULT_TIMEOUT = '10m';

interface Scope {
  suffix: string;
  branch?: string;
}

export interface RunOptions {
  cache: 'on' | 'off';
  resumeFrom?: StepCall['resumeFrom'];
}

export interface RunLimits {
  /** Stop scheduling steps past this many history events (at most MAX_HISTORY_EVENTS). */
  historyEvents: number;
}

/** The workflow-side API a pipeline's `run` receives. */
export interface Kaon {
  /** Run one step as a Temporal activity and return its validated output. */
  step<S extends StepDef>(def: S, input: StepInput<S>, opts?: StepCallOptions): Promise<StepOutput<S>>;
  /** Named parallel branches; resolves to an object with each branch's result under its name. */
  parallel<B extends Record<string, () => Promise<unknown>>>(branches: B): Promise<{ [K in keyof B]: Awaited<ReturnType<B[K]>> }>;
  /** Run `fn` for each item, `concurrency` at a time. Step keys inside get the item's label: `train[US]`. */
  foreach<T, R>(items: readonly T[], opts: ForeachOptions<T> & { onFailure: 'ignore' }, fn: (item: T, index: number) => Promise<R>): Promise<Settled<T, R>[]>;
  foreach<T, R>(items: readonly T[], opts: ForeachOptions<T> & { onFailure?: 'fail-fast' | 'after-running' }, fn: (item: T, index: number) => Promise<R>): Promise<R[]>;
  /**
   * Run a pipeline as a child workflow, with its own history: the way to fan out beyond one run's history
   * (split items with `chunk()` and run one child per batch). Its key in the run state is `<name>[label]`.
   */
  child<P extends AnyPipeline>(pipeline: P, params: PipelineParams<P>, opts?: { key?: string }): Promise<PipelineResult<P>>;
  /** This run's workflow id. */
  readonly runId: string;
}

/** Split items into batches of `size` (for one child pipeline per batch). */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const n = Math.max(1, Math.floor(size));
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

function failureMessage(err: unknown): string {
  let e: unknown = err;
  // Unwrap ActivityFailure → ApplicationFailure to reach the step's own message.
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

function childMessage(err: unknown): string {
  return err instanceof ChildWorkflowFailure && err.cause ? failureMessage(err.cause) : failureMessage(err);
}

function failureDetails(err: unknown): StepFailureDetails | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure || cause instanceof CancelledFailure) return cause.details?.[0] as StepFailureDetails | undefined;
  return undefined;
}

export class KaonContext implements Kaon {
  private readonly scope = new AsyncLocalStorage<Scope>();
  private readonly keyUses = new Map<string, number>();

  constructor(
    private readonly tracker: RunStateTracker,
    private readonly run: RunOptions,
    private readonly limits: RunLimits = { historyEvents: MAX_HISTORY_EVENTS },
  ) {}

  get runId(): string {
    return workflowInfo().workflowId;
  }

  private activityOptions(def: StepDef, o: StepCallOptions, key: string): ActivityOptions {
    const where = `step "${def.name}"`;
    const timeout = o.timeout ?? def.options.timeout ?? DEFAULT_TIMEOUT;
    const opts: ActivityOptions = {
      activityId: key,
      summary: o.summary ?? def.options.summary ? `${key} — ${o.summary ?? def.options.summary}` : key,
      startToCloseTimeout: toMs(timeout, where),
      retry: { ...DEFAULT_RETRY, ...(def.options.retry ?? {}), ...(o.retry ?? {}) },
      // The workflow waits until the step has seen its cancellation, so nothing keeps running unobserved.
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    };
    const queue = o.queue ?? def.options.queue;
    if (queue) opts.taskQueue = taskQueueFor(workflowInfo().taskQueue, queue);
    const s2c = o.scheduleToClose ?? def.options.scheduleToClose;
    if (s2c !== undefined) opts.scheduleToCloseTimeout = toMs(s2c, where);
    const hb = o.heartbeat ?? def.options.heartbeat;
    if (hb !== undefined) opts.heartbeatTimeout = toMs(hb, where);
    return opts;
  }

  private uniqueKey(base: string): string {
    const n = (this.keyUses.get(base) ?? 0) + 1;
    this.keyUses.set(base, n);
    // A repeated call (a retraining loop) gets `#2`, `#3`: Temporal activity ids must be unique while pending.
    return n === 1 ? base : `${base}#${n}`;
  }

  async step<S extends StepDef>(def: S, input: StepInput<S>, o: StepCallOptions = {}): Promise<StepOutput<S>> {
    const info = workflowInfo();
    if (info.historyLength > this.limits.historyEvents || info.continueAsNewSuggested) {
      throw ApplicationFailure.create({
        type: ErrorCode.invalidDefinition,
        nonRetryable: true,
        message: `run ${info.workflowId} has ${info.historyLength} history events, near Temporal's limits, so step "${def.name}" was not scheduled. To fix: split the work into child pipelines (k.child, each with its own history; chunk() makes the batches) or separate runs; succeeded steps are kept for 'kaon resume'.`,
      });
    }
    const scope = this.scope.getStore();
    const key = this.uniqueKey(`${o.key ?? def.name}${scope?.suffix ?? ''}`);
    const queue = o.queue ?? def.options.queue;
    const st = this.tracker.add({
      key,
      step: def.name,
      status: 'running',
      attempts: 0,
      startedAt: now(),
      ...(queue ? { queue } : {}),
      ...(scope?.branch ? { branch: scope.branch } : {}),
    });
    const call: StepCall = {
      key,
      input,
      pipeline: this.tracker.state.pipeline,
      cache: this.run.cache,
      ...(this.run.resumeFrom ? { resumeFrom: this.run.resumeFrom } : {}),
    };
    const act = proxyActivities<Record<string, (c: StepCall) => Promise<StepResult>>>(this.activityOptions(def, o, key));
    try {
      const res = await act[def.name]!(call);
      this.tracker.update(st, {
        status: res.reused ? 'cached' : 'succeeded',
        attempts: res.reused ? 0 : res.attempt,
        endedAt: now(),
        ...(res.reused ? { reusedFrom: { from: res.reused.from, runId: res.reused.runId } } : {}),
      });
      return res.output as StepOutput<S>;
    } catch (err) {
      const cancelled = isCancellation(err);
      const details = failureDetails(err);
      this.tracker.update(st, {
        status: cancelled ? 'cancelled' : 'failed',
        attempts: details?.attempt ?? st.attempts,
        endedAt: now(),
        error: failureMessage(err),
      });
      throw err;
    }
  }

  async child<P extends AnyPipeline>(pipeline: P, params: PipelineParams<P>, o: { key?: string } = {}): Promise<PipelineResult<P>> {
    const scope = this.scope.getStore();
    const name = pipeline.kaon.name;
    const key = this.uniqueKey(`${o.key ?? name}${scope?.suffix ?? ''}`);
    const info = workflowInfo();
    const st = this.tracker.add({ key, step: name, status: 'running', attempts: 1, startedAt: now(), ...(scope?.branch ? { branch: scope.branch } : {}) });
    // A resumed parent resumes its children too: the old child of the same key has a predictable id.
    const from = this.run.resumeFrom;
    const runOptions: RunOptions = { ...this.run, ...(from ? { resumeFrom: { ...from, workflowId: `${from.workflowId}/${key}` } } : {}) };
    try {
      const result = await executeChild(name, {
        workflowId: `${info.workflowId}/${key}`,
        taskQueue: info.taskQueue,
        args: [params, runOptions],
        typedSearchAttributes: [{ key: SAKey.pipeline, value: name }, { key: SAKey.status, value: 'running' }],
        staticSummary: `${name} (child of ${info.workflowId}, ${key})`,
      });
      this.tracker.update(st, { status: 'succeeded', endedAt: now() });
      return result as PipelineResult<P>;
    } catch (err) {
      this.tracker.update(st, { status: isCancellation(err) ? 'cancelled' : 'failed', endedAt: now(), error: childMessage(err) });
      throw err;
    }
  }

  async parallel<B extends Record<string, () => Promise<unknown>>>(branches: B): Promise<{ [K in keyof B]: Awaited<ReturnType<B[K]>> }> {
    const outer = this.scope.getStore();
    const names = Object.keys(branches);
    // The first failure cancels the other branches; every branch settles before the error propagates, so no
    // step outlives the run (Promise.all would return while siblings are still acknowledging cancellation).
    const scope = new CancellationScope();
    let first: { err: unknown } | undefined;
    const settled = await scope.run(() =>
      Promise.allSettled(
        names.map((name) =>
          this.scope.run({ suffix: outer?.suffix ?? '', branch: name }, () => branches[name]!()).catch((err: unknown) => {
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

  foreach<T, R>(items: readonly T[], opts: ForeachOptions<T> & { onFailure: 'ignore' }, fn: (item: T, index: number) => Promise<R>): Promise<Settled<T, R>[]>;
  foreach<T, R>(items: readonly T[], opts: ForeachOptions<T> & { onFailure?: 'fail-fast' | 'after-running' }, fn: (item: T, index: number) => Promise<R>): Promise<R[]>;
  async foreach<T, R>(items: readonly T[], opts: ForeachOptions<T>, fn: (item: T, index: number) => Promise<R>): Promise<R[] | Settled<T, R>[]> {
    if (items.length > MAX_FOREACH_ITEMS) {
      throw ApplicationFailure.create({
        type: ErrorCode.invalidDefinition,
        nonRetryable: true,
        message: `foreach over ${items.length} items exceeds ${MAX_FOREACH_ITEMS} in one run, which would push the run's history towards Temporal's 10,240-event warning. To fix: split the items into batches with chunk(items, ${MAX_FOREACH_ITEMS}) and run each batch as a child pipeline with k.child(batchPipeline, { items: batch }).`,
      });
    }
    const policy = opts.onFailure ?? 'fail-fast';
    const concurrency = Math.max(1, Math.min(opts.concurrency ?? items.length, items.length || 1));
    const outer = this.scope.getStore();
    const labels = items.map((item, i) => opts.label?.(item, i) ?? (typeof item === 'string' || typeof item === 'number' ? String(item) : String(i)));
    if (new Set(labels).size !== labels.length) {
      throw ApplicationFailure.create({
        type: ErrorCode.invalidDefinition,
        nonRetryable: true,
        message: `foreach item labels are not unique (${labels.length - new Set(labels).size} duplicates), so step keys would collide. To fix: pass { label: (item, i) => ... } returning a unique label per item.`,
      });
    }
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
        const value = await this.scope.run({ suffix: `${outer?.suffix ?? ''}[${label}]`, ...(outer?.branch ? { branch: outer.branch } : {}) }, () => fn(item, i));
        settled[i] = { item, label, ok: true, value };
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
    this.tracker.state.failedItems.push(...failedItems);
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
}

/** A step's `queue` maps to a task queue under the pipeline's own: `kaon` + `python` → `kaon.python`. */
export function taskQueueFor(base: string, queue: string): string {
  return queue === 'default' ? base : `${base}.${queue}`;
}
