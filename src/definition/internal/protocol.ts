// Wire types between the workflow (orchestration) and the worker (execution). Internal: not a public API.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { ArtifactRef } from '../artifact-ref';

export const QUERY_PROGRESS = 'kaon.progress';
/** Updates every pipeline accepts (validated in the workflow; refused ones never enter history). */
export const UPDATE_DECIDE = 'kaon.decide';
export const UPDATE_PAUSE = 'kaon.pause';
export const UPDATE_MESSAGE = 'kaon.message';
/** Signal a sweep's coordinator and shards get when their run is paused or unpaused. */
export const SIGNAL_PAUSE = 'kaon.paused';

export interface DecideRequest {
  gate: string;
  decision: 'approve' | 'reject';
  by?: string;
  comment?: string;
}

export interface PauseRequest {
  paused: boolean;
  by?: string;
  note?: string;
}

export interface MessageRequest {
  name: string;
  value: unknown;
}

/** Search attributes Kaon registers on the dev server and upserts from workflows. */
export const SA = {
  pipeline: 'KaonPipeline',
  status: 'KaonStatus',
  step: 'KaonStep',
  runKey: 'KaonRunKey',
} as const;

export const SAKey = {
  pipeline: defineSearchAttributeKey(SA.pipeline, SearchAttributeType.KEYWORD),
  status: defineSearchAttributeKey(SA.status, SearchAttributeType.KEYWORD),
  step: defineSearchAttributeKey(SA.step, SearchAttributeType.KEYWORD),
  runKey: defineSearchAttributeKey(SA.runKey, SearchAttributeType.KEYWORD),
};

/** Fairness keys are at most 64 bytes; a long run id keeps its tail, which is where ids differ. */
export function fairnessKeyFor(id: string): string {
  return id.length <= 64 ? id : id.slice(-64);
}

/** Temporal priority keys Kaon accepts: 1 (first) … 5; Temporal's default is 3. */
export function isPriority(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 5;
}

/** What the workflow sends to a step activity. */
export interface StepCall {
  key: string;
  input: unknown;
  pipeline: string;
  /** Cache mode for this run: 'on' honours steps' cache option, 'off' bypasses it. */
  cache?: 'on' | 'off';
  /** Earlier run whose matching steps may be reused (resume). */
  resumeFrom?: { runId: string; workflowId: string; recompute: readonly string[] };
}

/** What a step activity returns. */
export interface StepResult {
  output: unknown;
  attempt: number;
  /** Set when the output came from the memo table instead of running the step. */
  reused?: { from: 'cache' | 'resume'; runId: string };
  /** Cards the step published (card JSON artifacts). */
  cards?: ArtifactRef[];
  /** The step's metrics (ctx.metrics.log, kaon_step.log_metric): the latest 1,000. */
  metrics?: Array<{ name: string; value: number; step?: number }>;
  /** What the worker wants the run state to say about this step (a stale cache entry recomputed, a failed cache write). */
  note?: string;
}

/** Details Kaon attaches to step failures (ApplicationFailure.details[0]). */
export interface StepFailureDetails {
  attempt: number;
  step: string;
  key: string;
  logTail?: string[];
  issues?: string[];
}

/** Kaon's events workflow (one per task queue): receives emitted events by signal and starts triggered runs. */
export const EVENTS_WORKFLOW = 'kaon.events';
export const EVENT_SIGNAL = 'kaon.event';
export const QUERY_JOINS = 'kaon.joins';

export function eventsWorkflowId(taskQueue: string): string {
  return `kaon.events--${taskQueue}`;
}

export interface EventMessage {
  event: string;
  id: string;
  payload: unknown;
  /** Client time of the emit (ms). */
  at: number;
}

/** A join still waiting: which events arrived for its key, and which it still waits for. */
export interface PendingJoin {
  trigger: string;
  key: string;
  arrived: { event: string; id: string; at: number }[];
  waitingFor: string[];
}

/** What the events workflow answers to `kaon.joins`: pending joins, the runs that wait in k.waitFor, recent errors. */
export interface EventsView {
  joins: PendingJoin[];
  waiting: { run: string; event: string; where?: EventFilter }[];
  handled: number;
  errors: string[];
}

/**
 * k.waitFor: a run subscribes with the events workflow to the events of a name (optionally only those whose
 * payload has the given top-level field values), delivered back to it by signal. The subscription stands for the
 * run's life (its workflow id, so across continue-as-new) until a delivery finds the run closed.
 */
export const SUBSCRIBE_SIGNAL = 'kaon.subscribe';
export const DELIVER_SIGNAL = 'kaon.deliver';

export type EventFilter = Record<string, string | number | boolean>;

export interface Subscription {
  runId: string;
  event: string;
  token: string;
  where?: EventFilter;
}

/** A filter as text: the same filter always gives the same key. */
export function filterKey(where?: EventFilter): string {
  return where ? Object.keys(where).sort().map((k) => `${k}=${JSON.stringify(where[k])}`).join('&') : '';
}

/**
 * The token of a run's subscription: one per (event, filter) and run — the first execution's run id is kept
 * across continue-as-new, and a new run under the same workflow id gets a new token.
 */
export function subscriptionToken(workflowId: string, firstRunId: string, event: string, where?: EventFilter): string {
  const filter = filterKey(where);
  return `${workflowId}/${firstRunId}|${event}${filter ? `?${filter}` : ''}`;
}

/** Whether an event's payload has every field value of a filter. */
export function matchesFilter(payload: unknown, where: EventFilter | undefined): boolean {
  if (!where) return true;
  if (typeof payload !== 'object' || payload === null) return false;
  return Object.entries(where).every(([k, v]) => (payload as Record<string, unknown>)[k] === v);
}
