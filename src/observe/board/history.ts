// What a run's Temporal history tells the board: per step key its call (input), result, attempts, failure and
// timestamps, the time split (orchestration / queue wait / user code), child workflows, and the DAG's edges.
import type { Client } from '@temporalio/client';
import { decodeRaw } from '../../data/codec';
import { isArtifactRef } from '../../definition/artifact-ref';
import type { RunState, StepState } from '../run-state';

type HistoryEvent = NonNullable<NonNullable<Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>['events']>>[number];

export interface StepTiming {
  key: string;
  step: string;
  /** The workflow task that scheduled the step was itself scheduled (what woke the workflow). */
  wokeAt?: number;
  scheduledAt?: number;
  /** Start of the last attempt (Temporal records only that one). */
  startedAt?: number;
  endedAt?: number;
  attempt?: number;
  status: 'scheduled' | 'running' | 'succeeded' | 'failed' | 'timed out' | 'cancelled';
  input?: unknown;
  output?: unknown;
  reused?: { from: string; runId: string };
  failure?: { message: string; type?: string; nonRetryable?: boolean; logTail?: string[]; issues?: string[] };
  /** ms: the workflow deciding (woke → scheduled); waiting for a worker and earlier attempts (scheduled → last start); the step's own code (last attempt). */
  split?: { orchestrationMs: number; queueMs: number; codeMs: number; retriesIncluded: boolean };
  /** A child workflow (child pipeline or k.map coordinator): its workflow id. */
  child?: string;
}

export interface Edge {
  from: string;
  to: string;
  /** 'data': an input of `to` is an artifact or value `from` produced; 'order': `to` was scheduled when `from` finished. */
  kind: 'data' | 'order';
}

export interface RunHistory {
  params: unknown;
  steps: StepTiming[];
  edges: Edge[];
  result?: unknown;
  failure?: string;
  events: number;
}

function ms(t: HistoryEvent['eventTime']): number | undefined {
  if (!t) return undefined;
  const s = Number(t.seconds ?? 0);
  return s * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
}

interface Failure {
  message?: string | null;
  cause?: Failure | null;
  applicationFailureInfo?: { type?: string | null; nonRetryable?: boolean | null; details?: { payloads?: unknown[] | null } | null } | null;
}

/** Read one run's history and derive steps, timings and edges. Bounded: a run's history is under 10,240 events (invariant 4). */
export async function readRunHistory(temporal: Client, workflowId: string, runId?: string): Promise<RunHistory> {
  // Decoded first: with an encryption key the payloads (and failure messages) in raw history are ciphertext.
  const history = await decodeRaw(temporal.options.loadedDataConverter, await temporal.workflow.getHandle(workflowId, runId).fetchHistory());
  const conv = temporal.options.loadedDataConverter.payloadConverter;
  const decode = (p: { payloads?: unknown[] | null } | null | undefined): unknown => {
    const first = p?.payloads?.[0];
    if (!first) return undefined;
    try {
      return conv.fromPayload(first as never);
    } catch {
      return undefined;
    }
  };
  const failureOf = (f: Failure | null | undefined): StepTiming['failure'] => {
    if (!f) return undefined;
    const app = f.applicationFailureInfo ?? f.cause?.applicationFailureInfo;
    const details = decode(app?.details ?? undefined) as { logTail?: string[]; issues?: string[] } | undefined;
    const message = f.cause?.message ? `${f.message ?? ''}: ${f.cause.message}` : (f.message ?? '');
    return {
      message,
      ...(app?.type ? { type: app.type } : {}),
      ...(app?.nonRetryable ? { nonRetryable: true } : {}),
      ...(Array.isArray(details?.logTail) ? { logTail: details.logTail } : {}),
      ...(Array.isArray(details?.issues) ? { issues: details.issues } : {}),
    };
  };
  const events = history.events ?? [];
  const byScheduled = new Map<string, StepTiming>();
  const steps: StepTiming[] = [];
  let wokeAt: number | undefined;
  let params: unknown;
  let result: unknown;
  let failure: string | undefined;
  // Steps finished since the last workflow task completed: what woke the workflow for the next decisions.
  let finishedSinceTask: string[] = [];
  let wakers: string[] = [];
  const wokenBy = new Map<string, string[]>();
  for (const e of events) {
    const t = ms(e.eventTime);
    const id = String(e.eventId);
    if (e.workflowExecutionStartedEventAttributes) params = decode(e.workflowExecutionStartedEventAttributes.input);
    else if (e.workflowTaskScheduledEventAttributes) wokeAt = t;
    else if (e.workflowTaskCompletedEventAttributes) {
      wakers = finishedSinceTask;
      finishedSinceTask = [];
    } else if (e.workflowTaskStartedEventAttributes) {
      wakers = [...finishedSinceTask];
    } else if (e.activityTaskScheduledEventAttributes) {
      const a = e.activityTaskScheduledEventAttributes;
      const call = decode(a.input) as { key?: string; input?: unknown; items?: unknown } | undefined;
      if (!call || typeof call !== 'object' || 'items' in call) continue; // a k.map batch belongs to its shard
      const s: StepTiming = { key: a.activityId ?? '', step: a.activityType?.name ?? '', status: 'scheduled', input: call.input, ...(t !== undefined ? { scheduledAt: t } : {}), ...(wokeAt !== undefined ? { wokeAt } : {}) };
      byScheduled.set(id, s);
      steps.push(s);
      wokenBy.set(s.key, wakers);
    } else if (e.startChildWorkflowExecutionInitiatedEventAttributes) {
      const c = e.startChildWorkflowExecutionInitiatedEventAttributes;
      const wid = c.workflowId ?? '';
      const key = wid.startsWith(`${workflowId}/`) ? wid.slice(workflowId.length + 1) : wid;
      const s: StepTiming = { key, step: c.workflowType?.name ?? '', status: 'scheduled', input: decode(c.input), child: wid, ...(t !== undefined ? { scheduledAt: t } : {}), ...(wokeAt !== undefined ? { wokeAt } : {}) };
      byScheduled.set(id, s);
      steps.push(s);
      wokenBy.set(s.key, wakers);
    } else {
      const started = e.activityTaskStartedEventAttributes ?? e.childWorkflowExecutionStartedEventAttributes;
      const done = e.activityTaskCompletedEventAttributes ?? e.childWorkflowExecutionCompletedEventAttributes;
      const failed = e.activityTaskFailedEventAttributes ?? e.childWorkflowExecutionFailedEventAttributes;
      const timedOut = e.activityTaskTimedOutEventAttributes ?? e.childWorkflowExecutionTimedOutEventAttributes;
      const cancelled = e.activityTaskCanceledEventAttributes ?? e.childWorkflowExecutionCanceledEventAttributes;
      const ref = (x: { scheduledEventId?: unknown; initiatedEventId?: unknown } | null | undefined) => (x ? byScheduled.get(String(x.scheduledEventId ?? x.initiatedEventId)) : undefined);
      if (started) {
        const s = ref(started as never);
        if (s) {
          s.status = 'running';
          if (t !== undefined) s.startedAt = t;
          s.attempt = (e.activityTaskStartedEventAttributes?.attempt ?? 1) || 1;
        }
      } else if (done) {
        const s = ref(done as never);
        if (s) {
          s.status = 'succeeded';
          if (t !== undefined) s.endedAt = t;
          const r = decode(done.result) as { output?: unknown; reused?: StepTiming['reused'] } | undefined;
          if (s.child) s.output = r;
          else if (r && typeof r === 'object') {
            s.output = r.output;
            if (r.reused) s.reused = r.reused;
          }
          finishedSinceTask.push(s.key);
        }
      } else if (failed || timedOut || cancelled) {
        const s = ref((failed ?? timedOut ?? cancelled) as never);
        if (s) {
          s.status = failed ? 'failed' : timedOut ? 'timed out' : 'cancelled';
          if (t !== undefined) s.endedAt = t;
          const f = failureOf(((failed ?? timedOut) as { failure?: unknown } | undefined)?.failure as Failure | undefined);
          if (f) s.failure = f;
          finishedSinceTask.push(s.key);
        }
      } else if (e.workflowExecutionCompletedEventAttributes) result = decode(e.workflowExecutionCompletedEventAttributes.result);
      else if (e.workflowExecutionFailedEventAttributes) failure = failureOf(e.workflowExecutionFailedEventAttributes.failure as Failure)?.message;
    }
  }
  for (const s of steps) {
    if (s.scheduledAt === undefined) continue;
    const orchestrationMs = s.wokeAt !== undefined ? Math.max(0, s.scheduledAt - s.wokeAt) : 0;
    if (s.startedAt !== undefined && s.endedAt !== undefined) {
      s.split = { orchestrationMs, queueMs: Math.max(0, s.startedAt - s.scheduledAt), codeMs: Math.max(0, s.endedAt - s.startedAt), retriesIncluded: (s.attempt ?? 1) > 1 };
    }
  }
  return { params, steps, edges: deriveEdges(workflowId, steps, wokenBy), ...(result !== undefined ? { result } : {}), ...(failure ? { failure } : {}), events: events.length };
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/**
 * Edges, derived honestly from what the history holds:
 *  - data: the input of a step contains an ArtifactRef produced by another step of this run (its producer), or an
 *    object equal to another step's whole output (the pipeline passed that output on), or a field of it;
 *  - order: otherwise, the steps whose completion woke the workflow task that scheduled it.
 */
export function deriveEdges(workflowId: string, steps: readonly StepTiming[], wokenBy: ReadonlyMap<string, string[]>): Edge[] {
  const keys = new Set(steps.map((s) => s.key));
  const outputs = new Map<string, string>();
  for (const s of steps) {
    if (s.output === undefined || s.output === null) continue;
    const add = (v: unknown) => {
      if (v && typeof v === 'object' && !isArtifactRef(v)) {
        const c = canonical(v);
        if (c.length > 20 && !outputs.has(c)) outputs.set(c, s.key);
      }
    };
    add(s.output);
    if (typeof s.output === 'object' && !Array.isArray(s.output)) for (const v of Object.values(s.output as object)) add(v);
  }
  const edges: Edge[] = [];
  const seen = new Set<string>();
  const push = (from: string, to: string, kind: Edge['kind']) => {
    const id = `${from}\u0000${to}`;
    if (from === to || seen.has(id) || !keys.has(from)) return;
    seen.add(id);
    edges.push({ from, to, kind });
  };
  for (const s of steps) {
    const before = edges.length;
    let budget = 5000;
    const walk = (v: unknown): void => {
      if (budget-- <= 0) return;
      if (isArtifactRef(v)) {
        if (v.producer.runId === workflowId) push(v.producer.step, s.key, 'data');
        return;
      }
      if (v && typeof v === 'object') {
        const from = outputs.get(canonical(v));
        if (from) {
          push(from, s.key, 'data');
          return;
        }
        for (const x of Object.values(v)) walk(x);
      }
    };
    walk(s.input);
    void before;
    for (const w of wokenBy.get(s.key) ?? []) push(w, s.key, 'order');
  }
  return edges;
}

/** A run state rebuilt from history, for runs whose workflow cannot answer the progress query (no worker, or closed long ago). */
export function stateFromHistory(pipeline: string, h: RunHistory, status: RunState['status']): RunState {
  const steps: StepState[] = h.steps.map((s) => ({
    key: s.key,
    step: s.step,
    status: s.status === 'timed out' ? 'failed' : s.status === 'scheduled' ? 'pending' : s.reused ? 'cached' : s.status,
    attempts: s.attempt ?? 0,
    ...(s.scheduledAt !== undefined ? { startedAt: s.scheduledAt } : {}),
    ...(s.endedAt !== undefined ? { endedAt: s.endedAt } : {}),
    ...(s.failure ? { error: s.failure.message } : {}),
  }));
  return { pipeline, status, startedAt: h.steps[0]?.scheduledAt ?? 0, steps, failedItems: [], ...(h.failure ? { error: h.failure } : {}) };
}
