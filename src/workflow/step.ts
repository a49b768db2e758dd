import { isCancellation, proxyActivities } from '@temporalio/workflow';
import type { StepCall, StepResult } from '../definition/internal/protocol';
import type { StepDef, StepInput, StepOutput } from '../definition/step';
import type { RunCore } from './core';
import { assertJsonValue } from '../definition/json-value';
import { ErrorCode } from '../definition/errors';
import { attemptsOfFailure, failureMessage } from './failures';
import { activityOptionsFor, type StepCallOptions } from './options';
import { now } from './run-state-tracker';

/** k.step: one step as one Temporal activity, tracked in the run state under its key. */
export async function runStep<S extends StepDef>(core: RunCore, def: S, input: StepInput<S>, o: StepCallOptions = {}): Promise<StepOutput<S>> {
  const paused = core.whenRunning();
  if (paused) await paused;
  core.guard.check(`step "${def.name}"`);
  const key = core.key(o.key ?? def.name);
  assertJsonValue(input, `input of step "${def.name}" (key ${key})`, 'pass plain JSON data to k.step (large or binary data as an artifact ref)', ErrorCode.invalidInput);
  const queue = o.queue ?? def.options.queue;
  const branch = core.branch;
  const { tracker, run } = core;
  const st = tracker.add({ key, step: def.name, status: 'running', attempts: 0, startedAt: now(), ...(queue ? { queue } : {}), ...(branch ? { branch } : {}) });
  const call: StepCall = { key, input, pipeline: tracker.state.pipeline, cache: run.cache, ...(run.resumeFrom ? { resumeFrom: run.resumeFrom } : {}) };
  const options = activityOptionsFor(def, o, key, core.priority);
  const act = proxyActivities<Record<string, (c: StepCall) => Promise<StepResult>>>(options);
  const slot = core.guard.slot();
  const release = typeof slot === 'function' ? slot : await slot;
  try {
    const res = await act[def.name]!(call);
    tracker.update(st, {
      status: res.reused ? 'cached' : 'succeeded',
      attempts: res.reused ? 0 : res.attempt,
      endedAt: now(),
      ...(res.reused ? { reusedFrom: { from: res.reused.from, runId: res.reused.runId } } : {}),
      ...(res.cards?.length ? { cards: res.cards } : {}),
      ...(res.metrics?.length ? { metrics: res.metrics } : {}),
      ...(res.note ? { note: res.note } : {}),
    });
    return res.output as StepOutput<S>;
  } catch (err) {
    const attempts = attemptsOfFailure(err, options.retry?.maximumAttempts) ?? st.attempts;
    tracker.update(st, { status: isCancellation(err) ? 'cancelled' : 'failed', attempts, endedAt: now(), error: failureMessage(err) });
    throw err;
  } finally {
    release();
  }
}
