import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { ErrorCode, KaonError, parseOrThrow } from '../definition/errors';
import type { StepCall, StepFailureDetails, StepResult } from '../definition/internal/protocol';
import type { StepDef, StepRunner } from '../definition/step';
import type { StepContext, StepImpl } from './implement';

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
      const ctx: StepContext = {
        key: call.key,
        pipeline: call.pipeline,
        runId: actx.info.workflowExecution?.workflowId ?? "",
        attempt,
        log: actx.log,
        signal: actx.cancellationSignal,
        heartbeat,
        progress: (fraction, message) => heartbeat({ fraction, message }),
      };
      heartbeat();
      const timer = setInterval(() => heartbeat(), deps.autoHeartbeatMs ?? 1000);
      timer.unref();
      try {
        const input = parseOrThrow(def.input, call.input, {
          code: ErrorCode.invalidInput,
          subject: `input of step "${name}" (key ${call.key})`,
          fix: `pass an input that matches the step's input schema from the pipeline, or update the schema`,
        });
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
