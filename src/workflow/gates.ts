// Waiting inside a run: approval gates (decided through the kaon.decide update, see control.ts) and sleeps.
// Both are Temporal timers and conditions: a run waiting for days holds no worker.
import { condition, sleep } from '@temporalio/workflow';
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
