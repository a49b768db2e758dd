import { ActivityCancellationType, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import type { Priority } from '@temporalio/common';
import { toMs } from '../definition/duration';
import { validateStepOptions, type StepDef, type StepOptions } from '../definition/step';

/** Per-call overrides of a step's options. `key` names the call in the run state (default: the step name). */
export interface StepCallOptions extends Omit<StepOptions, 'cache'> {
  key?: string;
}

/** Default retry policy: ML steps fail for real reasons more often than transient ones; 3 attempts, backing off. */
export const DEFAULT_RETRY = { maximumAttempts: 3, initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m' } as const;
export const DEFAULT_TIMEOUT = '10m';
/**
 * Every step heartbeats on its own while it runs (the activity wrapper, every second; the worker throttles what
 * reaches the server), so a worker killed mid-step is noticed after this long and the step retried elsewhere,
 * not after its start-to-close timeout. A TS step that blocks the event loop longer than this is timed out too:
 * give it a longer `heartbeat`.
 */
export const DEFAULT_HEARTBEAT = '60s';

/** A step's `queue` maps to a task queue under the pipeline's own: `kaon` + `python` → `kaon.python`. */
export function taskQueueFor(base: string, queue: string): string {
  return queue === 'default' ? base : `${base}.${queue}`;
}

/** The Temporal activity options of one step call: the step's contract, then the call's overrides. */
export function activityOptionsFor(def: StepDef, o: StepCallOptions, key: string, priority?: Priority): ActivityOptions {
  const where = `step "${def.name}"`;
  const { key: _key, ...overrides } = o;
  validateStepOptions(overrides, `${where}, call ${key}`);
  const timeout = o.timeout ?? def.options.timeout ?? DEFAULT_TIMEOUT;
  const summary = o.summary ?? def.options.summary;
  const opts: ActivityOptions = {
    activityId: key,
    summary: summary ? `${key} — ${summary}` : key,
    startToCloseTimeout: toMs(timeout, where),
    retry: { ...DEFAULT_RETRY, ...(def.options.retry ?? {}), ...(o.retry ?? {}) },
    // The workflow waits until the step has seen its cancellation, so nothing keeps running unobserved.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    ...(priority ? { priority } : {}),
  };
  const queue = o.queue ?? def.options.queue;
  if (queue) opts.taskQueue = taskQueueFor(workflowInfo().taskQueue, queue);
  const s2c = o.scheduleToClose ?? def.options.scheduleToClose;
  if (s2c !== undefined) opts.scheduleToCloseTimeout = toMs(s2c, where);
  opts.heartbeatTimeout = toMs(o.heartbeat ?? def.options.heartbeat ?? DEFAULT_HEARTBEAT, where);
  return opts;
}
