import type { z } from 'zod';
import { ErrorCode, KaonError } from './errors';
import type { AnyPipeline, PipelineParams, PipelineResult } from './pipeline';
import { assertName } from './step';

/** A typed event (data arrival, a model published…): one object shared by pipelines that react to it and services that emit it. */
export interface EventDef<S extends z.ZodType = z.ZodType, N extends string = string> {
  readonly kind: 'kaon.event';
  readonly name: N;
  readonly payload: S;
}

export function defineEvent<const N extends string, S extends z.ZodType>(name: N, payload: S): EventDef<S, N> {
  assertName('event', name);
  if (typeof payload?.safeParse !== 'function') {
    throw new KaonError({ code: ErrorCode.invalidDefinition, what: `event "${name}": payload must be a zod schema`, fix: 'pass e.g. defineEvent("viewing-history", z.object({ country: z.string(), date: z.string() }))' });
  }
  return Object.freeze({ kind: 'kaon.event', name, payload });
}

export function isEventDef(v: unknown): v is EventDef {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'kaon.event';
}

export type EventPayload<E extends EventDef> = z.output<E['payload']>;

/** What starts a pipeline besides a person or a schedule. Its function runs in workflow code: keep it pure. */
export type Trigger<P = unknown> =
  | { kind: 'event'; event: EventDef; params: (payload: never) => P }
  | { kind: 'success'; after: string; params: (result: never) => P }
  | { kind: 'join'; events: readonly EventDef[]; key: (payload: never) => string; params: (payloads: Record<string, never>) => P };

/** Start a run for each event (once per event id). */
export function onEvent<E extends EventDef, P>(event: E, params: (payload: EventPayload<E>) => P): Trigger<P> {
  return { kind: 'event', event, params: params as (p: never) => P };
}

/** Start a run each time another pipeline's run succeeds, from its result. */
export function onSuccess<A extends AnyPipeline, P>(after: A, params: (result: PipelineResult<A>) => P): Trigger<P> {
  return { kind: 'success', after: after.kaon.name, params: params as (r: never) => P };
}

/** Start one run when every one of `events` has arrived for the same key (e.g. the same partition). */
export function allOf<const E extends readonly EventDef[], P>(
  events: E,
  opts: { key: (payload: EventPayload<E[number]>) => string; params: (payloads: { [K in E[number] as K['name']]: EventPayload<K> }) => P },
): Trigger<P> {
  return { kind: 'join', events, key: opts.key as (p: never) => string, params: opts.params as unknown as (p: Record<string, never>) => P };
}

export type TriggersFor<P extends AnyPipeline> = readonly Trigger<PipelineParams<P>>[];
