// Kaon's events workflow: one long-lived run per task queue (id `kaon.events--<queue>`). `kaon.emit` delivers an
// event to it with signal-with-start, so an event is durable once emit returns, worker or not. For each event it
// starts the runs of the matching triggers (deterministic ids: once per trigger and event id) and keeps the state
// of pending joins. It continues-as-new every few hundred events, carrying that state and any queued events.
import { allHandlersFinished, condition, defineQuery, makeContinueAsNewFunc, defineSignal, getExternalWorkflowHandle, setCurrentDetails, setHandler, workflowInfo } from '@temporalio/workflow';
import { EVENT_SIGNAL, filterKey, matchesFilter, QUERY_JOINS, SUBSCRIBE_SIGNAL, type EventMessage, type EventsView, type PendingJoin, type Subscription } from '../definition/internal/protocol';
import { deliverSignal } from './control';
import { idPart, startTriggered, triggers, type RegisteredTrigger } from './triggers';

export const eventSignal = defineSignal<[EventMessage]>(EVENT_SIGNAL);
export const subscribeSignal = defineSignal<[Subscription]>(SUBSCRIBE_SIGNAL);
export const joinsQuery = defineQuery<EventsView>(QUERY_JOINS);

interface JoinState {
  trigger: string;
  key: string;
  got: Record<string, { id: string; at: number; payload: unknown }>;
}

export interface EventsState {
  queue: EventMessage[];
  joins: JoinState[];
  handled: number;
  errors: string[];
  subscribers?: Subscription[];
  /** Recently delivered `<subscription token>|<event id>`: an event emitted twice reaches a subscription once. */
  delivered?: string[];
}

/** Delivered event ids remembered for de-duplication. */
const DELIVERED_KEPT = 2000;

/** Events handled by one execution before it continues as new (each can start runs: a few events each). */
const EVENTS_PER_EXECUTION = 300;

export async function kaonEvents(carried?: EventsState): Promise<never> {
  const queue: EventMessage[] = [...(carried?.queue ?? [])];
  const joins: JoinState[] = [...(carried?.joins ?? [])];
  const errors: string[] = [...(carried?.errors ?? [])];
  let handled = carried?.handled ?? 0;
  let handledHere = 0;
  setHandler(eventSignal, (m) => void queue.push(m));
  // Runs that wait in k.waitFor: each gets every later event of its name that matches its filter, once.
  const subscribers: Subscription[] = [...(carried?.subscribers ?? [])];
  const delivered: string[] = [...(carried?.delivered ?? [])];
  const deliveredSet = new Set(delivered);
  setHandler(subscribeSignal, (sub) => {
    // One subscription per (workflow id, event, filter): a new run under the same id replaces the old one's.
    const i = subscribers.findIndex((x) => x.runId === sub.runId && x.event === sub.event && filterKey(x.where) === filterKey(sub.where));
    if (i >= 0) subscribers[i] = sub;
    else subscribers.push(sub);
  });
  const pending = (): PendingJoin[] =>
    joins.map((j) => {
      const t = triggers().find((r) => r.id === j.trigger);
      const names = t?.trigger.kind === 'join' ? t.trigger.events.map((e) => e.name) : [];
      return { trigger: j.trigger, key: j.key, arrived: Object.entries(j.got).map(([event, g]) => ({ event, id: g.id, at: g.at })), waitingFor: names.filter((n) => !(n in j.got)) };
    });
  setHandler(joinsQuery, () => ({ joins: pending(), waiting: subscribers.map((x) => ({ run: x.runId, event: x.event, ...(x.where ? { where: x.where } : {}) })), handled, errors: errors.slice(-20) }));
  const publish = () => {
    const p = pending();
    setCurrentDetails(
      [`**Kaon events** for task queue \`${workflowInfo().taskQueue}\` — ${handled} events handled`, '', p.length ? '**Pending joins**' : 'No pending joins.', ...p.map((j) => `- \`${j.trigger}\` key \`${j.key}\`: has ${j.arrived.map((a) => a.event).join(', ')}; waits for ${j.waitingFor.join(', ')}`)].join('\n'),
    );
  };
  publish();
  const fail = (e: string) => {
    errors.push(e);
    if (errors.length > 50) errors.splice(0, errors.length - 50);
  };

  const dispatch = async (m: EventMessage): Promise<void> => {
    const cause = `event ${m.event} (${m.id})`;
    for (const sub of subscribers.filter((x) => x.event === m.event && matchesFilter(m.payload, x.where))) {
      // An event emitted twice (same id) reaches each subscription once.
      const seen = `${sub.token}|${m.id}`;
      if (deliveredSet.has(seen)) continue;
      deliveredSet.add(seen);
      delivered.push(seen);
      if (delivered.length > DELIVERED_KEPT) deliveredSet.delete(delivered.shift()!);
      // Signalling fails only when the run is closed: its subscription ends with it.
      await getExternalWorkflowHandle(sub.runId).signal(deliverSignal, { ...m, token: sub.token }).catch(() => void subscribers.splice(subscribers.indexOf(sub), 1));
    }
    for (const t of triggers()) {
      const tr = t.trigger;
      if (tr.kind === 'event' && tr.event.name === m.event) {
        const r = await startTriggered(t, () => tr.params(m.payload as never), `${t.pipeline}--${idPart(m.event)}-${idPart(m.id)}`, cause);
        if ('error' in r) fail(r.error);
      } else if (tr.kind === 'join' && tr.events.some((e) => e.name === m.event)) {
        await join(t, m, cause);
      }
    }
  };
  const join = async (t: RegisteredTrigger, m: EventMessage, cause: string): Promise<void> => {
    const tr = t.trigger;
    if (tr.kind !== 'join') return;
    let key: string;
    try {
      key = String(tr.key(m.payload as never));
    } catch (err) {
      fail(`trigger "${t.id}": its key function failed on ${cause}: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    let j = joins.find((x) => x.trigger === t.id && x.key === key);
    if (!j) joins.push((j = { trigger: t.id, key, got: {} }));
    // A repeated delivery of an event (same name) for this key does not count twice.
    if (m.event in j.got) return;
    j.got[m.event] = { id: m.id, at: m.at, payload: m.payload };
    if (!tr.events.every((e) => e.name in j.got)) return;
    const got = j.got;
    joins.splice(joins.indexOf(j), 1);
    const payloads = Object.fromEntries(Object.entries(got).map(([k, g]) => [k, g.payload]));
    const r = await startTriggered(t, () => tr.params(payloads as never), `${t.pipeline}--join-${idPart(key)}`, `${tr.events.map((e) => e.name).join(' + ')} for key ${key}`);
    if ('error' in r) fail(r.error);
  };

  for (;;) {
    await condition(() => queue.length > 0 || handledHere >= EVENTS_PER_EXECUTION);
    if (handledHere >= EVENTS_PER_EXECUTION || workflowInfo().historyLength > 6000) break;
    const m = queue.shift()!;
    await dispatch(m);
    handled++;
    handledHere++;
    publish();
  }
  await condition(allHandlersFinished);
  return makeContinueAsNewFunc<typeof kaonEvents>({ initialVersioningBehavior: 'AUTO_UPGRADE' })({ queue, joins, handled, errors, subscribers, delivered });
}
