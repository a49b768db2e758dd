// Waiting inside a run: approval gates (decided through the kaon.decide update, see control.ts) and sleeps.
// Both are Temporal timers and conditions: a run waiting for days holds no worker.
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { condition, getExternalWorkflowHandle, ParentClosePolicy, sleep, startChild, workflowInfo } from '@temporalio/workflow';
import type { EventDef, EventPayload } from '../definition/events';
import { EVENTS_WORKFLOW, eventsWorkflowId, subscriptionToken, type EventFilter, type Subscription } from '../definition/internal/protocol';
import { subscribeSignal } from './events';
import { toMs, type Duration } from '../definition/duration';
import type { GateState } from '../observe/run-state';
import type { RunCore } from './core';
import { now } from './run-state-tracker';

export interface ApprovalOptions {
  /** How long to wait for a person. Default: for ever. */
  timeout?: Duration;
  /** What a timeout decides. Default 'reject'. */
  onTimeout?: 'approve' | 'reject';
  /** Shown with the gate (run state, Web UI, `kaon status`): what the person is approving. */
  details?: unknown;
}

export interface Decision {
  gate: string;
  approved: boolean;
  by?: string;
  comment?: string;
  at: number;
  timedOut: boolean;
}

/** k.approval: wait for `kaon approve|reject <run> <gate>` (or run.approve), or the timeout. */
export async function runApproval(core: RunCore, name: string, opts: ApprovalOptions = {}): Promise<Decision> {
  const gate = core.gateKey(name);
  const timeoutMs = opts.timeout === undefined ? undefined : toMs(opts.timeout, `approval "${name}", option timeout`);
  const requestedAt = now();
  const g: GateState = {
    gate,
    status: 'waiting',
    requestedAt,
    ...(timeoutMs !== undefined ? { timeoutAt: requestedAt + timeoutMs, onTimeout: opts.onTimeout ?? 'reject' } : {}),
    ...(opts.details !== undefined ? { details: opts.details } : {}),
  };
  const state = core.tracker.state;
  state.gates = [...(state.gates ?? []), g];
  core.tracker.refresh();
  const decided = timeoutMs === undefined ? (await condition(() => g.status !== 'waiting'), true) : await condition(() => g.status !== 'waiting', timeoutMs);
  if (!decided) {
    Object.assign(g, { status: (opts.onTimeout ?? 'reject') === 'approve' ? 'approved' : 'rejected', decidedAt: now(), timedOut: true });
    core.tracker.refresh();
  }
  return { gate, approved: g.status === 'approved', at: g.decidedAt ?? now(), timedOut: g.timedOut === true, ...(g.by ? { by: g.by } : {}), ...(g.comment ? { comment: g.comment } : {}) };
}

/** k.sleep: a durable timer, shown in the run state while it runs. */
export async function runSleep(core: RunCore, duration: Duration): Promise<void> {
  const ms = toMs(duration, 'k.sleep');
  const key = core.key('sleep');
  const st = core.tracker.add({ key, step: 'sleep', status: 'waiting', attempts: 0, startedAt: now(), note: `sleeping until ${new Date(now() + ms).toISOString()}` });
  await sleep(ms);
  core.tracker.update(st, { status: 'succeeded', endedAt: now() });
}

export interface WaitForOptions<E extends EventDef = EventDef> {
  /** Give up after this long; waitFor then resolves to undefined. Default: wait for ever. */
  timeout?: Duration;
  /** Only events whose payload has these top-level field values, e.g. `{ country: 'JP' }`. */
  where?: Partial<Record<keyof EventPayload<E> & string, string | number | boolean>>;
}

/**
 * k.waitFor: the next event of a name (and filter) for this run, or undefined after the timeout. The first wait
 * subscribes the run with Kaon's events workflow (starting it if no event was emitted yet); from then on every
 * matching event is delivered to the run and queued until a waitFor takes it, also while the run is busy and
 * across continue-as-new, so a loop that retrains between waits misses none.
 */
export async function runWaitFor(core: RunCore, event: EventDef | string, opts: WaitForOptions = {}): Promise<unknown> {
  const name = typeof event === 'string' ? event : event.name;
  const timeoutMs = opts.timeout === undefined ? undefined : toMs(opts.timeout, `waitFor "${name}", option timeout`);
  const where = opts.where && Object.keys(opts.where).length ? (opts.where as EventFilter) : undefined;
  const info = workflowInfo();
  const token = subscriptionToken(info.workflowId, info.firstExecutionRunId, name, where);
  const key = core.key(`waitFor[${name}]`);
  const filterNote = where ? ` where ${Object.entries(where).map(([k, v]) => `${k}=${String(v)}`).join(', ')}` : '';
  const st = core.tracker.add({ key, step: 'waitFor', status: 'waiting', attempts: 0, startedAt: now(), note: `waiting for event ${name}${filterNote}` });
  core.tracker.refresh();
  if (!core.control.subscribed.has(token)) {
    core.control.subscribed.add(token);
    await subscribe({ runId: info.workflowId, event: name, token, ...(where ? { where } : {}) }, info.taskQueue);
  }
  const ready = () => core.control.has(token);
  const got = timeoutMs === undefined ? (await condition(ready), true) : await condition(ready, timeoutMs);
  const m = got ? core.control.take(token) : undefined;
  core.tracker.update(st, { status: m ? 'succeeded' : 'skipped', endedAt: now(), note: m ? `event ${name} ${m.id}` : `no event ${name}${filterNote} within the timeout` });
  if (!m) return undefined;
  return typeof event === 'string' ? m.payload : event.payload.parse(m.payload);
}

async function subscribe(sub: Subscription, taskQueue: string): Promise<void> {
  const events = getExternalWorkflowHandle(eventsWorkflowId(taskQueue));
  try {
    await events.signal(subscribeSignal, sub);
  } catch {
    // No event was ever emitted on this queue: start the events workflow (once; a concurrent start wins), then subscribe.
    try {
      await startChild(EVENTS_WORKFLOW, { workflowId: eventsWorkflowId(taskQueue), taskQueue, args: [], parentClosePolicy: ParentClosePolicy.ABANDON });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    await events.signal(subscribeSignal, sub);
  }
}
