import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { QUERY_PROGRESS } from '../definition/internal/protocol';
import { SWEEP_QUERY, type SweepProgress } from '../definition/internal/map';
import type { RunState, StepState } from '../observe/run-state';

export type TemporalStatus = 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'TERMINATED' | 'CONTINUED_AS_NEW' | 'TIMED_OUT' | 'UNKNOWN' | 'PAUSED' | 'UNSPECIFIED';

export interface RunStatusInfo {
  id: string;
  runId: string;
  pipeline: string;
  /** Temporal's execution status. */
  temporal: TemporalStatus;
  /** Kaon's status search attribute (running, waiting, succeeded, failed, cancelled). */
  kaon: string | undefined;
  startTime: Date;
  closeTime: Date | undefined;
}

/** A run failed; `message` is the root cause's, `cause` keeps Temporal's full failure chain. */
export class RunFailedError extends Error {
  override readonly name = 'RunFailedError';
  constructor(readonly runId: string, message: string, options: { cause: unknown }) {
    super(message, options);
  }
}

function rootMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

function decode(payloads: { payloads?: unknown[] | null } | null | undefined): unknown {
  const p = payloads?.payloads?.[0];
  if (!p) return undefined;
  try {
    return defaultPayloadConverter.fromPayload(p as never);
  } catch {
    return undefined;
  }
}

// Temporal's PendingActivityState enum values.
const PENDING_SCHEDULED = 1;

/** A handle on one run: status, live progress, result, cancel. */
export class RunHandle<R = unknown> {
  constructor(
    readonly client: Client,
    readonly handle: WorkflowHandle,
    /** True when start() found an existing run for the run key instead of creating one. */
    readonly existing = false,
    private readonly resumer?: (id: string, opts: { from?: string; cache?: 'on' | 'off' }) => Promise<RunHandle>,
  ) {}

  get id(): string {
    return this.handle.workflowId;
  }

  async status(): Promise<RunStatusInfo> {
    const d = await this.handle.describe();
    const sa = d.searchAttributes as Record<string, unknown[] | undefined>;
    return {
      id: d.workflowId,
      runId: d.runId,
      pipeline: d.type,
      temporal: d.status.name as TemporalStatus,
      kaon: sa.KaonStatus?.[0] as string | undefined,
      startTime: d.startTime,
      closeTime: d.closeTime,
    };
  }

  /**
   * The run state with live facts merged in from Temporal: current attempt, heartbeat progress, and
   * 'waiting for worker' for steps no worker has picked up.
   */
  async progress(): Promise<RunState> {
    const [state, d] = await Promise.all([this.handle.query<RunState>(QUERY_PROGRESS), this.handle.describe()]);
    const byKey = new Map<string, StepState>(state.steps.map((s) => [s.key, s]));
    for (const pa of d.raw.pendingActivities ?? []) {
      const s = pa.activityId ? byKey.get(pa.activityId) : undefined;
      if (!s || s.status !== 'running') continue;
      s.attempts = pa.attempt ?? s.attempts;
      if (pa.state === PENDING_SCHEDULED && (pa.attempt ?? 1) <= 1) {
        s.status = 'waiting';
        s.note = 'waiting for worker';
      }
      const hb = decode(pa.heartbeatDetails) as { fraction?: number; message?: string } | undefined;
      if (hb && typeof hb === 'object') s.progress = { ...(hb.fraction !== undefined ? { fraction: hb.fraction } : {}), ...(hb.message ? { message: hb.message } : {}) };
    }
    await Promise.all(state.steps.filter((s) => s.sweep && s.status === 'running').map((s) => this.liveSweep(s)));
    return state;
  }

  /** A running sweep's counts, live: its coordinator's (finished shards) plus each running shard's own. */
  private async liveSweep(s: StepState): Promise<void> {
    const coordinator = `${this.id}/${s.key}`;
    try {
      const c = await this.client.workflow.getHandle(coordinator).query<SweepProgress>(SWEEP_QUERY);
      const shards = await Promise.all(
        (c.runningShards ?? []).slice(0, 20).map((n) => this.client.workflow.getHandle(`${coordinator}/shard-${n}`).query<SweepProgress>(SWEEP_QUERY).catch(() => undefined)),
      );
      const live = { total: c.total, running: 0, succeeded: c.succeeded, failed: c.failed, cached: c.cached, notRun: c.notRun, rate: 0 };
      for (const sh of shards) {
        if (!sh) continue;
        live.running += sh.running;
        live.succeeded += sh.succeeded;
        live.failed += sh.failed;
        live.cached += sh.cached;
      }
      live.rate = ((live.succeeded + live.failed) * 1000) / Math.max(1, Date.now() - c.startedAt);
      s.sweep = live;
    } catch {
      // Not started yet, or just finished: the run state's own counts stand.
    }
  }

  async result(): Promise<R> {
    try {
      return (await this.handle.result()) as R;
    } catch (err) {
      if (err instanceof WorkflowFailedError) throw new RunFailedError(this.id, rootMessage(err), { cause: err });
      throw err;
    }
  }

  async cancel(): Promise<void> {
    await this.handle.cancel();
  }

  /** Resume this run: see KaonClient.resume. */
  async resume(opts: { from?: string; cache?: 'on' | 'off' } = {}): Promise<RunHandle> {
    if (!this.resumer) throw new Error('this handle was not created by a KaonClient; use kaon.resume(id)');
    return this.resumer(this.id, opts);
  }
}
