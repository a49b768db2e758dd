import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { ApplicationFailure, ContinueAsNew, defineQuery, DeterminismViolationError, isCancellation, setHandler, TemporalFailure, workflowInfo } from '@temporalio/workflow';
import { fillScheduled } from '../definition/scheduled';
import { checkUnknownParams } from '../definition/params';
import type { z } from 'zod';
import { ErrorCode, KaonError, parseOrThrow } from '../definition/errors';
import { isPriority, QUERY_PROGRESS } from '../definition/internal/protocol';
import type { Pipeline } from '../definition/pipeline';
import { assertName } from '../definition/step';
import type { RunState } from '../observe/run-state';
import { KaonContext, type Kaon } from './context';
import { RunCore, type RunOptions } from './core';
import { HISTORY_LIMITS } from './history-guard';
import { RunControl, type MessageSchemas } from './control';
import { idPart, registerTriggers, startTriggered, triggers } from './triggers';
import type { Trigger } from '../definition/events';
import { RunStateTracker } from './run-state-tracker';

export interface PipelineConfig<P extends z.ZodType, R, M extends MessageSchemas = Record<never, never>> {
  /** The Temporal workflow type. Kebab-case reads well in the Web UI: 'retrain-recommender'. */
  name: string;
  description?: string;
  params: P;
  run(params: z.output<P>, k: Kaon<z.input<P>, M>): Promise<R>;
  /** Typed messages the run accepts (`run.send(name, value)`), validated at the client and in the workflow. */
  messages?: M;
  /** What starts this pipeline besides people and schedules: onEvent(…), onSuccess(…), allOf([…]). */
  triggers?: readonly Trigger<z.input<P>>[];
  /** Tighter limits than Kaon's defaults (a run fails clearly when it would exceed them). */
  limits?: { historyEvents?: number };
  /** Temporal priority of this pipeline's steps and children: 1 (first) … 5; default 3. A start may override it. */
  priority?: number;
  /**
   * Under Worker Versioning: 'pinned' (default) keeps a run on the build it started on; a loop still moves to the
   * current build at each k.continueAsNew. 'auto-upgrade' moves a running run to a new build at once, so every
   * change to its code must replay its old histories (use patched()).
   */
  versioning?: 'pinned' | 'auto-upgrade';
  /**
   * The run key of a start that names none, from the params: `(p) => p.country` makes one run per country
   * (`recommender-loop--JP`); starting it again returns the running one. A failed run's key may start anew.
   */
  runKey?: (params: z.output<P>) => string;
  /** Params fields the schema does not declare: refused ('error', default: a typo must not run with a default) or dropped. */
  unknownParams?: 'error' | 'strip';
}

export const progressQuery = defineQuery<RunState>(QUERY_PROGRESS);

/** Set by Temporal on every run a schedule starts: the time the run was scheduled for. */
const SCHEDULED_START = defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME);

function isContinueAsNew(err: unknown): boolean {
  return err instanceof ContinueAsNew;
}

/** The first stack frame in the user's own code (not Kaon's, not the SDK's), for "where in the pipeline". */
function userFrame(err: Error): string | undefined {
  const frames = (err.stack ?? '').split('\n').slice(1).map((l) => l.trim().replace(/^at /, ''));
  return frames.find((f) => !/node_modules|[\\/]src[\\/](workflow|definition|observe)[\\/]|webpack\/(bootstrap|runtime)|<anonymous>/.test(f)) ?? frames[0];
}

/**
 * Turn what a pipeline threw into a Temporal failure that fails the run: a Kaon error with its code, and any other
 * exception (a TypeError from a typo, a plain Error) as a non-retryable KAON_PIPELINE_ERROR naming the step that
 * ran last and the line. Left alone, Temporal would fail only the workflow task and retry it for ever; a genuine
 * non-determinism error is the SDK's own and still blocks the task, for a deploy to fix.
 */
export function toFailure(err: unknown, where?: { pipeline: string; lastStep?: string | undefined }): unknown {
  if (err instanceof KaonError) {
    return ApplicationFailure.create({ type: err.code, message: err.message, nonRetryable: !err.retryable, details: err.details === undefined ? [] : [err.details] });
  }
  if (err instanceof TemporalFailure || err instanceof DeterminismViolationError || !where) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const frame = userFrame(e);
  return ApplicationFailure.create({
    type: ErrorCode.pipelineError,
    nonRetryable: true,
    message: `pipeline "${where.pipeline}" threw ${e.name}: ${e.message}${where.lastStep ? ` (after step ${where.lastStep})` : ' (before its first step)'}${frame ? ` at ${frame}` : ''}. To fix: correct the pipeline code (a bug there fails the run rather than retrying), then start the run again or resume it`,
    details: [{ name: e.name, stack: e.stack?.split('\n').slice(0, 8).join('\n') }],
  });
}

function messageOf(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error && !(e instanceof ApplicationFailure && e.type === ErrorCode.foreachFailed)) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Define a pipeline. The result is a Temporal workflow function (invariant 1) that validates its params,
 * keeps a run state (query `kaon.progress`, Web UI details, search attributes) and runs `config.run`.
 */
export function definePipeline<P extends z.ZodType, R, M extends MessageSchemas = Record<never, never>>(config: PipelineConfig<P, R, M>): Pipeline<P, R, M> {
  assertName('pipeline', config.name);
  const name = config.name;
  if (typeof (config.params as { safeParse?: unknown } | undefined)?.safeParse !== 'function') {
    throw new KaonError({ code: ErrorCode.invalidDefinition, what: 'params must be a zod schema', where: `pipeline "${name}"`, fix: 'pass e.g. params: z.object({ date: z.string() }) (import { z } from "zod")' });
  }
  if (config.priority !== undefined && !isPriority(config.priority)) {
    throw new KaonError({ code: ErrorCode.invalidDefinition, what: `priority ${JSON.stringify(config.priority)} is not valid`, where: `pipeline "${name}"`, fix: 'use an integer from 1 (runs first) to 5; Temporal\'s default is 3' });
  }
  registerTriggers(name, config.params, (config.triggers ?? []) as readonly Trigger[]);
  const workflow = async (rawParams: z.input<P>, runOptions?: RunOptions): Promise<R> => {
    const tracker = new RunStateTracker(name);
    setHandler(progressQuery, () => tracker.state);
    // Registered first, so a decision, pause or message sent at any time meets a validator.
    const control = new RunControl(tracker, (config.messages ?? {}) as MessageSchemas, name);
    try {
      // A scheduled run gets its nominal time in the params fields marked scheduledDate()/scheduledTime().
      const nominal = runOptions?.loop ? undefined : workflowInfo().typedSearchAttributes.get(SCHEDULED_START);
      if (config.unknownParams !== 'strip') checkUnknownParams(config.params, rawParams, `params of pipeline "${name}"`);
      const params = parseOrThrow(config.params, nominal ? fillScheduled(config.params, rawParams, nominal) : rawParams, {
        code: ErrorCode.invalidParams,
        subject: `params of pipeline "${name}"`,
        fix: `start the run with params that match the pipeline's params schema`,
      });
      const limits = { historyEvents: Math.min(config.limits?.historyEvents ?? HISTORY_LIMITS.events, HISTORY_LIMITS.events) };
      const run = { ...(config.priority !== undefined ? { priority: config.priority } : {}), ...(runOptions ?? { cache: 'on' as const }) };
      const result = await config.run(params, new KaonContext(new RunCore(tracker, run, limits, { name, params: config.params }, control)) as Kaon<z.input<P>, M>);
      // Pipelines that run after this one succeeds start now, once per run of this one.
      for (const t of triggers()) {
        const tr = t.trigger;
        if (tr.kind !== 'success' || tr.after !== name) continue;
        await startTriggered(t, () => tr.params(result as never), `${t.pipeline}--after-${idPart(workflowInfo().workflowId)}`, `the success of ${workflowInfo().workflowId}`);
      }
      tracker.finish('succeeded');
      return result;
    } catch (err) {
      if (isContinueAsNew(err)) throw err;
      if (isCancellation(err)) tracker.finish('cancelled');
      const failure = toFailure(err, { pipeline: name, lastStep: tracker.state.steps.at(-1)?.key });
      if (!isCancellation(err)) tracker.finish('failed', messageOf(failure));
      throw failure;
    }
  };
  Object.defineProperty(workflow, 'name', { value: name });
  return Object.assign(workflow, {
    kaon: Object.freeze({ name, params: config.params, description: config.description, versioning: config.versioning ?? 'pinned', unknownParams: config.unknownParams ?? 'error', runKey: config.runKey as ((p: unknown) => string) | undefined, messages: config.messages ?? ({} as M), triggers: (config.triggers ?? []) as readonly Trigger[] }),
  }) as Pipeline<P, R, M>;
}
