import { ApplicationFailure, condition, workflowInfo } from '@temporalio/workflow';
import { ErrorCode } from '../definition/errors';

/**
 * The hard limits Kaon guards, per execution. Temporal *suggests* continue-as-new at 4,096 events or 4 MiB;
 * that is advice, and a run never fails because of it. It warns at 10,240 events and 10 MiB and terminates a
 * run at 51,200 events or 50 MiB; it refuses a workflow task that leaves more than 2,000 activities, child
 * workflows or signals pending (and then retries it forever).
 */
export const HISTORY_LIMITS = {
  /** Stop scheduling new work past this many events, so every execution stays under Temporal's 10,240 warning. */
  events: 9000,
  /** Stop scheduling past this many bytes of history (Temporal terminates at 50 MiB). */
  bytes: 40 * 1024 * 1024,
  /** Calls beyond this many pending activities or child workflows wait for a slot instead of failing. */
  pending: 1900,
} as const;

/** Kept for callers of the old name. */
export const MAX_HISTORY_EVENTS = HISTORY_LIMITS.events;

export interface HistoryBudget {
  events: number;
  eventLimit: number;
  bytes: number;
  byteLimit: number;
  /** The larger of events/eventLimit and bytes/byteLimit: 1 means this execution can schedule nothing more. */
  used: number;
  /** Temporal's own hint (4,096 events or 4 MiB). Kaon ignores it; a loop may use it to continue-as-new early. */
  suggested: boolean;
}

const SPLIT_FIX =
  'for a sweep over many items use k.map(step, items) (it shards the items over child workflows, each with its own history); for a loop that runs for weeks call k.continueAsNew(nextParams) when k.historyBudget().used passes a threshold; or run a part as a child pipeline (k.child)';

/** Guards one execution's history: event and byte bounds, and a FIFO of slots for pending activities and children. */
export class HistoryGuard {
  private pending = 0;

  constructor(readonly eventLimit: number = HISTORY_LIMITS.events, readonly byteLimit: number = HISTORY_LIMITS.bytes) {}

  budget(): HistoryBudget {
    const info = workflowInfo();
    const used = Math.max(info.historyLength / this.eventLimit, info.historySize / this.byteLimit);
    return { events: info.historyLength, eventLimit: this.eventLimit, bytes: info.historySize, byteLimit: this.byteLimit, used, suggested: info.continueAsNewSuggested };
  }

  /** Throw a clear, non-retryable error if scheduling `what` would take this execution past its bounds. */
  check(what: string): void {
    const info = workflowInfo();
    const overEvents = info.historyLength > this.eventLimit;
    const overBytes = info.historySize > this.byteLimit;
    if (!overEvents && !overBytes) return;
    const size = overEvents ? `${info.historyLength} history events (Kaon's bound: ${this.eventLimit})` : `${(info.historySize / 1048576).toFixed(1)} MiB of history (Kaon's bound: ${this.byteLimit / 1048576} MiB)`;
    throw ApplicationFailure.create({
      type: ErrorCode.historyLimit,
      nonRetryable: true,
      message: `run ${info.workflowId} has ${size}, so ${what} was not scheduled. To fix: ${SPLIT_FIX}. Succeeded steps are kept for 'kaon resume'.`,
    });
  }

  /**
   * A pending slot, held until the returned release is called: at once (no await, so commands keep the order
   * they had before slots existed, and recorded histories replay) or, when all are taken, after waiting (cancellable).
   */
  slot(): (() => void) | Promise<() => void> {
    if (this.pending < HISTORY_LIMITS.pending) return this.take();
    return condition(() => this.pending < HISTORY_LIMITS.pending).then(() => this.take());
  }

  private take(): () => void {
    this.pending++;
    let released = false;
    return () => {
      if (!released) {
        released = true;
        this.pending--;
      }
    };
  }
}
