import { boundedId } from '../definition/internal/ids';
import { AsyncLocalStorage, workflowInfo } from '@temporalio/workflow';
import type { Priority } from '@temporalio/common';
import type { z } from 'zod';
import { fairnessKeyFor, type EventMessage, type StepCall } from '../definition/internal/protocol';
import type { LoopSummary } from '../observe/run-state';
import type { RunControl } from './control';
import { HistoryGuard } from './history-guard';
import type { RunStateTracker } from './run-state-tracker';

/** How a run was started: passed by the client as the workflow's second argument. */
export interface RunOptions {
  cache: 'on' | 'off';
  resumeFrom?: StepCall['resumeFrom'];
  /** Temporal priority key (1 = first … 5); default the pipeline's, else Temporal's default (3). */
  priority?: number;
  /** Fairness key shared by every step and child of this run; default the root run's id. */
  fairnessKey?: string;
  /** Set by k.continueAsNew: what the earlier executions of this run did. */
  loop?: LoopSummary;
  /** Set by k.continueAsNew: the run's event subscriptions and the events delivered but not yet waited for. */
  events?: { subscribed?: string[]; inbox?: Record<string, EventMessage[]> };
}

export interface RunLimits {
  /** Stop scheduling steps past this many history events (at most HISTORY_LIMITS.events). */
  historyEvents: number;
}

interface Scope {
  suffix: string;
  branch?: string;
  /** The k.foreach this scope belongs to (RunState.foreach index). */
  foreach?: number;
}

/**
 * What every orchestration primitive of one execution shares: the run state, how the run was started, the
 * history guard, and the key scope that turns `train` into `train[US]#2`.
 */
export class RunCore {
  private readonly scopes = new AsyncLocalStorage<Scope>();
  private readonly keyUses = new Map<string, number>();
  readonly guard: HistoryGuard;
  readonly priority: Priority;

  constructor(
    readonly tracker: RunStateTracker,
    readonly run: RunOptions,
    limits: RunLimits,
    readonly pipeline: { name: string; params: z.ZodType },
    readonly control: RunControl,
  ) {
    if (run.loop) tracker.state.loop = run.loop;
    tracker.scopeForeach = () => this.scopes.getStore()?.foreach;
    if (run.events) control.restore(run.events);
    this.guard = new HistoryGuard(limits.historyEvents);
    this.priority = {
      fairnessKey: run.fairnessKey ?? fairnessKeyFor(workflowInfo().root?.workflowId ?? workflowInfo().workflowId),
      ...(run.priority !== undefined ? { priorityKey: run.priority } : {}),
    };
  }

  /** Resolves when the run may start new work: at once (no promise) unless it is paused. */
  whenRunning(): Promise<void> | undefined {
    return this.control.whenRunning();
  }

  /** A unique key in the current scope. A repeated call (a retraining loop) gets `#2`, `#3`. */
  key(base: string, uses: Map<string, number> = this.keyUses): string {
    const full = `${base}${this.scopes.getStore()?.suffix ?? ''}`;
    const n = (uses.get(full) ?? 0) + 1;
    uses.set(full, n);
    // The key is the activity id: a long foreach label or deep nesting is shortened (readable start + hash).
    return boundedId(n === 1 ? full : `${full}#${n}`);
  }

  private readonly gateUses = new Map<string, number>();

  /** Gate names have their own space: a gate `publish` and a step keyed `publish` do not collide. */
  gateKey(base: string): string {
    return this.key(base, this.gateUses);
  }

  get branch(): string | undefined {
    return this.scopes.getStore()?.branch;
  }

  /** Run fn with `[label]` appended to the keys of everything it calls (inside foreach `foreach`, when given). */
  withLabel<R>(label: string, fn: () => Promise<R>, foreach?: number): Promise<R> {
    const outer = this.scopes.getStore();
    const group = foreach ?? outer?.foreach;
    return this.scopes.run({ suffix: `${outer?.suffix ?? ''}[${label}]`, ...(outer?.branch ? { branch: outer.branch } : {}), ...(group !== undefined ? { foreach: group } : {}) }, fn);
  }

  /** The k.foreach the current scope runs in. */
  get foreach(): number | undefined {
    return this.scopes.getStore()?.foreach;
  }

  /** Run fn as the named parallel branch. */
  inBranch<R>(branch: string, fn: () => Promise<R>): Promise<R> {
    const outer = this.scopes.getStore();
    return this.scopes.run({ suffix: outer?.suffix ?? '', branch, ...(outer?.foreach !== undefined ? { foreach: outer.foreach } : {}) }, fn);
  }
}
