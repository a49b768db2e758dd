// Steering a running run: approval decisions, pause, and typed messages. Each is a Temporal update whose
// validator refuses bad requests before they enter history (an unknown gate, a second decision, an invalid
// message), so the caller gets the reason at once. Kaon's pause lives in the workflow, so queries keep working.
import { condition, defineSignal, defineUpdate, getExternalWorkflowHandle, setHandler } from '@temporalio/workflow';
import type { z } from 'zod';
import { describeZodIssues } from '../definition/errors';
import { DELIVER_SIGNAL, SIGNAL_PAUSE, UPDATE_DECIDE, type EventMessage, UPDATE_MESSAGE, UPDATE_PAUSE, type DecideRequest, type MessageRequest, type PauseRequest } from '../definition/internal/protocol';
import type { GateState } from '../observe/run-state';
import type { RunState } from '../observe/run-state';
import { now, type RunStateTracker } from './run-state-tracker';

export const decideUpdate = defineUpdate<GateState, [DecideRequest]>(UPDATE_DECIDE);
export const pauseUpdate = defineUpdate<RunState['paused'] | null, [PauseRequest]>(UPDATE_PAUSE);
export const messageUpdate = defineUpdate<unknown, [MessageRequest]>(UPDATE_MESSAGE);
export const pausedSignal = defineSignal<[boolean]>(SIGNAL_PAUSE);
export const deliverSignal = defineSignal<[EventMessage & { token: string }]>(DELIVER_SIGNAL);

export type MessageSchemas = Record<string, z.ZodType>;

/** Undelivered events kept per subscription. */
const INBOX_LIMIT = 1000;

/** Thrown by validators: Temporal returns the message to the caller as the update's failure. */
class Refused extends Error {
  override readonly name = 'KaonRefused';
}

/** The control state of one execution, and the update handlers that change it. */
export class RunControl {
  private readonly handlers = new Map<string, (value: unknown) => unknown>();
  /** Sweeps (coordinator workflow ids) that learn of pause and unpause. */
  readonly followers = new Set<string>();

  constructor(
    private readonly tracker: RunStateTracker,
    private readonly messages: MessageSchemas,
    private readonly pipeline: string,
  ) {
    const state = tracker.state;
    setHandler(deliverSignal, ({ token, ...m }) => {
      // A delivery for an earlier run under this workflow id (its subscription is being replaced) is not ours.
      if (!this.subscribed.has(token)) return;
      const box = this.inbox.get(token) ?? [];
      box.push(m);
      // A run that never waits again must not grow without bound: the oldest undelivered events go first.
      if (box.length > INBOX_LIMIT) box.splice(0, box.length - INBOX_LIMIT);
      this.inbox.set(token, box);
    });
    setHandler(decideUpdate, (req) => this.decide(req), { validator: (req) => void this.gateFor(req) });
    setHandler(
      pauseUpdate,
      (req) => {
        state.paused = req.paused ? { at: now(), ...(req.by ? { by: req.by } : {}), ...(req.note ? { note: req.note } : {}) } : undefined;
        if (!req.paused) delete state.paused;
        tracker.refresh();
        for (const id of this.followers) getExternalWorkflowHandle(id).signal(pausedSignal, req.paused).catch(() => undefined);
        return state.paused ?? null;
      },
      {
        validator: (req) => {
          if (typeof req?.paused !== 'boolean') throw new Refused('a pause request needs { paused: true | false }');
          if (req.paused && state.paused) throw new Refused(`run is already paused${state.paused.by ? ` by ${state.paused.by}` : ''}`);
          if (!req.paused && !state.paused) throw new Refused('run is not paused');
        },
      },
    );
    setHandler(
      messageUpdate,
      async (req) => {
        const value = this.messages[req.name]!.parse(req.value);
        state.messages = { ...state.messages, [req.name]: value };
        tracker.refresh();
        const handler = this.handlers.get(req.name);
        return handler ? await handler(value) : value;
      },
      {
        validator: (req) => {
          const schema = this.messages[req?.name];
          if (!schema) {
            const known = Object.keys(this.messages);
            throw new Refused(`pipeline "${this.pipeline}" has no message "${String(req?.name)}" (it declares ${known.length ? known.join(', ') : 'none'}). To fix: send one of its declared messages, or declare it in definePipeline({ messages })`);
          }
          const parsed = schema.safeParse(req.value);
          if (!parsed.success) throw new Refused(`message "${req.name}" is invalid: ${describeZodIssues(parsed.error, req.value).join('; ')}. To fix: send a value that matches its schema`);
        },
      },
    );
  }

  /** Events delivered to this run's subscriptions (by token) and not yet taken by k.waitFor, oldest first. */
  private readonly inbox = new Map<string, EventMessage[]>();
  /** Tokens this run has subscribed (this execution or an earlier one of the same run). */
  readonly subscribed = new Set<string>();

  /** Take the oldest event delivered to a subscription, if any. */
  take(token: string): EventMessage | undefined {
    return this.inbox.get(token)?.shift();
  }

  has(token: string): boolean {
    return (this.inbox.get(token)?.length ?? 0) > 0;
  }

  /** What continue-as-new carries: the subscriptions and the events not yet taken. */
  carry(): { subscribed: string[]; inbox: Record<string, EventMessage[]> } {
    return { subscribed: [...this.subscribed], inbox: Object.fromEntries([...this.inbox].filter(([, box]) => box.length > 0)) };
  }

  restore(c: { subscribed?: string[]; inbox?: Record<string, EventMessage[]> }): void {
    for (const t of c.subscribed ?? []) this.subscribed.add(t);
    for (const [t, box] of Object.entries(c.inbox ?? {})) this.inbox.set(t, [...box, ...(this.inbox.get(t) ?? [])]);
  }

  get paused(): boolean {
    return this.tracker.state.paused !== undefined;
  }

  /** Resolve at once when not paused (no promise, so command order is unchanged), else when unpaused. */
  whenRunning(): Promise<void> | undefined {
    return this.paused ? condition(() => !this.paused) : undefined;
  }

  onMessage(name: string, fn: (value: unknown) => unknown): void {
    if (!this.messages[name]) throw new Refused(`pipeline "${this.pipeline}" declares no message "${name}"`);
    this.handlers.set(name, fn);
  }

  message(name: string): unknown {
    return this.tracker.state.messages?.[name];
  }

  /** The waiting gate a request names: its exact key (`publish#2`), or the one waiting gate of that name. */
  private gateFor(req: DecideRequest): GateState {
    if (req?.decision !== 'approve' && req?.decision !== 'reject') throw new Refused(`decision must be 'approve' or 'reject', got ${JSON.stringify(req?.decision)}`);
    const gates = this.tracker.state.gates ?? [];
    const exact = gates.filter((g) => g.gate === req.gate);
    const byName = exact.length ? exact : gates.filter((g) => g.gate.replace(/#\d+$/, '') === req.gate && g.status === 'waiting');
    const waiting = byName.filter((g) => g.status === 'waiting');
    if (waiting.length === 1) return waiting[0]!;
    if (waiting.length > 1) throw new Refused(`${waiting.length} gates named "${req.gate}" are waiting (${waiting.map((g) => g.gate).join(', ')}). To fix: name one exactly`);
    const decided = byName.at(-1);
    if (decided) throw new Refused(`gate "${decided.gate}" was already ${decided.status}${decided.by ? ` by ${decided.by}` : ''}${decided.timedOut ? ' (it timed out)' : ''}; a decision is final`);
    const open = gates.filter((g) => g.status === 'waiting').map((g) => g.gate);
    throw new Refused(`no gate "${req.gate}" is waiting in this run (waiting: ${open.length ? open.join(', ') : 'none'}). To fix: check the gate name with 'kaon status <run>'`);
  }

  private decide(req: DecideRequest): GateState {
    const g = this.gateFor(req);
    Object.assign(g, { status: req.decision === 'approve' ? 'approved' : 'rejected', decidedAt: now(), ...(req.by ? { by: req.by } : {}), ...(req.comment ? { comment: req.comment } : {}) });
    this.tracker.refresh();
    return g;
  }
}
