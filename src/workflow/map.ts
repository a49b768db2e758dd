// k.map: a sweep of any size. The parent starts one coordinator child (map-coordinator.ts), which shards the
// items over child workflows (map-shard.ts); the parent's history holds the sweep as one child, whatever its size.
import { artifactBase, boundedId } from '../definition/internal/ids';
import { ApplicationFailure, defineSignal, executeChild, isCancellation, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import { isArtifactRef, type ArtifactRef } from '../definition/artifact-ref';
import { ErrorCode } from '../definition/errors';
import {
  buildTemplate,
  DEFAULT_MAP_CONCURRENCY,
  IDENTITY_TEMPLATE,
  INLINE_INPUT_BYTES,
  MapActivity,
  MAP_PROGRESS_SIGNAL,
  MAP_WORKFLOW,
  TemplateError,
  type MapSource,
  type MapSpec,
  type MapTarget,
  type StageCall,
  type SweepProgress,
  type Template,
} from '../definition/internal/map';
import { SAKey } from '../definition/internal/protocol';
import { isPipeline, type AnyPipeline } from '../definition/pipeline';
import { isStepDef, type StepDef } from '../definition/step';
import type { Sweep } from '../definition/sweep';
import type { StepState } from '../observe/run-state';
import { childRunOptions } from './child';
import type { RunCore } from './core';
import { childMessage } from './failures';
import type { FailurePolicy } from './foreach';
import { activityOptionsFor, type StepCallOptions } from './options';
import { now } from './run-state-tracker';

export interface MapOptions<T, I> {
  /** The step input (or child params) for an item. Default: the item itself. */
  input?: (item: T, index: number) => I;
  /** Items running at once across the whole sweep. Default 1,000. */
  concurrency?: number;
  /** Default 'fail-fast'. With 'ignore' the Sweep reports the failures and the run goes on. */
  onFailure?: FailurePolicy;
  /** The sweep's key in the run state. Default: the step or pipeline name. */
  label?: string;
  /**
   * Items per activity call (steps only), run one after another: cheap items amortise one call, and a Python
   * step's batch runs in one process. It does not lower parallelism: `concurrency` items still run at once.
   */
  batch?: number;
  /** Per-call overrides of the step's options (timeout is per item; a batch call gets timeout × batch). */
  step?: Omit<StepCallOptions, 'key'>;
  /** Shards the coordinator runs per execution before it continues-as-new. Default 400 (~3,200 events). */
  shardsPerExecution?: number;
}

const stager = proxyActivities<{ [MapActivity.stage](c: StageCall): Promise<ArtifactRef> }>({ startToCloseTimeout: '5m', heartbeatTimeout: '20s', retry: { maximumAttempts: 5, initialInterval: '500ms' } });

async function stage(inputs: unknown[], key: string, pipeline: string, runId: string): Promise<ArtifactRef> {
  const producer = { pipeline, runId, step: key, attempt: 1 };
  const name = `${artifactBase(key)}.items.jsonl`;
  const chunks: unknown[][] = [[]];
  let size = 0;
  for (const v of inputs) {
    const b = (JSON.stringify(v) ?? 'null').length + 1;
    if (size + b > STAGE_CHUNK_BYTES && chunks[chunks.length - 1]!.length) {
      chunks.push([]);
      size = 0;
    }
    chunks[chunks.length - 1]!.push(v);
    size += b;
  }
  if (chunks.length === 1) return stager[MapActivity.stage]({ inputs: chunks[0]!, name, producer });
  const refs = await Promise.all(chunks.map((c, n) => stager[MapActivity.stage]({ inputs: c, name: `${artifactBase(key)}.items-${n}.jsonl`, producer })));
  return stager[MapActivity.stage]({ join: refs, name, producer });
}

/** Staged inputs travel to the stage activity in chunks of at most this many bytes of JSON. */
const STAGE_CHUNK_BYTES = 128 * 1024;

const mapProgress = defineSignal<[SweepProgress]>(MAP_PROGRESS_SIGNAL);

/** Inline inputs are carried by the coordinator's and shards' arguments; past this, a manifest must carry them. */
export const MAX_INLINE_MAP_BYTES = 1024 * 1024;

function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: ErrorCode.invalidDefinition, nonRetryable: true, message });
}

function positiveInt(v: number | undefined, name: string, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1 || v > max) throw invalid(`k.map option ${name} is ${JSON.stringify(v)}. To fix: pass an integer from 1 to ${max}.`);
  return v;
}

function sweepState(p: Partial<SweepProgress> & { total: number }): NonNullable<StepState['sweep']> {
  return { total: p.total, running: p.running ?? 0, succeeded: p.succeeded ?? 0, failed: p.failed ?? 0, cached: p.cached ?? 0, ...(p.resumed ? { resumed: p.resumed } : {}), notRun: p.notRun ?? 0, rate: p.rate ?? 0 };
}

const handlers = new WeakSet<RunCore>();

export async function runMap(core: RunCore, target: StepDef | AnyPipeline, items: readonly unknown[] | ArtifactRef, opts: MapOptions<unknown, unknown> = {}): Promise<Sweep> {
  const isStep = isStepDef(target);
  if (!isStep && !isPipeline(target)) throw invalid('k.map needs a step (defineStep) or a pipeline (definePipeline) as its first argument. To fix: check the import of what you map over; it is undefined or something else.');
  const name = isStep ? target.name : target.kaon.name;
  const paused = core.whenRunning();
  if (paused) await paused;
  core.guard.check(`sweep "${name}"`);
  const batch = positiveInt(opts.batch, 'batch', 1, 1000);
  if (!isStep && batch > 1) throw invalid(`k.map over pipeline "${name}" cannot batch: each item is its own child workflow. To fix: drop the batch option, or map a step.`);
  const concurrency = positiveInt(opts.concurrency, 'concurrency', DEFAULT_MAP_CONCURRENCY, 100_000);
  const key = core.key(opts.label ?? name);
  const info = workflowInfo();

  let source: MapSource;
  if (Array.isArray(items)) {
    // The parent has the items: evaluate input() for real, once per item.
    const inputs = opts.input ? items.map((item, i) => opts.input!(item, i)) : [...items];
    const bytes = JSON.stringify(inputs).length;
    if (bytes > MAX_INLINE_MAP_BYTES) {
      throw invalid(`k.map "${key}" got ${items.length} items whose inputs are ${(bytes / 1048576).toFixed(1)} MiB of JSON, over the ${MAX_INLINE_MAP_BYTES / 1048576} MiB that can travel in workflow arguments. To fix: have a step write the items as a JSON-lines artifact (one item per line) and pass its ArtifactRef to k.map instead of the array.`);
    }
    if (bytes > INLINE_INPUT_BYTES) {
      // Past 64 KiB the inputs are staged as a manifest (in chunks, so no payload nears Temporal's 512 KiB warning):
      // then the coordinator, its shards and their calls carry a ref, and each item's input is read by the worker.
      source = { kind: 'manifest', ref: await stage(inputs, key, core.tracker.state.pipeline, info.workflowId), template: IDENTITY_TEMPLATE };
    } else source = { kind: 'inline', inputs };
  } else if (isArtifactRef(items)) {
    let template: Template = IDENTITY_TEMPLATE;
    if (opts.input) {
      try {
        template = buildTemplate(opts.input as (item: unknown, i: number) => unknown);
      } catch (err) {
        if (!(err instanceof TemplateError)) throw err;
        throw invalid(`k.map "${key}" over a manifest: its input function ${err.message}. With a manifest the items never enter the workflow, so input() is evaluated once with placeholders: it may place the item, its fields (item.lr) and the index anywhere in the input, but not compute with them. To fix: write the computed values into the manifest's lines, or compute them inside the step.`);
      }
    }
    source = { kind: 'manifest', ref: items, template };
  } else {
    throw invalid(`k.map "${key}" needs its items as an array or an ArtifactRef to a JSON-lines manifest; got ${items === null ? 'null' : typeof items}. To fix: pass an array, or the ArtifactRef a step returned for a file with one JSON item per line.`);
  }

  let mapTarget: MapTarget;
  if (isStep) {
    const o = activityOptionsFor(target, opts.step ?? {}, key, core.priority);
    const perItem = o.startToCloseTimeout as number;
    mapTarget = {
      kind: 'step',
      name,
      ...(batch > 1 ? { itemTimeoutMs: perItem } : {}),
      options: {
        startToCloseTimeout: Math.min(perItem * batch, 24 * 3600_000),
        retry: o.retry as Record<string, unknown>,
        ...(o.taskQueue ? { taskQueue: o.taskQueue } : {}),
        ...(o.scheduleToCloseTimeout !== undefined ? { scheduleToCloseTimeout: o.scheduleToCloseTimeout as number } : {}),
        // A batch reports the items it has done by heartbeat: without one, a lost worker is noticed only at the timeout.
        ...(o.heartbeatTimeout !== undefined ? { heartbeatTimeout: o.heartbeatTimeout as number } : batch > 1 ? { heartbeatTimeout: 30_000 } : {}),
      },
    };
  } else mapTarget = { kind: 'pipeline', name };

  // A resumed run reuses the earlier sweep's succeeded items, unless the user named this sweep to recompute.
  const from = core.run.resumeFrom;
  const recompute = from?.recompute.some((r) => r === key || r === name || key.startsWith(`${r}[`) || key.startsWith(`${r}#`));
  const resumeFrom = from && !recompute ? boundedId(`${from.workflowId}/${key}`) : undefined;
  const spec: MapSpec = {
    key,
    parentId: info.workflowId,
    pipeline: core.tracker.state.pipeline,
    target: mapTarget,
    source,
    concurrency,
    batch,
    onFailure: opts.onFailure ?? 'fail-fast',
    cache: core.run.cache,
    priority: core.priority,
    ...(resumeFrom ? { resumeFrom } : {}),
    ...(!isStep ? { childRun: childRunOptions(core.run, key) } : {}),
    ...(opts.shardsPerExecution !== undefined ? { shardsPerExecution: positiveInt(opts.shardsPerExecution, 'shardsPerExecution', 400, 1000) } : {}),
  };

  const total = source.kind === 'inline' ? source.inputs.length : 0;
  const branch = core.branch;
  const st = core.tracker.add({ key, step: name, status: 'running', attempts: 1, startedAt: now(), sweep: sweepState({ total }), ...(branch ? { branch } : {}) });
  if (!handlers.has(core)) {
    handlers.add(core);
    setHandler(mapProgress, (p) => {
      const s = core.tracker.get(p.key);
      if (s?.sweep && s.status === 'running') core.tracker.update(s, { sweep: sweepState(p) });
    });
  }
  const slot = core.guard.slot();
  const release = typeof slot === 'function' ? slot : await slot;
  let sweep: Sweep;
  const coordinatorId = boundedId(`${info.workflowId}/${key}`);
  // A pause of the run reaches the sweep: its coordinator and shards start no new item while paused.
  core.control.followers.add(coordinatorId);
  try {
    sweep = (await executeChild(MAP_WORKFLOW, {
      workflowId: coordinatorId,
      taskQueue: info.taskQueue,
      args: [spec],
      staticSummary: `sweep ${key}: ${name} over ${source.kind === 'inline' ? `${total} items` : `the items of ${items && (items as ArtifactRef).name ? (items as ArtifactRef).name : 'a manifest'}`} (child of ${info.workflowId})`,
      typedSearchAttributes: [{ key: SAKey.pipeline, value: MAP_WORKFLOW }],
      priority: core.priority,
    })) as Sweep;
  } catch (err) {
    core.tracker.update(st, { status: isCancellation(err) ? 'cancelled' : 'failed', endedAt: now(), error: childMessage(err) });
    throw err;
  } finally {
    release();
    core.control.followers.delete(coordinatorId);
  }
  const failed = sweep.failed > 0 && spec.onFailure !== 'ignore';
  core.tracker.update(st, { status: failed ? 'failed' : 'succeeded', endedAt: now(), sweep: sweepState({ ...sweep, running: 0 }) });
  if (sweep.failures.length > 0) core.tracker.state.failedItems.push(...sweep.failures.map((f) => ({ key: `${key}[${f.index}]`, error: f.error })));
  if (failed) {
    const listed = sweep.failures.slice(0, 5).map((f) => `[${f.index}] ${f.error.split('\n')[0]}`).join('; ');
    const message = `${sweep.failed} of ${sweep.total} items of sweep "${key}" failed${spec.onFailure === 'fail-fast' ? ` (fail-fast: ${sweep.notRun} not run)` : ''}: ${listed}${sweep.failed > 5 ? ` (and ${sweep.failed - 5} more)` : ''}. Every item's result is in the results manifest; 'kaon resume' re-runs only the items that did not succeed`;
    core.tracker.update(st, { error: message });
    throw ApplicationFailure.create({ type: ErrorCode.mapFailed, nonRetryable: true, message, details: [sweep] });
  }
  return sweep;
}
