import { workflowInfo } from '@temporalio/workflow';
import type { z } from 'zod';
import type { Duration } from '../definition/duration';
import type { ArtifactRef } from '../definition/artifact-ref';
import type { AnyPipeline, PipelineParams, PipelineResult } from '../definition/pipeline';
import type { Sweep } from '../definition/sweep';
import type { StepDef, StepInput, StepOutput } from '../definition/step';
import { runChild } from './child';
import type { RunCore } from './core';
import { runForeach, runParallel, type ForeachOptions, type Settled } from './foreach';
import type { MessageSchemas } from './control';
import { runApproval, runSleep, runWaitFor, type ApprovalOptions, type Decision, type WaitForOptions } from './gates';
import type { EventDef, EventPayload } from '../definition/events';
import type { HistoryBudget } from './history-guard';
import { continueRun } from './loop';
import { runMap, type MapOptions } from './map';
import type { StepCallOptions } from './options';
import { runStep } from './step';
import { now } from './run-state-tracker';

/** The workflow-side API a pipeline's `run` receives. */
export interface Kaon<P = unknown, M extends MessageSchemas = Record<never, never>> {
  /** Run one step as a Temporal activity and return its validated output. */
  step<S extends StepDef>(def: S, input: StepInput<S>, opts?: StepCallOptions): Promise<StepOutput<S>>;
  /** Named parallel branches; resolves to an object with each branch's result under its name. */
  parallel<B extends Record<string, () => Promise<unknown>>>(branches: B): Promise<{ [K in keyof B]: Awaited<ReturnType<B[K]>> }>;
  /** Run `fn` for each item (at most 1,000), `concurrency` at a time. Step keys inside get the item's label: `train[US]`. */
  foreach<T, R>(items: readonly T[], opts: ForeachOptions<T> & { onFailure: 'ignore' }, fn: (item: T, index: number) => Promise<R>): Promise<Settled<T, R>[]>;
  foreach<T, R>(items: readonly T[], opts: ForeachOptions<T> & { onFailure?: 'fail-fast' | 'after-running' }, fn: (item: T, index: number) => Promise<R>): Promise<R[]>;
  /** Run a pipeline as a child workflow with its own history. Its key in the run state is `<name>[label]`. */
  child<P extends AnyPipeline>(pipeline: P, params: PipelineParams<P>, opts?: { key?: string }): Promise<PipelineResult<P>>;
  /**
   * A sweep of any size: run a step (or a child pipeline) once per item. Items are an array, or an ArtifactRef to
   * a JSON-lines manifest (one item per line) for sweeps too large for workflow memory. Kaon shards the items
   * over child workflows; the result is a Sweep with counts and a results manifest (line i = item i).
   */
  map<S extends StepDef, T = StepInput<S>>(step: S, items: readonly T[] | ArtifactRef, opts?: MapOptions<T, StepInput<S>>): Promise<Sweep<StepOutput<S>>>;
  map<P extends AnyPipeline, T = PipelineParams<P>>(pipeline: P, items: readonly T[] | ArtifactRef, opts?: MapOptions<T, PipelineParams<P>>): Promise<Sweep<PipelineResult<P>>>;
  /** How much of this execution's history is used (events and bytes against Kaon's bounds). */
  historyBudget(): HistoryBudget;
  /**
   * End this execution and continue the same run (same id, same place in `kaon list`) with `nextParams`, after
   * running signal and update handlers finish. State goes in the params; large state in an artifact.
   */
  continueAsNew(nextParams: P): Promise<never>;
  /**
   * Wait for a person: `kaon approve <run> <gate>` / `kaon reject`, or `run.approve(gate)`. The run shows
   * `waiting for approval: <gate>` meanwhile. Resolves to the decision (who, when, why); a timeout decides `onTimeout`.
   */
  approval(gate: string, opts?: ApprovalOptions): Promise<Decision>;
  /** A durable timer ('1 day', '30m', ms), shown in the run state. */
  sleep(duration: Duration): Promise<void>;
  /**
   * Wait for the next emitted event of this kind (kaon.emit), optionally only those matching `where`, or the
   * timeout (then undefined). From the first wait on, matching events queue for the run while it does other
   * work and across continue-as-new: a loop misses none.
   */
  waitFor<E extends EventDef>(event: E, opts?: WaitForOptions<E>): Promise<EventPayload<E> | undefined>;
  /** The latest value of a typed message the run received (run.send), or undefined. */
  message<K extends keyof M & string>(name: K): z.output<M[K]> | undefined;
  /** Handle a typed message as it arrives; what the handler returns goes back to the sender. */
  onMessage<K extends keyof M & string>(name: K, fn: (value: z.output<M[K]>) => unknown): void;
  /** A line about where the run is (a loop's champion, say), shown by `kaon status` and in the Web UI details. */
  summary(text: string): void;
  /** Workflow time in ms: deterministic on replay, and skipped ahead by the time-skipping test server. */
  now(): number;
  /** This run's workflow id. */
  readonly runId: string;
}

/** Composes the orchestration primitives (one module each) over one execution's RunCore. */
export class KaonContext implements Kaon<unknown, MessageSchemas> {
  constructor(private readonly core: RunCore) {}

  get runId(): string {
    return workflowInfo().workflowId;
  }

  step<S extends StepDef>(def: S, input: StepInput<S>, opts?: StepCallOptions): Promise<StepOutput<S>> {
    return runStep(this.core, def, input, opts);
  }

  child<P extends AnyPipeline>(pipeline: P, params: PipelineParams<P>, opts?: { key?: string }): Promise<PipelineResult<P>> {
    return runChild(this.core, pipeline, params, opts);
  }

  parallel<B extends Record<string, () => Promise<unknown>>>(branches: B): Promise<{ [K in keyof B]: Awaited<ReturnType<B[K]>> }> {
    return runParallel(this.core, branches);
  }

  foreach<T, R>(items: readonly T[], opts: ForeachOptions<T> & { onFailure: 'ignore' }, fn: (item: T, index: number) => Promise<R>): Promise<Settled<T, R>[]>;
  foreach<T, R>(items: readonly T[], opts: ForeachOptions<T> & { onFailure?: 'fail-fast' | 'after-running' }, fn: (item: T, index: number) => Promise<R>): Promise<R[]>;
  foreach<T, R>(items: readonly T[], opts: ForeachOptions<T>, fn: (item: T, index: number) => Promise<R>): Promise<R[] | Settled<T, R>[]> {
    return runForeach(this.core, items, opts, fn);
  }

  map<S extends StepDef, T = StepInput<S>>(step: S, items: readonly T[] | ArtifactRef, opts?: MapOptions<T, StepInput<S>>): Promise<Sweep<StepOutput<S>>>;
  map<P extends AnyPipeline, T = PipelineParams<P>>(pipeline: P, items: readonly T[] | ArtifactRef, opts?: MapOptions<T, PipelineParams<P>>): Promise<Sweep<PipelineResult<P>>>;
  map(target: StepDef | AnyPipeline, items: readonly unknown[] | ArtifactRef, opts?: MapOptions<unknown, unknown>): Promise<Sweep> {
    return runMap(this.core, target, items, opts);
  }

  historyBudget(): HistoryBudget {
    return this.core.guard.budget();
  }

  continueAsNew(nextParams: unknown): Promise<never> {
    return continueRun(this.core, nextParams);
  }

  approval(gate: string, opts?: ApprovalOptions): Promise<Decision> {
    return runApproval(this.core, gate, opts);
  }

  sleep(duration: Duration): Promise<void> {
    return runSleep(this.core, duration);
  }

  waitFor(event: EventDef, opts?: WaitForOptions): Promise<never> {
    return runWaitFor(this.core, event, opts) as Promise<never>;
  }

  now(): number {
    return now();
  }

  summary(text: string): void {
    this.core.tracker.state.summary = text;
    this.core.tracker.refresh();
  }

  message(name: string): unknown {
    return this.core.control.message(name);
  }

  onMessage(name: string, fn: (value: unknown) => unknown): void {
    this.core.control.onMessage(name, fn);
  }
}
