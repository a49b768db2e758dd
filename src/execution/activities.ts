import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow';
import { ErrorCode, KaonError, parseOrThrow } from '../definition/errors';
import type { StepCall, StepFailureDetails, StepResult } from '../definition/internal/protocol';
import { FAILURE_TEXT_CHARS, INLINE_RESULT_BYTES, isBatchCall, MAX_LISTED_FAILURES, type BatchBeat, type BatchCall, type BatchResult, type BlobRef, type Checkpoint } from '../definition/internal/map';
import type { SweepLine } from '../definition/sweep';
import { blobArtifact, priorLine, readCallItems, readResults, readSweep, writeLines } from '../data/manifest';
import { keySegment } from '../data/names';
import { isArtifactRef, type ArtifactRef } from '../definition/artifact-ref';
import type { StepDef, StepRunner } from '../definition/step';
import type { ModelRegistration, StepArtifacts, StepContext, StepImpl, StepLogger, StepMetric } from './implement';
import type { ItemSession } from './item-session';
import type { PriorSteps } from './prior-steps';
import { createStepRecord, type StepRecord } from './step-record';
import { assertJsonValue } from '../definition/json-value';
import type { KaonMetrics, StepOutcome } from '../observe/metrics';
import { storeCard } from './cards';
import { assertNoSecret, redactError, redactValue, resolveSecrets, type Redact } from './secrets';

/** JSON outputs above this stay out of workflow history (invariant 4). Temporal itself fails at 2 MiB. */
export const MAX_OUTPUT_BYTES = 256 * 1024;

/** Runs a step whose contract carries a `run` descriptor (process, python…). Plugged in per runner kind. */
export type RunnerExecutor = ((def: StepDef, input: unknown, ctx: StepContext) => Promise<unknown>) & {
  /**
   * What else a runner step's result depends on: its script's content, requirements, argv. Part of the cache and
   * resume key, so an edited train.py never serves yesterday's result.
   */
  fingerprint?: (def: StepDef) => Promise<string | undefined>;
  /**
   * Open a session that runs many items of `def` in one process (a sweep's batch; see ItemSession). Undefined: this
   * step cannot (e.g. a one-item script), so the caller runs each item through the executor itself.
   */
  session?: (def: StepDef, ctx: StepContext) => Promise<ItemSession | undefined>;
};

export interface StepActivityDeps {
  /** TS implementations (from implementStep). */
  impls: readonly StepImpl[];
  /** Contracts whose `run` descriptor an executor resolves. */
  steps?: readonly StepDef[];
  executors?: Partial<Record<StepRunner['kind'], RunnerExecutor>>;
  /** How often a running step heartbeats on its own, so cancellation reaches it. */
  autoHeartbeatMs?: number;
  /** The artifact store behind ctx.artifacts. */
  artifacts?: StepArtifactStore;
  /** The memo table: cross-run caching and resume. Without it every step runs. */
  memo?: StepMemo;
  /** Earlier runs' completed steps, for resume. Without it a resume recomputes every step. */
  prior?: PriorSteps;
  /** Where step durations, attempts, cache lookups, artifact bytes and sweep items are counted. Default: nowhere. */
  metrics?: KaonMetrics;
  /** Records each attempt elsewhere (MLflow). Never fails a step; its time is bounded by bookkeepingTimeoutMs. */
  bookkeeping?: StepBookkeeping;
  /** Default 30 s. */
  bookkeepingTimeoutMs?: number;
}

/** One attempt of a step, as bookkeeping sees it (after it ran; outputs reused from the memo are not recorded). */
export interface StepAttempt {
  pipeline: string;
  /** Workflow id (Kaon's run id) and Temporal's run id of the execution. */
  runId: string;
  executionRunId: string;
  key: string;
  step: string;
  version: string | number;
  attempt: number;
  input: unknown;
  output?: unknown;
  error?: string;
  /** Whether Temporal retries a failed attempt. */
  retrying?: boolean;
  /** The output was reused (cache or resume) from this earlier run; the step did not run. */
  reused?: { from: 'cache' | 'resume'; runId: string };
  startedAt: number;
  endedAt: number;
  metrics: StepMetric[];
  models: ModelRegistration[];
  /** The params the run was started with (read from its history once, on demand). */
  params(): Promise<unknown>;
  /** The bytes of an artifact (verified against its sha256 at the end), when the worker has a store. */
  readArtifact?: (ref: ArtifactRef) => Promise<NodeJS.ReadableStream>;
  /** Resolves when the run (its workflow, through continue-as-new) ends: its status. */
  runEnded(): Promise<'FINISHED' | 'FAILED' | 'KILLED'>;
}

export interface StepBookkeeping {
  record(attempt: StepAttempt, log: StepLogger): Promise<void>;
}

/** What execution needs of the data seam's store (kept minimal so tests can pass a fake). */
export interface StepArtifactStore {
  put(source: Parameters<StepArtifacts['put']>[0], meta: { name?: string; mediaType?: string; producer: ArtifactRef['producer']; inputs?: ArtifactRef[] }): Promise<ArtifactRef>;
  getPath(ref: ArtifactRef, dir?: string): Promise<string>;
  getStream(ref: ArtifactRef): ReturnType<StepArtifacts['getStream']>;
  /** Hold the lineage of one attempt's puts until it succeeds (see ArtifactStore.holdLineage); without it, puts record at once. */
  holdLineage?(producer: ArtifactRef['producer']): { commit(): Promise<void>; discard(): void };
  /** Sweeps: a call's result part (see ArtifactStore.putBlob), and its checkpoint between attempts. */
  putBlob?(source: Parameters<StepArtifacts['put']>[0]): Promise<BlobRef>;
  records?: { get(key: string): Promise<unknown>; put(key: string, value: unknown): Promise<void>; delete(key: string): Promise<boolean> };
}

/** What execution needs of the memo table (the cross-run cache). */
export interface StepMemo {
  key(input: { step: string; version: string | number; input: unknown; salt?: string | number }): string;
  /** A cross-run cache entry, only if every artifact it refers to still exists. */
  get(key: string): Promise<{ output: unknown; runId: string } | undefined>;
  put(key: string, entry: { output: unknown; refs: ArtifactRef[]; runId: string; stepKey: string; step: string }): Promise<unknown>;
  /** Whether every artifact still exists (a reuse whose blobs are gone is a recompute). */
  allExist(refs: ArtifactRef[]): Promise<boolean>;
}

export type StepActivity = (call: StepCall) => Promise<StepResult>;
export type StepBatchActivity = (call: BatchCall) => Promise<BatchResult>;

/** A step this worker can run: its contract and how to execute it (a TS function or a runner executor). */
export interface Runnable {
  def: StepDef;
  exec: (input: unknown, ctx: StepContext) => Promise<unknown>;
  fingerprint?: () => Promise<string | undefined>;
  /** Many items in one process (see RunnerExecutor.session); absent for TS steps, which run in the worker already. */
  session?: (ctx: StepContext) => Promise<ItemSession | undefined>;
}

/** Every runnable step of `deps`, by name (the activity type). Shared by the activities and local runs. */
export function collectRunnables(deps: Pick<StepActivityDeps, 'impls' | 'steps' | 'executors'>): Map<string, Runnable> {
  const byName = new Map<string, Runnable>();
  const add = (def: StepDef, exec: Runnable['exec'], fingerprint?: Runnable['fingerprint'], session?: Runnable['session']) => {
    const prev = byName.get(def.name);
    if (prev && prev.def !== def) {
      throw new KaonError({
        code: ErrorCode.invalidDefinition,
        what: `two different steps are named "${def.name}"`,
        fix: 'give every step a unique name; the name is the Temporal activity type',
      });
    }
    byName.set(def.name, { def, exec, ...(fingerprint ? { fingerprint } : {}), ...(session ? { session } : {}) });
  };
  const implemented = new Set<StepImpl>();
  for (const impl of deps.impls) {
    if (implemented.has(impl)) continue; // the same implementation exported twice (re-exports) is one
    if (deps.impls.some((other) => other !== impl && implemented.has(other) && other.def.name === impl.def.name)) {
      throw new KaonError({ code: ErrorCode.invalidDefinition, what: `step "${impl.def.name}" is implemented twice`, fix: 'keep one implementStep() per step in the activities module the worker loads' });
    }
    implemented.add(impl);
    add(impl.def, async (input, ctx) => impl.fn(input as never, ctx));
  }
  const contracts = new Map<string, StepDef>();
  for (const def of deps.steps ?? []) {
    const other = contracts.get(def.name) ?? byName.get(def.name)?.def;
    if (other && other !== def) {
      throw new KaonError({ code: ErrorCode.invalidDefinition, what: `two different steps are named "${def.name}"`, fix: 'give every step a unique name; the name is the Temporal activity type' });
    }
    contracts.set(def.name, def);
  }
  for (const def of deps.steps ?? []) {
    if (!def.run || byName.has(def.name)) continue;
    const executor = deps.executors?.[def.run.kind];
    if (!executor) {
      throw new KaonError({
        code: ErrorCode.noImplementation,
        what: `step "${def.name}" runs as '${def.run.kind}', but this worker has no executor for that kind`,
        fix: `start the worker through kaon/worker (createKaonWorker), which installs the standard executors`,
      });
    }
    const fp = executor.fingerprint;
    const session = executor.session;
    add(def, (input, ctx) => executor(def, input, ctx), fp ? () => fp(def) : undefined, session ? (ctx) => session(def, ctx) : undefined);
  }
  return byName;
}

function failure(err: unknown, details: StepFailureDetails): unknown {
  if (err instanceof CancelledFailure) return err;
  if (err instanceof KaonError) {
    const extra = err.details as { issues?: string[]; tail?: string[] } | undefined;
    return ApplicationFailure.create({
      type: err.code,
      message: err.message,
      nonRetryable: !err.retryable,
      details: [{ ...details, ...(extra?.issues ? { issues: extra.issues } : {}), ...(Array.isArray(extra?.tail) ? { logTail: extra.tail } : {}) }],
    });
  }
  if (err instanceof ApplicationFailure) {
    return ApplicationFailure.create({
      type: err.type ?? 'Error',
      message: err.message,
      nonRetryable: err.nonRetryable ?? false,
      details: [details, ...(err.details ?? [])],
      ...(err.cause ? { cause: err.cause } : {}),
    });
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return ApplicationFailure.create({ type: e.name || 'Error', message: e.message, nonRetryable: false, details: [details], cause: e });
}

export function refsIn(value: unknown, out: ArtifactRef[] = []): ArtifactRef[] {
  if (isArtifactRef(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) refsIn(v, out);
  else if (typeof value === 'object' && value !== null) for (const v of Object.values(value)) refsIn(v, out);
  return out;
}

export function noStore(name: string): KaonError {
  return new KaonError({
    code: ErrorCode.config,
    what: `step "${name}" used ctx.artifacts, but this worker has no artifact store`,
    fix: 'create the worker with createKaonWorker (it opens the store named by KAON_ARTIFACTS), or pass deps.artifacts',
  });
}

/** A step to recompute on resume: named by its key (`train[US]`) or by its step name (`train`). */
function recomputes(recompute: readonly string[], key: string, step: string): boolean {
  return recompute.some((r) => r === key || r === step || key.startsWith(`${r}[`) || key.startsWith(`${r}#`));
}

function outcomeOf(err: unknown, actx: Context): StepOutcome {
  return actx.cancellationSignal.aborted || err instanceof CancelledFailure ? 'cancelled' : 'failed';
}

function byteLength(v: unknown): number {
  return Buffer.byteLength(JSON.stringify(v) ?? '', 'utf8');
}

interface ItemEnv {
  /** A sweep item's own time limit (a batch call's timeout is the step's × batch). */
  itemTimeoutMs?: number;
  name: string;
  def: StepDef;
  exec: Runnable['exec'];
  fingerprint?: Runnable['fingerprint'];
  deps: StepActivityDeps;
  runId: string;
  attempt: number;
}

/** Validate the output and bound its size (invariants 3 and 4). */
export function checkOutput(def: StepDef, raw: unknown, key: string): unknown {
  // Before zod: a function, NaN or Map would otherwise vanish or change on the way into history.
  assertJsonValue(raw, `output of step "${def.name}" (key ${key})`, 'return plain JSON data (large or binary data as an artifact ref)', ErrorCode.invalidOutput);
  const output = parseOrThrow(def.output, raw, {
    code: ErrorCode.invalidOutput,
    subject: `output of step "${def.name}" (key ${key})`,
    fix: `make the step return what its output schema declares, or update the schema (and bump the step version)`,
  });
  const size = byteLength(output);
  if (size > MAX_OUTPUT_BYTES) {
    throw new KaonError({
      code: ErrorCode.outputTooLarge,
      what: `output of step "${def.name}" (key ${key}) is ${(size / 1024).toFixed(0)} KiB of JSON, over Kaon's ${MAX_OUTPUT_BYTES / 1024} KiB limit for workflow history`,
      fix: 'write the large part as an artifact (ctx.artifacts.put) and return its ArtifactRef instead of the data',
    });
  }
  return output;
}

export function parseInput(def: StepDef, raw: unknown, key: string): unknown {
  return parseOrThrow(def.input, raw, {
    code: ErrorCode.invalidInput,
    subject: `input of step "${def.name}" (key ${key})`,
    fix: `pass an input that matches the step's input schema from the pipeline, or update the schema`,
  });
}

/** The resume key an earlier run's input has under this worker's step version (a changed version never matches). */
function priorKey(env: ItemEnv, raw: unknown, key: string): string | undefined {
  try {
    return resumeKeyOf(env, parseInput(env.def, raw, key));
  } catch {
    return undefined;
  }
}

/**
 * What resume matches an earlier success on: the step, its version and its input, not its code. A resumed run
 * re-runs what failed or never ran, whatever code changed since; `--recompute <step>` names what else to redo.
 */
function resumeKeyOf(env: ItemEnv, input: unknown): string | undefined {
  return env.deps.memo?.key({ step: env.name, version: env.def.version, input, salt: 'resume' });
}

function memoKeyOf(env: ItemEnv, input: unknown, fingerprint: string | undefined): string | undefined {
  const cacheOpt = env.def.options.cache;
  const salt = [typeof cacheOpt === 'object' && cacheOpt.version !== undefined ? String(cacheOpt.version) : '', fingerprint ?? ''].filter(Boolean).join('|');
  return env.deps.memo?.key({ step: env.name, version: env.def.version, input, ...(salt ? { salt } : {}) });
}

function producerOf(pipeline: string, runId: string, step: string, attempt: number): ArtifactRef['producer'] {
  return { pipeline, runId, step, attempt };
}

/**
 * A reused output (a cache hit, or an earlier run's step on resume) checked against today's output schema: a
 * stored value from before a schema change must not pass through unvalidated. Undefined (a miss, said in the log
 * and in the step's run-state note) when it no longer fits.
 */
function revalidated(def: StepDef, stored: unknown, key: string, reused: { from: 'cache' | 'resume'; runId: string }, log: StepLogger, notes: string[]): { output: unknown } | undefined {
  try {
    return { output: checkOutput(def, stored, key) };
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    const what = reused.from === 'cache' ? `the cached output (from run ${reused.runId})` : `the output of run ${reused.runId} (resume)`;
    const note = `${what} no longer matches the output schema of step "${def.name}" v${def.version}, so it was recomputed (${why})`;
    log.warn(`step ${key}: ${note}`);
    notes.push(note);
    return undefined;
  }
}

/**
 * The writes after a step succeeded: its lineage (held during the attempt) and its memo entry. Either failing is a
 * warning (worker log and the step's run-state note), never the step's failure: the output is valid and in history.
 */
async function afterSuccess(env: ItemEnv, log: StepLogger, key: string, notes: string[], held: { commit(): Promise<void> } | undefined, putMemo: (() => Promise<unknown>) | undefined): Promise<void> {
  const attempt = async (what: string, consequence: string, write: () => Promise<unknown>) => {
    try {
      await write();
    } catch (err) {
      const note = `${what} failed after the step succeeded (${err instanceof Error ? err.message : String(err)}); the output stands, but ${consequence}`;
      log.warn(`step ${key}: ${note}. To fix: check that the artifact store (KAON_ARTIFACTS) is reachable and writable by this worker`);
      notes.push(note);
    }
  };
  if (held) await attempt('recording lineage', `the run's artifact listing and lineage miss this step's artifacts`, () => held.commit());
  if (putMemo) await attempt(`writing the cache entry of step "${env.name}"`, 'the next run with this input recomputes it', putMemo);
}

/** Whether an error is a property of the input or the code (not retried) rather than of the moment. */
function permanent(err: unknown): boolean {
  if (err instanceof KaonError) return !err.retryable;
  if (err instanceof ApplicationFailure) return err.nonRetryable === true;
  return false;
}

/**
 * Build the Temporal activities for a set of steps: one activity per step name. Each validates its input,
 * runs the implementation, validates the output, and bounds its size (invariants 3 and 4). The same activity
 * also runs k.map items, one or a batch per call (a BatchCall).
 */
export function createStepActivities(deps: StepActivityDeps): Record<string, StepActivity> {
  const runnables = collectRunnables(deps);
  const activities: Record<string, StepActivity> = {};
  for (const [name, runnable] of runnables) {
    const { def, exec, fingerprint: fp } = runnable;
    const single = async (call: StepCall): Promise<StepResult> => {
      const actx = Context.current();
      const attempt = actx.info.attempt;
      const details: StepFailureDetails = { attempt, step: name, key: call.key };
      const runId = actx.info.workflowExecution?.workflowId ?? '';
      const env: ItemEnv = { name, def, exec, ...(fp ? { fingerprint: fp } : {}), deps, runId, attempt };
      const { ctx, setInputs, stop, cards, record, secrets } = stepContext(env, actx, call.key, call.pipeline);
      const started = performance.now();
      const finished = (status: StepOutcome) => deps.metrics?.stepFinished({ step: name, queue: def.options.queue ?? 'default', status, seconds: (performance.now() - started) / 1000, attempt });
      const startedAt = Date.now();
      let input: unknown;
      try {
        input = parseInput(def, call.input, call.key);
        setInputs(refsIn(input));
        const memo = deps.memo;
        const cacheOn = Boolean(def.options.cache) && call.cache !== 'off';
        // The memo key (canonical JSON + sha256 of the input) only matters to caching and resume.
        // The memo key covers the code (a runner step's script) and the input; resume matches on the input alone.
        const key = cacheOn ? memoKeyOf(env, input, await env.fingerprint?.()) : undefined;
        const notes: string[] = [];
        if (memo && (key || call.resumeFrom)) {
          const reuse = async (output: unknown, from: 'cache' | 'resume', fromRun: string): Promise<StepResult> => {
            finished(from === 'cache' ? 'cached' : 'resumed');
            await bookkeep(env, actx, call, record, { input, output, startedAt, reused: { from, runId: fromRun } });
            return { output, attempt, reused: { from, runId: fromRun } };
          };
          // Resume: reuse what the earlier run computed for this step key from the same input (read from its history).
          const from = call.resumeFrom;
          if (from && deps.prior && !recomputes(from.recompute, call.key, name)) {
            const prev = (await deps.prior.of(from.workflowId)).get(call.key);
            if (prev?.step === name && priorKey(env, prev.input, call.key) === resumeKeyOf(env, input) && (await memo.allExist(refsIn(prev.output)))) {
              const valid = revalidated(def, prev.output, call.key, { from: 'resume', runId: from.workflowId }, actx.log, notes);
              if (valid) return reuse(valid.output, 'resume', from.workflowId);
            }
          }
          // Cross-run cache (opt-in per step; a run may turn it off). A hit whose blobs are gone is a miss, and so is
          // one whose stored output no longer matches today's output schema.
          if (key) {
            const hit = await memo.get(key);
            const valid = hit ? revalidated(def, hit.output, call.key, { from: 'cache', runId: hit.runId }, actx.log, notes) : undefined;
            deps.metrics?.cacheLookup(name, valid !== undefined);
            if (hit && valid) return reuse(valid.output, 'cache', hit.runId);
          }
        }
        if (secrets.error !== undefined) throw secrets.error;
        const held = deps.artifacts?.holdLineage?.(producerOf(call.pipeline, runId, call.key, attempt));
        let output: unknown;
        try {
          output = checkOutput(def, await exec(input, ctx), call.key);
          assertNoSecret(output, ctx.secrets, `output of step "${name}" (key ${call.key})`);
        } catch (err) {
          held?.discard(); // a failed attempt's puts are never recorded as outputs of the run
          throw err;
        }
        // Only a step that opted in to caching writes a memo entry: resume reads this run's history instead.
        await afterSuccess(env, actx.log, call.key, notes, held, memo && key && cacheOn ? () => memo.put(key, { output, refs: refsIn(output), runId, stepKey: call.key, step: name }) : undefined);
        finished('succeeded');
        await bookkeep(env, actx, call, record, { input, output, startedAt });
        const metrics = record.latest();
        return { output, attempt, ...(cards.length ? { cards } : {}), ...(metrics.length ? { metrics } : {}), ...(notes.length ? { note: notes.join('; ') } : {}) };
      } catch (caught) {
        // Nothing leaves the worker with a secret in it: the failure, its stack and details, the bookkeeping.
        const err = redactError(caught, secrets.redact);
        finished(outcomeOf(err, actx));
        const f = asFailure(err, actx, details);
        if (input !== undefined && !(f instanceof CancelledFailure)) {
          const retrying = !permanent(f) && (actx.info.retryPolicy?.maximumAttempts === undefined || actx.info.retryPolicy.maximumAttempts === 0 || attempt < actx.info.retryPolicy.maximumAttempts);
          await bookkeep(env, actx, call, record, { input, error: err instanceof Error ? err.message : String(err), retrying, startedAt });
        }
        throw f;
      } finally {
        stop();
      }
    };

    const batch = async (call: BatchCall): Promise<BatchResult> => {
      const actx = Context.current();
      const attempt = actx.info.attempt;
      const exec = actx.info.workflowExecution;
      const runId = exec?.workflowId ?? '';
      // With a batch, a runner step (python()) runs its items in one process when its script allows (run_items): the
      // session opens at the first item that runs (reused and cached items start no process) and closes at the end.
      let session: ItemSession | undefined;
      let opened: Promise<ItemSession | undefined> | undefined;
      const execItem: Runnable['exec'] = async (input, ctx) => {
        if (runnable.session) {
          opened ??= runnable.session(stepContext(envBase, actx, call.key, call.pipeline, false).ctx).then((s) => (session = s));
          const s = await opened;
          if (s) return s.run(input, ctx);
        }
        return runnable.exec(input, ctx);
      };
      const envBase: ItemEnv = { name, def, exec: runnable.exec, ...(fp ? { fingerprint: fp } : {}), deps, runId, attempt };
      const env: ItemEnv = { ...envBase, ...(call.itemTimeoutMs ? { itemTimeoutMs: call.itemTimeoutMs } : {}), exec: (call.items?.length ?? call.slice?.count ?? 1) > 1 ? execItem : runnable.exec };
      const store = deps.artifacts;
      // Reading the items and the earlier attempts' outcomes can take seconds: heartbeat (the same details, so
      // nothing an earlier attempt reached is lost) until the item loop's own heartbeats start.
      const earlier = actx.info.heartbeatDetails as Partial<BatchBeat> | undefined;
      let loading: NodeJS.Timeout | undefined = setInterval(() => actx.heartbeat(earlier), deps.autoHeartbeatMs ?? 1000);
      loading.unref();
      const loaded = () => {
        clearInterval(loading);
        loading = undefined;
      };
      try {
        const items = call.items ?? (call.slice && store ? await readCallItems(store, call.slice) : undefined);
        if (!items || items.length === 0) throw ApplicationFailure.create({ type: ErrorCode.internal, nonRetryable: true, message: `sweep call ${call.key} has no items${call.slice && !store ? ' (its items are in a manifest, and this worker has no artifact store)' : ''}. To fix: start the worker through kaon/worker (createKaonWorker), which gives it the artifact store` });
        const first = items[0]!.i;
        const many = items.length > 1;
        const maxAttempts = actx.info.retryPolicy?.maximumAttempts ?? 0;
        // On the last attempt an item's retryable error is its outcome; before it, the call is retried for that item.
        const lastAttempt = maxAttempts > 0 && attempt >= maxAttempts;
        const checkpoint = `sweeps/checkpoints/${keySegment(runId)}/${keySegment(exec?.runId ?? '')}/${keySegment(actx.info.activityId)}.json`;

        // Outcomes earlier attempts reached: lines in their heartbeats, and checkpoint blobs (named in the heartbeats,
        // and in a record written before a retry). Blobs are disjoint from each other and from the heartbeat's lines.
        const done = new Map<number, SweepLine>();
        const blobs: Checkpoint[] = [];
        const inBlob = new Set<number>();
        const recorded = attempt > 1 && store?.records ? ((await store.records.get(checkpoint).catch(() => undefined)) as { checkpoints?: Checkpoint[] } | undefined) : undefined;
        for (const cp of [...(earlier?.checkpoints ?? []), ...(recorded?.checkpoints ?? [])]) {
          if (!store || typeof cp?.sha256 !== 'string' || blobs.some((b) => b.sha256 === cp.sha256)) continue;
          for await (const l of readResults(store, blobArtifact(cp))) {
            done.set(l.i, l);
            inBlob.add(l.i);
          }
          blobs.push(cp);
        }
        // Heartbeat details stay small: past 128 KiB of lines, they are spilled to a checkpoint blob (big outputs only).
        let doneBytes = 0;
        let unreported = 0;
        let reported: SweepLine[] = [];
        const report = (line: SweepLine) => {
          const b = byteLength(line);
          if (doneBytes + b <= 128 * 1024) {
            doneBytes += b;
            reported.push(line);
          } else unreported++;
        };
        for (const l of earlier?.done ?? []) {
          if (done.has(l.i)) continue;
          done.set(l.i, l);
          report(l);
        }
        const canSpill = Boolean(store?.putBlob);
        let lastSpill = Date.now();
        /** Write the lines done and not yet in a blob as a new checkpoint blob. */
        const spill = async () => {
          const fresh = [...done.values()].filter((l) => !inBlob.has(l.i));
          lastSpill = Date.now();
          if (!fresh.length || !canSpill) return;
          const b = await writeLines(store as Required<Pick<StepArtifactStore, 'putBlob'>>, fresh);
          blobs.push({ ...b, items: fresh.map((l) => l.i) });
          for (const l of fresh) inBlob.add(l.i);
          reported = [];
          doneBytes = 0;
          unreported = 0;
        };
        let current: number | undefined;
        let lastBeat = 0;
        const beat = () => {
          lastBeat = Date.now();
          const d: BatchBeat = { fraction: done.size / items.length, message: `${done.size}/${items.length} items`, done: reported, ...(blobs.length ? { checkpoints: blobs } : {}), ...(current !== undefined ? { current } : {}) };
          actx.heartbeat(d);
        };
        // One timer per call: between items the batch still heartbeats, so cancellation reaches it.
        loaded();
        const timer = many ? setInterval(beat, deps.autoHeartbeatMs ?? 1000) : undefined;
        timer?.unref();
        const started = performance.now();
        const finished = (status: StepOutcome) => deps.metrics?.stepFinished({ step: name, queue: def.options.queue ?? 'default', status, seconds: (performance.now() - started) / 1000, attempt });
        const ran = new Set<'failed' | 'cached' | 'succeeded'>();
        /** The lines so far, inline when small, else as a part: what a cancelled or finished call hands back. */
        const outcome = async (lines: SweepLine[]): Promise<Pick<BatchResult, 'lines' | 'part'>> => {
          if (lines.length === 0) return { lines };
          if (!store?.putBlob || byteLength(lines) <= INLINE_RESULT_BYTES) return { lines };
          return { part: await writeLines(store as Required<Pick<StepArtifactStore, 'putBlob'>>, lines) };
        };
        let retry: unknown;
        try {
          for (const { i, input: raw } of items) {
            if (done.has(i)) continue;
            current = i;
            let line: SweepLine;
            try {
              if (actx.cancellationSignal.aborted) throw asFailure(actx.cancellationSignal.reason, actx, { attempt, step: name, key: call.key });
              line = await runItem(env, actx, call, i, raw, `${call.key}[${i}]`, !many);
            } catch (err) {
              if (actx.cancellationSignal.aborted || err instanceof CancelledFailure) {
                // Hand back what the call did: its items' outcomes are kept, the rest read "cancelled".
                const kept = items.filter((x) => done.has(x.i)).map((x) => done.get(x.i)!);
                throw new CancelledFailure(err instanceof Error ? err.message : 'cancelled', [{ first, count: items.length, ...(await outcome(kept).catch(() => ({}))) }]);
              }
              if (!lastAttempt) {
                // Go on with the other items; the retry runs only the items without an outcome.
                retry ??= err;
                continue;
              }
              line = { i, ok: false, status: 'failed', error: err instanceof Error ? err.message : String(err) };
            }
            done.set(i, line);
            const itemStatus = !line.ok ? 'failed' : line.cached ? 'cached' : 'succeeded';
            deps.metrics?.sweepItem({ pipeline: call.pipeline, step: name, status: itemStatus });
            ran.add(itemStatus);
            if (many) {
              report(line);
              // Lines past the heartbeat's 128 KiB go to a checkpoint blob (at most one a second), so a lost worker
              // or a final failure keeps every outcome reached.
              if (unreported > 0 && canSpill && Date.now() - lastSpill >= 1000) {
                await spill();
                beat();
              }
              // Every heartbeat is encoded in full, so send one at most every 200 ms, not one per item.
              if (Date.now() - lastBeat >= 200) beat();
            }
          }
          current = undefined;
          if (retry !== undefined) {
            // The items that reached an outcome are kept for the next attempt, whatever their size.
            await spill();
            if (blobs.length && store?.records) await store.records.put(checkpoint, { checkpoints: blobs });
            beat();
            throw retry;
          }
          finished(ran.size === 1 && !ran.has('succeeded') ? [...ran][0]! : 'succeeded');
        } catch (err) {
          finished(outcomeOf(err, actx));
          throw err;
        } finally {
          if (timer) clearInterval(timer);
          if (opened) await opened.then(() => session?.close()).catch(() => undefined);
        }
        const lines = items.map(({ i }) => done.get(i)!);
        const result: BatchResult = { attempt, first, count: items.length, succeeded: 0, failed: 0, cached: 0, ...(await outcome(lines)) };
        const failures: { index: number; error: string }[] = [];
        for (const l of lines) {
          if (l.ok) {
            result.succeeded++;
            if (l.cached) result.cached++;
          } else {
            result.failed++;
            if (failures.length < MAX_LISTED_FAILURES) failures.push({ index: l.i, error: l.error.slice(0, FAILURE_TEXT_CHARS) });
          }
        }
        if (failures.length) result.failures = failures;
        if (attempt > 1 && store?.records) await store.records.delete(checkpoint).catch(() => false);
        return result;
      } finally {
        if (loading) clearInterval(loading);
      }
    };

    activities[name] = ((call: StepCall | BatchCall) => (isBatchCall(call) ? batch(call) : single(call))) as StepActivity;
  }
  return activities;
}

/** One sweep item: reuse from the earlier run or the cache, else run; a permanent failure is a line, not a throw. */
async function runItem(env: ItemEnv, actx: Context, call: BatchCall, i: number, raw: unknown, itemKey: string, autoHeartbeat: boolean): Promise<SweepLine> {
  const { def, deps, runId, name } = env;
  let key: string | undefined;
  const { ctx, setInputs, stop, secrets } = stepContext(env, actx, itemKey, call.pipeline, autoHeartbeat);
  try {
    const input = parseInput(def, raw, itemKey);
    setInputs(refsIn(input));
    // A line carries its resume key: a later resume reuses it for the same input, whatever code changed.
    key = resumeKeyOf(env, input);
    const memo = deps.memo;
    const withKey = key ? { key } : {};
    if (memo && key && call.prior && deps.artifacts) {
      const prev = await priorLine(deps.artifacts, call.prior.ref, i);
      if (prev?.ok && prev.key === key && (await memo.allExist(refsIn(prev.output)))) {
        const valid = revalidated(def, prev.output, itemKey, { from: 'resume', runId: call.prior.ref.producer.runId }, actx.log, []);
        if (valid) return { i, ok: true, output: valid.output, cached: true, resumed: true, key };
      }
    }
    const notes: string[] = [];
    const cacheOn = Boolean(def.options.cache) && call.cache !== 'off';
    const memoKey = memo && cacheOn ? memoKeyOf(env, input, await env.fingerprint?.()) : undefined;
    if (memo && memoKey) {
      const hit = await memo.get(memoKey);
      const valid = hit ? revalidated(def, hit.output, itemKey, { from: 'cache', runId: hit.runId }, actx.log, notes) : undefined;
      deps.metrics?.cacheLookup(name, valid !== undefined);
      if (valid) return { i, ok: true, output: valid.output, cached: true, ...withKey };
    }
    if (secrets.error !== undefined) throw secrets.error;
    const held = deps.artifacts?.holdLineage?.(producerOf(call.pipeline, runId, itemKey, env.attempt));
    let output: unknown;
    try {
      output = checkOutput(def, await env.exec(input, ctx), itemKey);
      assertNoSecret(output, ctx.secrets, `output of step "${name}" (key ${itemKey})`);
    } catch (err) {
      held?.discard();
      throw err;
    }
    const k = memoKey;
    await afterSuccess(env, actx.log, itemKey, notes, held, memo && k ? () => memo.put(k, { output, refs: refsIn(output), runId, stepKey: itemKey, step: name }) : undefined);
    return { i, ok: true, output, ...withKey };
  } catch (caught) {
    const err = redactError(caught, secrets.redact);
    if (actx.cancellationSignal.aborted || err instanceof CancelledFailure) throw asFailure(err, actx, { attempt: env.attempt, step: name, key: itemKey });
    if (permanent(err)) return { i, ok: false, status: 'failed', error: err instanceof Error ? err.message : String(err), ...(key ? { key } : {}) };
    throw failure(err, { attempt: env.attempt, step: name, key: itemKey });
  } finally {
    stop();
  }
}

/** The StepContext of one call or item, with its auto-heartbeat timer. */
function stepContext(env: ItemEnv, actx: Context, key: string, pipeline: string, autoHeartbeat = true): { ctx: StepContext; setInputs(refs: ArtifactRef[]): void; stop(): void; cards: ArtifactRef[]; record: StepRecord; secrets: ContextSecrets } {
  const secrets = contextSecrets(env.def);
  const { redact } = secrets;
  let lastProgress: unknown;
  const heartbeat = (d?: unknown) => {
    if (d !== undefined) lastProgress = secrets.values === NO_SECRETS ? d : redactValue(d, redact);
    actx.heartbeat(lastProgress);
  };
  let inputRefs: ArtifactRef[] = [];
  const cards: ArtifactRef[] = [];
  const store = env.deps.artifacts;
  const producer = { pipeline, runId: env.runId, step: key, attempt: env.attempt };
  const metrics = env.deps.metrics;
  const counted = <T>(direction: 'in' | 'out', p: Promise<T>, size: (v: T) => number): Promise<T> =>
    metrics ? p.then((v) => (metrics.artifactBytes(direction, size(v)), v)) : p;
  const artifacts: StepArtifacts = {
    put: (source, meta = {}) => (store ? counted('in', store.put(source, { ...meta, producer, inputs: inputRefs }), (r) => r.size) : Promise.reject(noStore(env.name))),
    getPath: (ref, dir) => (store ? counted('out', store.getPath(ref, dir), () => ref.size) : Promise.reject(noStore(env.name))),
    getStream: (ref) => (store ? counted('out', store.getStream(ref), () => ref.size) : Promise.reject(noStore(env.name))),
    readSweep: (sweep) => {
      if (!store) throw noStore(env.name);
      return readSweep(store, sweep);
    },
  };
  const record = createStepRecord(`step "${env.name}" (key ${key})`);
  const ctx: StepContext = {
    key,
    pipeline,
    runId: env.runId,
    attempt: env.attempt,
    ...(env.itemTimeoutMs ? { timeoutMs: env.itemTimeoutMs } : actx.info.startToCloseTimeoutMs ? { timeoutMs: actx.info.startToCloseTimeoutMs } : {}),
    log: secrets.values === NO_SECRETS ? actx.log : redactingLogger(actx.log, redact),
    signal: actx.cancellationSignal,
    heartbeat,
    progress: (fraction, message) => heartbeat({ fraction, message }),
    artifacts,
    card: async (c) => {
      const ref = await storeCard(artifacts.put, { ...c, title: redact(c.title), markdown: redact(c.markdown) }, `card of step "${env.name}" (key ${key})`);
      cards.push(ref);
      return ref;
    },
    metrics: record.metrics,
    registerModel: (name, model, options) => record.registerModel(name, model, options),
    secrets: secrets.values,
  };
  // No heartbeat at start (a server round trip per step); steps over a second heartbeat every second.
  const timer = autoHeartbeat ? setInterval(() => heartbeat(), env.deps.autoHeartbeatMs ?? 1000) : undefined;
  timer?.unref();
  return { ctx, setInputs: (refs) => (inputRefs = refs), stop: () => timer && clearInterval(timer), cards, record, secrets };
}

const NO_SECRETS: Readonly<Record<string, string>> = Object.freeze({});

/** A step's secrets for one call, resolved at once; a missing one fails the call (not retried) where it would run. */
interface ContextSecrets {
  values: Readonly<Record<string, string>>;
  redact: Redact;
  error?: unknown;
}

function contextSecrets(def: StepDef): ContextSecrets {
  if (!def.secrets?.length) return { values: NO_SECRETS, redact: (s) => s };
  try {
    return resolveSecrets(def);
  } catch (error) {
    return { values: NO_SECRETS, redact: (s) => s, error };
  }
}

function redactingLogger(log: StepLogger, redact: Redact): StepLogger {
  const at = (level: keyof StepLogger) => (message: string, meta?: Record<string, unknown>) => log[level](redact(message), meta === undefined ? undefined : redactValue(meta, redact));
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function asFailure(err: unknown, actx: Context, details: StepFailureDetails): unknown {
  // A step that passed ctx.signal on (timers, fetch, child processes) rejects with an AbortError: report
  // the cancellation itself, with the attempt, so the run ends CANCELLED, not FAILED.
  if (actx.cancellationSignal.aborted) {
    const reason: unknown = actx.cancellationSignal.reason;
    return new CancelledFailure(reason instanceof Error ? reason.message : 'cancelled', [details]);
  }
  return failure(err, details);
}

/** Hand one attempt to the bookkeeping (MLflow): bounded in time, and never the step's failure. */
async function bookkeep(env: ItemEnv, actx: Context, call: StepCall, record: StepRecord, r: { input: unknown; output?: unknown; error?: string; retrying?: boolean; startedAt: number; reused?: StepAttempt['reused'] }): Promise<void> {
  const books = env.deps.bookkeeping;
  const log = actx.log;
  if (record.dropped > 0) log.warn(`step ${call.key} logged more than ${record.all().length + record.dropped} metrics; the oldest ${record.dropped} were dropped (Kaon keeps ${record.all().length} per attempt)`);
  if (!books) {
    for (const m of r.error === undefined ? record.models() : []) log.info(`model "${m.name}" (${m.model.uri}) not registered: no model registry is configured (set MLFLOW_TRACKING_URI to register it in MLflow)`);
    return;
  }
  const execution = actx.info.workflowExecution;
  let params: Promise<unknown> | undefined;
  const attempt: StepAttempt = {
    pipeline: call.pipeline,
    runId: env.runId,
    executionRunId: execution?.runId ?? '',
    key: call.key,
    step: env.name,
    version: env.def.version,
    attempt: env.attempt,
    input: r.input,
    ...(r.output !== undefined ? { output: r.output } : {}),
    ...(r.error !== undefined ? { error: r.error, retrying: r.retrying ?? false } : {}),
    ...(r.reused ? { reused: r.reused } : {}),
    startedAt: r.startedAt,
    endedAt: Date.now(),
    metrics: record.all(),
    models: r.error === undefined ? record.models() : [],
    params: () => (params ??= startParams(actx)),
    runEnded: () => runEnded(actx),
    ...(env.deps.artifacts ? { readArtifact: (ref: ArtifactRef) => env.deps.artifacts!.getStream(ref) } : {}),
  };
  const ms = env.deps.bookkeepingTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      books.record(attempt, log),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`it took longer than ${ms} ms`)), ms);
      }),
    ]);
  } catch (err) {
    log.warn(`step ${call.key}: bookkeeping (MLflow) failed, the step itself is not affected: ${err instanceof Error ? err.message : String(err)}. To fix: check that MLFLOW_TRACKING_URI points at a running MLflow server this worker can reach`);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** The params the run was started with: the first argument of its first history event. */
async function startParams(actx: Context): Promise<unknown> {
  const client = actx.client;
  const e = actx.info.workflowExecution;
  if (!e) return undefined;
  const res = await client.workflowService.getWorkflowExecutionHistory({ namespace: actx.info.workflowNamespace, execution: { workflowId: e.workflowId, runId: e.runId }, maximumPageSize: 1 });
  const payloads = res.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
  const [params] = await decodeArrayFromPayloads(client.options.loadedDataConverter, payloads);
  return params;
}

/** Waits (a long poll per continue-as-new) until the run ends. */
async function runEnded(actx: Context): Promise<'FINISHED' | 'FAILED' | 'KILLED'> {
  const handle = actx.client.workflow.getHandle(actx.info.workflowExecution?.workflowId ?? '');
  try {
    await handle.result();
    return 'FINISHED';
  } catch (err) {
    const status = await handle.describe().then((d) => d.status.name, () => 'FAILED');
    return status === 'CANCELLED' || status === 'TERMINATED' ? 'KILLED' : err instanceof Error && err.name === 'WorkflowNotFoundError' ? 'KILLED' : 'FAILED';
  }
}
