import type { SearchAttributeUpdatePair } from '@temporalio/common';
import { setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import { SAKey } from '../definition/internal/protocol';
import { renderMarkdown, type RunState, type RunStatus, type StepState } from '../observe/run-state';

/** Workflow time. Deterministic: the sandbox pins Date to the current workflow task's time. */
export function now(): number {
  // eslint-disable-next-line no-restricted-properties -- deterministic inside the Temporal sandbox
  return Date.now();
}

/** Keeps the run state, mirrors it to the Web UI details, and upserts search attributes only on change. */
export class RunStateTracker {
  readonly state: RunState;
  private lastStatus: RunStatus | undefined;
  private lastStep: string | undefined;

  constructor(pipeline: string) {
    this.state = { pipeline, status: 'running', startedAt: now(), steps: [], failedItems: [] };
    this.publish();
  }

  private readonly byKey = new Map<string, StepState>();

  get(key: string): StepState | undefined {
    return this.byKey.get(key);
  }

  /** The k.foreach of the calling scope (set by RunCore): steps added inside one are tagged with it. */
  scopeForeach: () => number | undefined = () => undefined;

  add(step: StepState): StepState {
    const foreach = this.scopeForeach();
    if (foreach !== undefined && step.foreach === undefined) step.foreach = foreach;
    this.state.steps.push(step);
    this.byKey.set(step.key, step);
    this.publish(step.step);
    return step;
  }

  /** Record a k.foreach of `total` items; returns its id for the steps inside it. */
  addForeach(total: number, parent: number | undefined): number {
    const list = (this.state.foreach ??= []);
    const id = list.length;
    list.push({ id, total, ...(parent !== undefined ? { parent } : {}) });
    return id;
  }

  update(step: StepState, patch: Partial<StepState>): void {
    Object.assign(step, patch);
    this.publish();
  }

  finish(status: RunStatus, error?: string): void {
    this.state.status = status;
    this.state.endedAt = now();
    if (error !== undefined) this.state.error = error;
    this.publish();
  }

  setStatus(status: RunStatus): void {
    this.state.status = status;
    this.publish();
  }

  /** While the run is active: paused over waiting (a gate) over running. Republishes details and search attributes. */
  refresh(): void {
    const s = this.state;
    if (s.status === 'succeeded' || s.status === 'failed' || s.status === 'cancelled') return;
    s.status = s.paused ? 'paused' : s.gates?.some((g) => g.status === 'waiting') ? 'waiting' : 'running';
    this.publish();
  }

  private detailsQueued = false;

  private publish(currentStep?: string): void {
    // Render the Web UI details once per workflow activation, not once per change: a render walks every step.
    if (!this.detailsQueued) {
      this.detailsQueued = true;
      void Promise.resolve().then(() => {
        this.detailsQueued = false;
        setCurrentDetails(renderMarkdown(this.state, now()));
      });
    }
    const updates: SearchAttributeUpdatePair[] = [];
    if (this.state.status !== this.lastStatus) {
      this.lastStatus = this.state.status;
      updates.push({ key: SAKey.status, value: this.state.status });
    }
    if (currentStep !== undefined && currentStep !== this.lastStep) {
      this.lastStep = currentStep;
      updates.push({ key: SAKey.step, value: currentStep });
    }
    // One history event per change, not per step: a 200-step loop of one step upserts once.
    if (updates.length > 0) upsertSearchAttributes(updates);
  }
}
