import { WorkflowFailedError, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { z } from 'zod';
import { decodeRaw } from '../data/codec';
import { assertJsonValue } from '../definition/json-value';
import { ErrorCode, KaonError, parseOrThrow } from '../definition/errors';
import { defaultPayloadConverter } from '@temporalio/common';
import { QUERY_PROGRESS, UPDATE_DECIDE, UPDATE_MESSAGE, UPDATE_PAUSE, type DecideRequest, type PauseRequest } from '../definition/internal/protocol';
import { SWEEP_QUERY, type SweepProgress } from '../definition/internal/map';
import type { GateState, RunState, StepState } from '../observe/run-state';

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

export interface DecisionOptions {
  /** Who decides (recorded in the run state and the history). Default $USER. */
  by?: string;
  comment?: string;
}

/** A handle on one run: status, live progress, result, cancel, and steering (gates, pause, messages). */
export class RunHandle<R = unknown, M extends Record<string, z.ZodType> = Record<string, z.ZodType>> {
  constructor(
    readonly client: Client,
    readonly handle: WorkflowHandle,
    /** True when start() found an existing run for the run key instead of creating one. */
    readonly existing = false,
    private readonly resumer?: (id: string, opts: { from?: string; cache?: 'on' | 'off' }) => Promise<RunHandle>,
    /** The pipeline's message schemas, when the handle came from start(pipeline): messages are checked here first. */
    private readonly messages?: M,
  ) {}

  /** Approve a waiting gate (`publish`, or `publish#2` in a loop). Refused with the reason if it is not waiting. */
  approve(gate: string, opts: DecisionOptions = {}): Promise<GateState> {
    return this.decide({ gate, decision: 'approve', ...this.who(opts), ...(opts.comment ? { comment: opts.comment } : {}) });
  }

  /** Reject a waiting gate. */
  reject(gate: string, opts: DecisionOptions = {}): Promise<GateState> {
    return this.decide({ gate, decision: 'reject', ...this.who(opts), ...(opts.comment ? { comment: opts.comment } : {}) });
  }

  /** Pause: no new step starts until unpause(); running steps finish. Status and progress keep working. */
  pause(opts: { by?: string; note?: string } = {}): Promise<RunState['paused']> {
    return this.update(UPDATE_PAUSE, { paused: true, ...this.who(opts), ...(opts.note ? { note: opts.note } : {}) } satisfies PauseRequest, 'pause') as Promise<RunState['paused']>;
  }

  async unpause(): Promise<void> {
    await this.update(UPDATE_PAUSE, { paused: false } satisfies PauseRequest, 'unpause');
  }

  /** Send a typed message; resolves to what the pipeline's onMessage handler returned (else the stored value). */
  async send<K extends keyof M & string>(name: K, value: z.input<M[K]>): Promise<unknown> {
    assertJsonValue(value, `message "${name}"`);
    const schema = this.messages?.[name];
    if (this.messages && !schema) {
      throw new KaonError({ code: ErrorCode.invalidParams, what: `pipeline has no message "${name}" (it declares ${Object.keys(this.messages).join(', ') || 'none'})`, fix: 'send one of the declared messages' });
    }
    if (schema) parseOrThrow(schema, value, { code: ErrorCode.invalidParams, subject: `message "${name}"`, fix: 'send a value that matches the message schema' });
    return this.update(UPDATE_MESSAGE, { name, value }, `message "${name}"`);
  }

  /** Pause one step's retries (Temporal activity pause): it stops retrying until unpauseStep, so its data can be fixed. */
  async pauseStep(key: string, reason?: string): Promise<void> {
    const { namespace } = this.client.options;
    await this.client.workflowService.pauseActivity({ namespace, execution: { workflowId: this.id }, id: key, identity: this.client.options.identity ?? 'kaon', reason: reason ?? '', requestId: '' });
  }

  async unpauseStep(key: string): Promise<void> {
    const { namespace } = this.client.options;
    await this.client.workflowService.unpauseActivity({ namespace, execution: { workflowId: this.id }, id: key, identity: this.client.options.identity ?? 'kaon' });
  }

  private who<T extends { by?: string }>(opts: T): { by?: string } {
    const by = opts.by ?? process.env.USER ?? process.env.USERNAME;
    return by ? { by } : {};
  }

  private decide(req: DecideRequest): Promise<GateState> {
    return this.update(UPDATE_DECIDE, req, `${req.decision} gate "${req.gate}"`) as Promise<GateState>;
  }

  /** Run a Kaon update; a refusal becomes a KaonError with the workflow's reason, a closed run a clear error. */
  private async update(name: string, arg: unknown, what: string): Promise<unknown> {
    try {
      return await this.handle.executeUpdate(name, { args: [arg] });
    } catch (err) {
      if (err instanceof KaonError) throw err; // e.g. refused before the call: no key in an encrypted deployment
      if (err instanceof WorkflowUpdateFailedError) {
        const reason = err.cause instanceof Error ? err.cause.message : err.message;
        throw new KaonError({ code: ErrorCode.refused, what: `${what} was refused by run ${this.id}: ${reason}`, fix: 'see the reason; `kaon status <run>` shows its gates, pause and messages', cause: err });
      }
      if (err instanceof WorkflowNotFoundError || /already completed|not found/i.test(err instanceof Error ? err.message : '')) {
        throw new KaonError({ code: ErrorCode.refused, what: `${what}: run ${this.id} is not running (${err instanceof Error ? err.message : String(err)})`, fix: 'steer a running run (`kaon list --status running`)', cause: err });
      }
      throw err;
    }
  }

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
    // Heartbeat details are raw payloads: ciphertext when a key is configured.
    await decodeRaw(this.client.options.loadedDataConverter, d.raw.pendingActivities ?? []);
    for (const pa of d.raw.pendingActivities ?? []) {
      const s = pa.activityId ? byKey.get(pa.activityId) : undefined;
      if (!s || s.status !== 'running') continue;
      s.attempts = pa.attempt ?? s.attempts;
      if (pa.state === PENDING_SCHEDULED && (pa.attempt ?? 1) <= 1) {
        s.status = 'waiting';
        s.note = 'waiting for worker';
      }
      const hb = decode(pa.heartbeatDetails) as { fraction?: number; message?: string; url?: string } | undefined;
      if (hb && typeof hb === 'object') {
        s.progress = { ...(hb.fraction !== undefined ? { fraction: hb.fraction } : {}), ...(hb.message ? { message: hb.message } : {}), ...(typeof hb.url === 'string' ? { url: hb.url } : {}) };
      }
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
