// Schedules are Temporal Schedules: Kaon fills in the pipeline's start action (params validated first, the run's
// search attributes and summary), and maps Kaon's names onto Temporal's. No scheduler of Kaon's own.
import { ScheduleNotFoundError, type Client, type ScheduleDescription, type ScheduleOverlapPolicy } from '@temporalio/client';
import { toMs, type Duration } from '../definition/duration';
import { ErrorCode, KaonError, parseOrThrow } from '../definition/errors';
import { SAKey } from '../definition/internal/protocol';
import { MAX_SCHEDULE_ID } from '../definition/internal/ids';
import { missingSearchAttributes } from './search-attributes';
import { isPipeline, type AnyPipeline, type PipelineParams } from '../definition/pipeline';
import { fillScheduled } from '../definition/scheduled';
import type { EncryptionGuard } from './encryption-mark';

export type OverlapPolicy = 'skip' | 'buffer-one' | 'buffer-all' | 'cancel-other' | 'terminate-other' | 'allow-all';

const OVERLAP: Record<OverlapPolicy, ScheduleOverlapPolicy> = {
  skip: 'SKIP',
  'buffer-one': 'BUFFER_ONE',
  'buffer-all': 'BUFFER_ALL',
  'cancel-other': 'CANCEL_OTHER',
  'terminate-other': 'TERMINATE_OTHER',
  'allow-all': 'ALLOW_ALL',
};

export interface ScheduleCreate<P extends AnyPipeline | string = AnyPipeline | string> {
  id: string;
  pipeline: P;
  /** The run's params; fields declared with scheduledDate()/scheduledTime() are filled with each run's nominal time. */
  params?: P extends AnyPipeline ? Partial<PipelineParams<P>> : unknown;
  /** Cron expressions ('0 3 * * *'), or… */
  cron?: string | string[];
  /** …an interval ('1 day', '15m'). */
  every?: Duration;
  /** What happens when a run is due while the previous one still runs. Default 'skip' (Temporal's default). */
  overlap?: OverlapPolicy;
  /** How far back missed runs are caught up after an outage. Default 1 minute (Temporal's default). */
  catchupWindow?: Duration;
  jitter?: Duration;
  /** IANA time zone of the cron expressions. Default UTC. */
  timezone?: string;
  paused?: boolean;
  note?: string;
  /** 'off' bypasses every step's cache in the scheduled runs. */
  cache?: 'on' | 'off';
}

export interface ScheduleInfo {
  id: string;
  pipeline: string;
  paused: boolean;
  note: string | undefined;
  /** The next nominal times. */
  next: Date[];
  /** The latest runs: their nominal time and run id. */
  recent: { scheduledAt: Date; startedAt: Date; runId: string }[];
  running: string[];
  /** Runs started so far, and runs skipped by the overlap policy. */
  actions: number;
  skipped: number;
  overlap: OverlapPolicy;
  summary: string | undefined;
}

// Its runs are `<pipeline>--<id>-<timestamp>`: 130 characters keep them within Temporal's 255 (ids.ts).
const SCHEDULE_ID = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.:=-]{0,${MAX_SCHEDULE_ID - 1}}$`);

function overlapName(p: ScheduleOverlapPolicy | undefined): OverlapPolicy {
  const hit = (Object.entries(OVERLAP) as [OverlapPolicy, ScheduleOverlapPolicy][]).find(([, v]) => v === p);
  return hit?.[0] ?? 'skip';
}

/** kaon.schedules: create, list, describe, pause, unpause, trigger, backfill, update and delete schedules. */
export class KaonSchedules {
  constructor(
    private readonly temporal: Client,
    private readonly taskQueue: string,
    private readonly encryption?: EncryptionGuard,
  ) {}

  private validate(pipeline: AnyPipeline | string, params: unknown): void {
    if (!isPipeline(pipeline)) return;
    // Scheduled fields are filled per run; check the rest now, so a bad schedule is refused before it exists.
    parseOrThrow(pipeline.kaon.params, fillScheduled(pipeline.kaon.params, params ?? {}, new Date()), {
      code: ErrorCode.invalidParams,
      subject: `params of the schedule's pipeline "${pipeline.kaon.name}"`,
      fix: 'correct the params to match the pipeline schema (fields declared with scheduledDate()/scheduledTime() are filled per run)',
    });
  }

  private options(o: ScheduleCreate) {
    if (!SCHEDULE_ID.test(o.id)) {
      throw new KaonError({ code: ErrorCode.invalidParams, what: `schedule id ${JSON.stringify(o.id)} is not valid`, fix: `use up to ${MAX_SCHEDULE_ID} letters, digits and '_.:=-', starting with a letter or digit (e.g. 'retrain-daily')` });
    }
    if ((o.cron === undefined) === (o.every === undefined)) {
      throw new KaonError({ code: ErrorCode.invalidParams, what: `schedule "${o.id}" needs exactly one of cron and every`, fix: "pass cron: '0 3 * * *' or every: '1 day'" });
    }
    if (o.overlap !== undefined && !(o.overlap in OVERLAP)) {
      throw new KaonError({ code: ErrorCode.invalidParams, what: `overlap ${JSON.stringify(o.overlap)} is not a policy`, fix: `use one of ${Object.keys(OVERLAP).join(', ')}` });
    }
    const name = typeof o.pipeline === 'string' ? o.pipeline : o.pipeline.kaon.name;
    this.validate(o.pipeline, o.params);
    const description = isPipeline(o.pipeline) ? o.pipeline.kaon.description : undefined;
    const summary = `${name} ${o.cron !== undefined ? `on cron ${[o.cron].flat().join(', ')}` : `every ${String(o.every)}`}${description ? ` — ${description}` : ''}`;
    return {
      scheduleId: o.id,
      spec: {
        ...(o.cron !== undefined ? { cronExpressions: [o.cron].flat() } : { intervals: [{ every: toMs(o.every!, `schedule "${o.id}", every`) }] }),
        ...(o.jitter !== undefined ? { jitter: toMs(o.jitter, `schedule "${o.id}", jitter`) } : {}),
        ...(o.timezone ? { timezone: o.timezone } : {}),
      },
      action: {
        type: 'startWorkflow' as const,
        workflowType: name,
        workflowId: `${name}--${o.id}`,
        taskQueue: this.taskQueue,
        args: [o.params ?? {}, { cache: o.cache ?? 'on' }],
        typedSearchAttributes: [
          { key: SAKey.pipeline, value: name },
          { key: SAKey.status, value: 'running' },
        ],
        staticSummary: `${name} (schedule ${o.id})`,
      },
      policies: {
        overlap: OVERLAP[o.overlap ?? 'skip'],
        ...(o.catchupWindow !== undefined ? { catchupWindow: toMs(o.catchupWindow, `schedule "${o.id}", catchupWindow`) } : {}),
      },
      state: { paused: o.paused ?? false, note: o.note ?? summary },
      memo: { kaon: { pipeline: name, summary } },
      typedSearchAttributes: [{ key: SAKey.pipeline, value: name }],
    };
  }

  async create<P extends AnyPipeline | string>(o: ScheduleCreate<P>): Promise<ScheduleInfo> {
    try {
      await this.temporal.schedule.create(this.options(o as ScheduleCreate));
    } catch (err) {
      throw missingSearchAttributes(err, this.temporal.options.namespace) ?? err;
    }
    return this.describe(o.id);
  }

  /** Replace a schedule's definition (same fields as create). */
  async update<P extends AnyPipeline | string>(o: ScheduleCreate<P>): Promise<ScheduleInfo> {
    const opts = this.options(o as ScheduleCreate);
    await this.encryption?.check(`update schedule ${o.id}`, opts.action.taskQueue);
    await this.handle(o.id).update(() => ({ spec: opts.spec, action: opts.action, policies: opts.policies, state: { paused: opts.state.paused, note: opts.state.note } }));
    return this.describe(o.id);
  }

  private handle(id: string) {
    return this.temporal.schedule.getHandle(id);
  }

  private async call<T>(id: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) throw new KaonError({ code: ErrorCode.notFound, what: `no schedule "${id}"`, fix: 'check the id with `kaon schedule list`', cause: err });
      throw err;
    }
  }

  describe(id: string): Promise<ScheduleInfo> {
    return this.call(id, async () => toInfo(id, await this.handle(id).describe()));
  }

  async list(): Promise<ScheduleInfo[]> {
    const out: ScheduleInfo[] = [];
    for await (const s of this.temporal.schedule.list()) out.push(await this.describe(s.scheduleId).catch(() => undefined as never));
    return out.filter(Boolean);
  }

  pause(id: string, note?: string): Promise<void> {
    return this.call(id, () => this.handle(id).pause(note ?? 'paused with kaon'));
  }

  unpause(id: string, note?: string): Promise<void> {
    return this.call(id, () => this.handle(id).unpause(note ?? 'unpaused with kaon'));
  }

  /** Start a run now (its nominal time is now). */
  trigger(id: string, overlap?: OverlapPolicy): Promise<void> {
    return this.call(id, () => this.handle(id).trigger(overlap ? OVERLAP[overlap] : undefined));
  }

  /** Runs for every nominal time in [from, to), each with its own date. */
  backfill(id: string, range: { from: Date | string; to: Date | string; overlap?: OverlapPolicy }): Promise<void> {
    const start = new Date(range.from);
    const end = new Date(range.to);
    if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || end <= start) {
      throw new KaonError({ code: ErrorCode.invalidParams, what: `backfill range ${String(range.from)} → ${String(range.to)} is not valid`, fix: "pass from < to as dates, e.g. { from: '2026-11-01', to: '2026-12-01' }" });
    }
    return this.call(id, () => this.handle(id).backfill({ start, end, ...(range.overlap ? { overlap: OVERLAP[range.overlap] } : {}) }));
  }

  delete(id: string): Promise<void> {
    return this.call(id, () => this.handle(id).delete());
  }
}

function toInfo(id: string, d: ScheduleDescription): ScheduleInfo {
  const action = d.action as { workflowType?: string };
  return {
    id,
    pipeline: action.workflowType ?? '?',
    paused: d.state.paused,
    note: d.state.note,
    next: d.info.nextActionTimes,
    recent: d.info.recentActions.map((a) => ({ scheduledAt: a.scheduledAt, startedAt: a.takenAt, runId: a.action.workflow.workflowId })),
    running: d.info.runningActions.map((a) => a.workflow.workflowId),
    actions: d.info.numActionsTaken,
    skipped: d.info.numActionsSkippedOverlap,
    overlap: overlapName(d.policies.overlap),
    summary: ((d.memo as Record<string, unknown> | undefined)?.kaon as { summary?: string } | undefined)?.summary,
  };
}
