// Wire types of k.map between the parent, the sweep coordinator, its shards and the worker. Internal.
import type { Priority } from '@temporalio/common';
import type { ArtifactRef } from '../artifact-ref';
import type { SweepLine } from '../sweep';

export const MAP_WORKFLOW = 'kaon.map';
export const SHARD_WORKFLOW = 'kaon.map.shard';
export const MAP_PROGRESS_SIGNAL = 'kaon.sweepProgress';
export const MapActivity = {
  plan: 'kaon.map.plan',
  stage: 'kaon.map.stage',
  slice: 'kaon.map.slice',
  pool: 'kaon.map.pool',
  assemble: 'kaon.map.assemble',
  write: 'kaon.map.write',
  prior: 'kaon.map.prior',
} as const;
export const SWEEP_QUERY = 'kaon.sweep';

/** Activity calls per shard: a shard's history stays near 3 events per call, far under the 10,240 bound. */
export const SHARD_CALLS = 1000;
/** Items per shard at most (a shard's final write holds its results in memory). */
export const SHARD_MAX_ITEMS = 10_000;
/** Items per manifest slice: the plan records the byte offset of every slice start, and calls read from there. */
export const SLICE_ITEMS = 1000;
/** A call's result lines travel in its activity result up to this many bytes of JSON; past it, the call writes a part. */
export const INLINE_RESULT_BYTES = 1024;
/** A shard writes the inline lines it holds as a pool blob past this many bytes (each payload stays far under 512 KiB). */
export const POOL_FLUSH_BYTES = 192 * 1024;
/** Inline sweep inputs up to this many bytes of JSON ride in workflow arguments; past it they are staged to a manifest. */
export const INLINE_INPUT_BYTES = 64 * 1024;
/** Failure texts carried through history (activity results, shard results) are cut to this many characters. */
export const FAILURE_TEXT_CHARS = 500;
/** Shards one coordinator execution runs before it continues-as-new (about 8 events per shard). */
export const SHARDS_PER_EXECUTION = 400;
/** Items running at once when a sweep does not say. */
export const DEFAULT_MAP_CONCURRENCY = 1000;
/** Failed items a Sweep lists with their errors (all of them are in the results manifest). */
export const MAX_LISTED_FAILURES = 20;

export function shardItemsFor(batch: number): number {
  return Math.min(SHARD_CALLS * batch, SHARD_MAX_ITEMS);
}

/** Live counts of a sweep (coordinator and shard query). */
export interface SweepProgress extends SweepCounts {
  key: string;
  total: number;
  running: number;
  startedAt: number;
  rate: number;
  /** Coordinator only: the shards running now (their own queries have live per-item counts). */
  runningShards?: number[];
}

/** Serialisable activity options (durations in ms), computed by the parent from the step's contract. */
export interface WireActivityOptions {
  taskQueue?: string;
  startToCloseTimeout: number;
  scheduleToCloseTimeout?: number;
  heartbeatTimeout?: number;
  retry: Record<string, unknown>;
  summary?: string;
}

export type MapTarget =
  | { kind: 'step'; name: string; options: WireActivityOptions; itemTimeoutMs?: number }
  | { kind: 'pipeline'; name: string };

/** Items for the sweep: inline (already the inputs) or a JSON-lines manifest with an input template. */
export type MapSource = { kind: 'inline'; inputs: unknown[] } | { kind: 'manifest'; ref: ArtifactRef; template: Template };

export interface MapSpec {
  key: string;
  /** The parent's workflow id and pipeline (for lineage and progress signals). */
  parentId: string;
  pipeline: string;
  target: MapTarget;
  source: MapSource;
  concurrency: number;
  batch: number;
  onFailure: 'fail-fast' | 'after-running' | 'ignore';
  cache: 'on' | 'off';
  priority: Priority;
  /** The coordinator of the earlier run's same sweep, when the run resumes one. */
  resumeFrom?: string;
  /** Parent run options handed to child pipelines per item. */
  childRun?: unknown;
  /** Shards per coordinator execution before it continues-as-new (default SHARDS_PER_EXECUTION). */
  shardsPerExecution?: number;
}

/** What the coordinator carries across continue-as-new. */
export interface CoordinatorState {
  total: number;
  /** Byte offset of every slice start in the manifest (slice = SLICE_ITEMS lines). */
  offsets: number[];
  nextShard: number;
  counts: SweepCounts;
  failures: { index: number; error: string }[];
  /** Merged results so far, contiguous from item 0: shard results concatenated in order. */
  parts: ResultPart[];
  /** Shards that failed as a whole (their items are failed lines with this error). */
  failedShards?: { start: number; end: number; error: string }[];
  startedAt: number;
  executions: number;
}

export interface SweepCounts {
  succeeded: number;
  failed: number;
  cached: number;
  notRun: number;
  /** Of cached: reused from the earlier run on resume. */
  resumed?: number;
}

export interface ResultPart {
  start: number;
  end: number;
  ref: ArtifactRef;
}

export interface ShardArgs {
  spec: Omit<MapSpec, 'source'> & { source: { kind: 'inline' } | { kind: 'manifest'; ref: ArtifactRef; template: Template } };
  shard: number;
  start: number;
  end: number;
  concurrency: number;
  /** Inline sources: this shard's inputs. */
  inputs?: unknown[];
  /** Manifest sources: byte offsets of this shard's slices. */
  offsets?: number[];
}

export interface ShardResult extends SweepCounts {
  /** The shard's results manifest: exactly one line per item of [start, end). */
  part: ResultPart;
  failures: { index: number; error: string }[];
}

/** A blob Kaon writes for itself (a call's result part, a shard's pool): no name, no lineage. */
export interface BlobRef {
  uri: string;
  sha256: string;
  size: number;
}

/** The items of one call read from a manifest: items [first, first + count), in the slices starting at `offsets`. */
export interface CallSlice {
  ref: ArtifactRef;
  /** Byte offsets of the slices the call's items are in (one, or two when the call spans a slice boundary). */
  offsets: number[];
  /** The item index of the first slice's first line. */
  sliceStart: number;
  first: number;
  count: number;
  template: Template;
}

/** A step activity called for sweep items (a batch of 1 is one item). The items are inline or read from a manifest. */
export interface BatchCall {
  key: string;
  pipeline: string;
  cache: 'on' | 'off';
  /** Inline items (small inline sweeps). */
  items?: { i: number; input: unknown }[];
  /** Or items of the sweep's manifest, read by the worker (inputs never enter the shard's history). */
  slice?: CallSlice;
  /** The earlier run's results for this shard: reuse items whose memo key matches. */
  prior?: { ref: ArtifactRef; start: number };
  /** Each item's own time limit, when the call holds more than one (its timeout is the step's × batch). */
  itemTimeoutMs?: number;
}

export function isBatchCall(v: unknown): v is BatchCall {
  return typeof v === 'object' && v !== null && ('items' in v || 'slice' in v);
}

/**
 * What a call returns: its counts and either its lines (small) or the part it wrote (one line per item, in order).
 * Every item of the call has exactly one line: its output or its own error.
 */
export interface BatchResult {
  attempt: number;
  first: number;
  count: number;
  succeeded: number;
  failed: number;
  cached: number;
  lines?: SweepLine[];
  part?: BlobRef;
  /** The first failed items, their errors cut to FAILURE_TEXT_CHARS (the full text is in the line). */
  failures?: { index: number; error: string }[];
}

/** What a batch call heartbeats: the lines done so far (bounded), and the item it is on. */
export interface BatchBeat {
  fraction: number;
  message: string;
  /** Lines done and not in a checkpoint blob (at most 128 KiB: past it, they are spilled to a new blob). */
  done: SweepLine[];
  /** Blobs of lines done (disjoint from each other and from `done`), with the items each holds. */
  checkpoints?: Checkpoint[];
  current?: number;
}

/** Lines a call wrote so far: the next attempt, or the shard after a final failure, keeps them. */
export interface Checkpoint extends BlobRef {
  items: number[];
}

/** The lines of a call whose activity failed for good, salvaged by the shard (see map-shard.ts). */
export interface CallOutcome {
  first: number;
  count: number;
  part?: BlobRef;
  lines?: SweepLine[];
}

/** Write a shard's results manifest: call c covers items [start + c·batch, …); its lines are in a part or a pool. */
export interface AssembleCall {
  start: number;
  end: number;
  batch: number;
  /** Calls that wrote their own part. */
  parts: { c: number; part: BlobRef }[];
  /** Blobs of inline lines the shard flushed, and the lines it still holds. */
  pools: BlobRef[];
  lines: SweepLine[];
  /** Lines for items without an outcome. */
  missing: { status: 'cancelled' | 'skipped'; error: string };
  name: string;
  producer: { pipeline: string; runId: string; step: string; attempt: number };
  /** Record the result under this shard id for a later resume. */
  record?: string;
}

/** A results manifest written, with the counts of what it holds (the counts a sweep reports are these). */
export interface WrittenResults extends SweepCounts {
  ref: ArtifactRef;
}

export interface WriteCall {
  /** Concatenate ordered shard parts, each exactly its range's lines; gaps get `missing`, failed ranges a failed line. */
  mode: 'concat';
  start: number;
  end: number;
  parts: ResultPart[];
  /** Ranges whose shard failed as a whole: each item gets a failed line with the shard's error. */
  failed?: { start: number; end: number; error: string }[];
  missing: { status: 'cancelled' | 'skipped'; error: string };
  name: string;
  producer: { pipeline: string; runId: string; step: string; attempt: number };
}

/** A pipeline sweep's shard reads its items' inputs (they are its children's arguments). */
export interface SliceCall {
  ref: ArtifactRef;
  offset: number;
  start: number;
  count: number;
  template: Template;
}

/** Stage inline inputs as a manifest (chunked: each call's payload stays small), or join staged chunks. */
export type StageCall = { inputs: unknown[]; name: string; producer: WriteCall['producer'] } | { join: ArtifactRef[]; name: string; producer: WriteCall['producer'] };

// ─── Input templates ─────────────────────────────────────────────────────────────────────────────────
// With a manifest, the parent never sees the items, so `input(item, i)` is evaluated once with placeholders
// and the resulting template is filled per line on the worker. Computing with a placeholder is refused.

export type Template = unknown;
const HOLE = '$kaonHole';
type Hole = { [HOLE]: 'item' | 'index'; path: string[] };

export class TemplateError extends Error {
  override readonly name = 'TemplateError';
}

function isHole(v: unknown): v is Hole {
  return typeof v === 'object' && v !== null && HOLE in v;
}

/** Evaluate `fn` on placeholders and return the template, or throw TemplateError if it computes with them. */
export function buildTemplate(fn: (item: unknown, index: number) => unknown): Template {
  const paths = new WeakMap<object, Hole>();
  const refuse = (what: string) => () => {
    throw new TemplateError(what);
  };
  const make = (hole: Hole): unknown => {
    const target = function placeholder() {};
    const proxy: object = new Proxy(target, {
      get(_t, prop) {
        if (prop === Symbol.toPrimitive || prop === 'valueOf' || prop === 'toString' || prop === 'toJSON') return refuse(`converts the ${hole[HOLE]}${hole.path.map((p) => `.${p}`).join('')} to a value`);
        if (typeof prop === 'symbol') return undefined;
        return make({ [HOLE]: hole[HOLE], path: [...hole.path, prop] });
      },
      has: refuse('tests a field with `in`'),
      ownKeys: refuse('lists or spreads the fields of the item'),
      apply: refuse('calls a method of the item'),
      set: refuse('assigns to the item'),
    });
    paths.set(proxy, hole);
    return proxy;
  };
  const walk = (v: unknown): unknown => {
    if ((typeof v === 'object' || typeof v === 'function') && v !== null && paths.has(v)) return paths.get(v);
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    if (typeof v === 'function') throw new TemplateError('returns a function');
    return v;
  };
  return walk(fn(make({ [HOLE]: 'item', path: [] }), make({ [HOLE]: 'index', path: [] }) as number));
}

/** Fill a template with one item. A missing field is undefined (the step's input schema then names it). */
export function applyTemplate(t: Template, item: unknown, index: number): unknown {
  if (isHole(t)) {
    let v: unknown = t[HOLE] === 'index' ? index : item;
    for (const p of t.path) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[p] : undefined;
    return v;
  }
  if (Array.isArray(t)) return t.map((x) => applyTemplate(x, item, index));
  if (typeof t === 'object' && t !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(t)) {
      const v = applyTemplate(x, item, index);
      if (v !== undefined) out[k] = v;
    }
    return out;
  }
  return t;
}

/** The identity template: each manifest line is the input. */
export const IDENTITY_TEMPLATE: Template = { [HOLE]: 'item', path: [] };
