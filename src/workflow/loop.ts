// Runs that never end: k.continueAsNew ends this execution and continues the same run (same workflow id) with
// new params, carrying a compact summary of the executions before it. Per-step detail stays in each history.
import { allHandlersFinished, ApplicationFailure, condition, makeContinueAsNewFunc, workflowInfo } from '@temporalio/workflow';
import { ErrorCode, KaonError, parseOrThrow } from '../definition/errors';
import type { LoopSummary } from '../observe/run-state';
import type { RunCore, RunOptions } from './core';
import { now } from './run-state-tracker';

/** Outcomes of the latest executions kept in the summary. */
const KEEP_LAST = 10;

export async function continueRun(core: RunCore, nextParams: unknown): Promise<never> {
  const { pipeline } = core;
  let params: unknown;
  try {
    // Bad next params fail this execution, with the field named, rather than the next one.
    params = parseOrThrow(pipeline.params, nextParams, { code: ErrorCode.invalidParams, subject: `the next params of pipeline "${pipeline.name}" (k.continueAsNew)`, fix: 'pass params that match the pipeline schema to k.continueAsNew' });
  } catch (err) {
    if (err instanceof KaonError) throw ApplicationFailure.create({ type: err.code, message: err.message, nonRetryable: true });
    throw err;
  }
  // Signals and updates still being handled finish here, so none is lost across the boundary.
  await condition(allHandlersFinished);
  const state = core.tracker.state;
  const prev = core.run.loop;
  const t = now();
  const steps = state.steps.length;
  const failed = state.steps.filter((s) => s.status === 'failed').length;
  const loop: LoopSummary = {
    execution: (prev?.execution ?? 1) + 1,
    firstStartedAt: prev?.firstStartedAt ?? state.startedAt,
    priorMs: (prev?.priorMs ?? 0) + (t - state.startedAt),
    last: [...(prev?.last ?? []), { execution: prev?.execution ?? 1, runId: workflowInfo().runId, startedAt: state.startedAt, endedAt: t, steps, failed }].slice(-KEEP_LAST),
  };
  const { resumeFrom: _resumeFrom, ...keep } = core.run;
  const carried = core.control.carry();
  const next: RunOptions = { ...keep, loop, ...(carried.subscribed.length ? { events: carried } : {}) };
  // Under Worker Versioning the run is pinned to its build; the next execution starts on the current build, so a
  // loop picks up a deploy at its next iteration (its params are the contract between the two builds).
  return makeContinueAsNewFunc({ workflowType: pipeline.name, initialVersioningBehavior: 'AUTO_UPGRADE' })(params, next);
}
