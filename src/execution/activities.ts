import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { ErrorCode, KaonError, parseOrThrow } from '../definition/errors';
import type { StepCall, StepFailureDetails, StepResult } from '../definition/internal/protocol';
import { isArtifactRef, type ArtifactRef } from '../definition/artifact-ref';
import type { StepDef, StepRunner } from '../definition/step';
import type { StepArtifacts, StepContext, StepImpl } from './implement';

/** JSON outputs above this stay out of workflow history (invariant 4). Temporal itself fails at 2 MiB. */
export const MAX_OUTPUT_BYTES = 256 * 1024;

/** Runs a step whose contract carries a `run` descriptor (process, python…). Plugged in per runner kind. */
export type RunnerExecutor = (def: StepDef, input: unknown, ctx: StepContext) => Promise<unknown>;

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
}

/** What execution needs of the data seam's store (kept minimal so tests can pass a fake). */
export interface StepArtifactStore {
  put(source: Parameters<StepArtifacts['put']>[0], meta: { name?: string; mediaType?: string; producer: ArtifactRef['producer']; inputs?: ArtifactRef[] }): Promise<ArtifactRef>;
  getPath(ref: ArtifactRef, dir?: string): Promise<string>;
  getStream(ref: ArtifactRef): ReturnType<StepArtifacts['getStream']>;
}

/** What execution needs of the memo table and its run index. */
export interface StepMemo {
  key(input: { step: string; version: string | number; input: unknown; salt?: string | number }): string;
  /** A cross-run cache entry, only if every artifact it refers to still exists. */
  get(key: string): Promise<{ output: unknown; runId: string } | undefined>;
  put(key: string, entry: { output: unknown; refs: ArtifactRef[]; runId: string; stepKey: string; step: string }): Promise<unknown>;
  /** Record what `stepKey` of `runId` computed, for resume. Write-behind: returns at once. */
  record(runId: string, entry: { stepKey: string; step: string; key: string; output: unknown; refs: ArtifactRef[] }): void;
  lookup(runId: string, stepKey: string): Promise<{ key: string; output: unknown; refs: ArtifactRef[] } | undefined>;
  /** Whether every artifact still exists (a reuse whose blobs are gone is a recompute). */
  allExist(refs: ArtifactRef[]): Promise<boolean>;
}

export type StepActivity = (call: StepCall) => Promise<StepResult>;

interface Runnable {
  def: StepDef;
  exec: (input: unknown, ctx: StepContext) => Promise<unknown>;
}

function collect(deps: StepActivityDeps): Map<string, Runnable> {
  const byName = new Map<string, Runnable>();
  const add = (def: StepDef, exec: Runnable['exec']) => {
    const prev = byName.get(def.name);
    if (prev && prev.def !== def) {
      throw new KaonError({
        code: ErrorCode.invalidDefinition,
        what: `two different steps are named "${def.name}"`,
        fix: 'give every step a unique name; the name is the Temporal activity type',
      });
    }
    byName.set(def.name, { def, exec });
  };
  for (const impl of deps.impls) add(impl.def, async (input, ctx) => impl.fn(input as never, ctx));
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
    add(def, (input, ctx) => executor(def, input, ctx));
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

function refsIn(value: unknown, out: ArtifactRef[] = []): ArtifactRef[] {
  if (isArtifactRef(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) refsIn(v, out);
  else if (typeof value === 'object' && value !== null) for (const v of Object.values(value)) refsIn(v, out);
  return out;
}

function noStore(name: string): KaonError {
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

function byteLength(v: unknown): number {
  return Buffer.byteLength(JSON.stringify(v) ?? '', 'utf8');
}

/**
 * Build the Temporal activities for a set of steps: one activity per step name. Each validates its input,
 * runs the implementation, validates the output, and bounds its size (invariants 3 and 4).
 */
export function createStepActivities(deps: StepActivityDeps): Record<string, StepActivity> {
  const runnables = collect(deps);
  const activities: Record<string, StepActivity> = {};
  for (const [name, { def, exec }] of runnables) {
    activities[name] = async (call: StepCall): Promise<StepResult> => {
      const actx = Context.current();
      const attempt = actx.info.attempt;
      const details: StepFailureDetails = { attempt, step: name, key: call.key };
      let lastProgress: unknown;
      const heartbeat = (d?: unknown) => {
        if (d !== undefined) lastProgress = d;
        actx.heartbeat(lastProgress);
      };
      const runId = actx.info.workflowExecution?.workflowId ?? '';
      let inputRefs: ArtifactRef[] = [];
      const store = deps.artifacts;
      const producer = { pipeline: call.pipeline, runId, step: call.key, attempt };
      const artifacts: StepArtifacts = {
        put: (source, meta = {}) => (store ? store.put(source, { ...meta, producer, inputs: inputRefs }) : Promise.reject(noStore(name))),
        getPath: (ref, dir) => (store ? store.getPath(ref, dir) : Promise.reject(noStore(name))),
        getStream: (ref) => (store ? store.getStream(ref) : Promise.reject(noStore(name))),
      };
      const ctx: StepContext = {
        key: call.key,
        pipeline: call.pipeline,
        runId,
        attempt,
        log: actx.log,
        signal: actx.cancellationSignal,
        heartbeat,
        progress: (fraction, message) => heartbeat({ fraction, message }),
        artifacts,
      };
      // No heartbeat at start (a server round trip per step); steps over a second heartbeat every second.
      const timer = setInterval(() => heartbeat(), deps.autoHeartbeatMs ?? 1000);
      timer.unref();
      try {
        const input = parseOrThrow(def.input, call.input, {
          code: ErrorCode.invalidInput,
          subject: `input of step "${name}" (key ${call.key})`,
          fix: `pass an input that matches the step's input schema from the pipeline, or update the schema`,
        });
        inputRefs = refsIn(input);
        const memo = deps.memo;
        const cacheOpt = def.options.cache;
        const key = memo?.key({ step: name, version: def.version, input, ...(typeof cacheOpt === 'object' && cacheOpt.version !== undefined ? { salt: cacheOpt.version } : {}) });
        const cacheOn = Boolean(cacheOpt) && call.cache !== 'off';
        if (memo && key) {
          const reuse = (output: unknown, from: 'cache' | 'resume', fromRun: string): StepResult => {
            memo.record(runId, { stepKey: call.key, step: name, key, output, refs: refsIn(output) });
            return { output, attempt, reused: { from, runId: fromRun } };
          };
          // Resume: reuse what the earlier run computed for this step key from the same input.
          const from = call.resumeFrom;
          if (from && !recomputes(from.recompute, call.key, name)) {
            const prev = await memo.lookup(from.workflowId, call.key);
            if (prev?.key === key && (await memo.allExist([...prev.refs, ...refsIn(prev.output)]))) return reuse(prev.output, 'resume', from.workflowId);
          }
          // Cross-run cache (opt-in per step; a run may turn it off). A hit whose blobs are gone is a miss.
          if (cacheOn) {
            const hit = await memo.get(key);
            if (hit) return reuse(hit.output, 'cache', hit.runId);
          }
        }
        const raw = await exec(input, ctx);
        const output = parseOrThrow(def.output, raw, {
          code: ErrorCode.invalidOutput,
          subject: `output of step "${name}" (key ${call.key})`,
          fix: `make the step return what its output schema declares, or update the schema (and bump the step version)`,
        });
        const size = byteLength(output);
        if (size > MAX_OUTPUT_BYTES) {
          throw new KaonError({
            code: ErrorCode.outputTooLarge,
            what: `output of step "${name}" (key ${call.key}) is ${(size / 1024).toFixed(0)} KiB of JSON, over Kaon's ${MAX_OUTPUT_BYTES / 1024} KiB limit for workflow history`,
            fix: 'write the large part as an artifact (ctx.artifacts.put) and return its ArtifactRef instead of the data',
          });
        }
        if (memo && key) {
          const refs = refsIn(output);
          // Cache entries are written (and awaited) only for steps that opted in; every step gets a resume record.
          if (cacheOn) await memo.put(key, { output, refs, runId, stepKey: call.key, step: name });
          memo.record(runId, { stepKey: call.key, step: name, key, output, refs });
        }
        return { output, attempt };
      } catch (err) {
        // A step that passed ctx.signal on (timers, fetch, child processes) rejects with an AbortError: report
        // the cancellation itself, with the attempt, so the run ends CANCELLED, not FAILED.
        if (actx.cancellationSignal.aborted) {
          const reason: unknown = actx.cancellationSignal.reason;
          throw new CancelledFailure(reason instanceof Error ? reason.message : 'cancelled', [details]);
        }
        throw failure(err, details);
      } finally {
        clearInterval(timer);
      }
    };
  }
  return activities;
}
