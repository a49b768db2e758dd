/** A step that completed in an earlier run, as its history recorded it. */
export interface PriorStep {
  step: string;
  input: unknown;
  output: unknown;
}

/**
 * What resume needs of an earlier run: the steps it completed, by step key. The activity reuses a step's output only
 * when its memo key matches, its artifacts still exist and it still passes today's output schema (else it recomputes).
 */
export interface PriorSteps {
  of(workflowId: string): Promise<ReadonlyMap<string, PriorStep>>;
}

/** The parts of Temporal's history events (temporal.api.history.v1) that resume reads. */
type Payload = { metadata?: Record<string, Uint8Array> | null; data?: Uint8Array | null };
type Id = number | { toString(): string };
export interface HistoryEvent {
  eventId?: Id | null;
  activityTaskScheduledEventAttributes?: { activityType?: { name?: string | null } | null; input?: { payloads?: Payload[] | null } | null } | null;
  activityTaskCompletedEventAttributes?: { scheduledEventId?: Id | null; result?: { payloads?: Payload[] | null } | null } | null;
}

export interface HistoryPriorStepsDeps {
  /** Every event of the latest execution of a workflow id, in order. */
  history(workflowId: string): Promise<HistoryEvent[]>;
  /** Payloads to values, through the worker's data converter (codecs included). */
  decode(payloads: Payload[]): Promise<unknown[]>;
  /** How many earlier runs to keep parsed (a resume looks its old run up once per step). */
  keep?: number;
}

/**
 * Resume reads the old run's history, which already holds every completed step's input and output, so a step that
 * is not cached writes nothing of its own to disk. A closed run's history never changes: parsed once, kept (LRU).
 */
export function historyPriorSteps(deps: HistoryPriorStepsDeps): PriorSteps {
  const keep = deps.keep ?? 16;
  const parsed = new Map<string, Promise<ReadonlyMap<string, PriorStep>>>();
  const load = async (workflowId: string): Promise<ReadonlyMap<string, PriorStep>> => {
    const events = await deps.history(workflowId);
    const scheduled = new Map<string, { step: string; input: Payload[] }>();
    const done = new Map<string, PriorStep>();
    for (const e of events) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s && e.eventId != null) {
        scheduled.set(String(e.eventId), { step: s.activityType?.name ?? '', input: s.input?.payloads ?? [] });
        continue;
      }
      const c = e.activityTaskCompletedEventAttributes;
      if (!c || c.scheduledEventId == null) continue;
      const from = scheduled.get(String(c.scheduledEventId));
      if (!from || from.step.startsWith('kaon.')) continue;
      const [call] = (await deps.decode(from.input)) as [{ key?: unknown; input?: unknown } | undefined];
      const [result] = (await deps.decode(c.result?.payloads ?? [])) as [{ output?: unknown } | undefined];
      if (typeof call?.key !== 'string' || !result || !('output' in result)) continue;
      done.set(call.key, { step: from.step, input: call.input, output: result.output });
    }
    return done;
  };
  return {
    of(workflowId) {
      let p = parsed.get(workflowId);
      if (p) {
        parsed.delete(workflowId);
      } else {
        p = load(workflowId);
        // A failed fetch is not remembered: the next step of the resume tries again.
        p.catch(() => parsed.delete(workflowId));
      }
      parsed.set(workflowId, p);
      while (parsed.size > keep) parsed.delete(parsed.keys().next().value!);
      return p;
    },
  };
}
