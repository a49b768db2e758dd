import { randomUUID } from 'node:crypto';
import { createHash } from 'node:crypto';
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type ConnectionOptions, type WorkflowClientInterceptor } from '@temporalio/client';
import { tracingConfigured } from '../observe/otel-env';
import type { z } from 'zod';
import type { DataConverter } from '@temporalio/common';
import { canonicalJson } from '../data/canonical';
import { converterEncrypts, decodePayload, kaonDataConverter } from '../data/codec';
import { EncryptionGuard, guardInterceptors } from './encryption-mark';
import { isEventDef, type EventDef } from '../definition/events';
import { assertRunStatus } from './run-status';
import { ErrorCode, KaonError, parseOrThrow } from '../definition/errors';
import { EVENT_SIGNAL, EVENTS_WORKFLOW, eventsWorkflowId, fairnessKeyFor, isPriority, QUERY_JOINS, SAKey, type EventMessage, type EventsView, type StepCall } from '../definition/internal/protocol';
import { MAX_RUN_KEY } from '../definition/internal/ids';
import { isPipeline, type AnyPipeline, type PipelineMessages, type PipelineParams, type PipelineResult } from '../definition/pipeline';
import { connectionConfig, DEFAULT_TASK_QUEUE } from './connection';
import { checkNamespace, connectFast } from './connect-errors';
import { RunHandle, type RunStatusInfo, type TemporalStatus } from './run-handle';
import { KaonSchedules } from './schedules';
import { KaonDeployments } from './deployments';
import { checkUnknownParams } from '../definition/params';
import { didYouMean } from '../definition/did-you-mean';
import { missingSearchAttributes } from './search-attributes';
import { assertJsonValue } from '../definition/json-value';

/** Params above this are refused at once: workflow history is no place for data. */
const MAX_PARAMS_BYTES = 1024 * 1024;
import { checkRecordedInput, readStepCall, type ManifestReader, type StepCallRecord } from './step-calls';
import type { StepDef, StepParsedInput } from '../definition/step';

export interface ConnectOptions {
  /** An existing Temporal connection; default: from envconfig (TEMPORAL_ADDRESS, …). */
  connection?: Connection;
  namespace?: string;
  /** The pipelines' task queue. Default $KAON_TASK_QUEUE or 'kaon'. */
  taskQueue?: string;
  /**
   * Default: kaonDataConverter(), AES-GCM encrypted payloads when $KAON_ENCRYPTION_KEY_FILE names a key file.
   * Pass kaonDataConverter({ keyFile }) to choose the keys here.
   */
  dataConverter?: DataConverter;
  /**
   * The environment read for KAON_ENCRYPTION (default process.env): `required` refuses every write without a key,
   * whatever the namespace's mark says.
   */
  env?: NodeJS.ProcessEnv;
  /** Who is connecting, for refusals ("this client", "kaon board"…). */
  who?: string;
}

export interface StartOptions {
  /** Idempotency key: a second start with the same key returns the existing run. */
  runKey?: string;
  /** 'off' bypasses every step's cache for this run. */
  cache?: 'on' | 'off';
  taskQueue?: string;
  /** Temporal priority of this run's workflow, steps and children: 1 (first) … 5. Default: the pipeline's, else 3. */
  priority?: number;
}

export interface ResumeOptions {
  /** Recompute this step key (`train[US]`) or every key of this step name (`train`), and what its change affects. */
  from?: string;
  cache?: 'on' | 'off';
  taskQueue?: string;
}

export interface ListOptions {
  pipeline?: string;
  /** Kaon status: running, waiting, succeeded, failed, cancelled. */
  status?: string;
  limit?: number;
}

// The run id is `<pipeline>--<run key>`: 150 characters keep it within Temporal's 255 (ids.ts).
const RUN_KEY = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.:=-]{0,${MAX_RUN_KEY - 1}}$`);

/**
 * `from` must name a step the old run has: a step key (`train[US]`, `train#2`), the key without its labels
 * (`train`), or a step or child pipeline name. Otherwise resume would silently recompute nothing.
 */
function checkResumeFrom(runId: string, from: string, events: readonly { activityTaskScheduledEventAttributes?: { activityId?: string | null; activityType?: { name?: string | null } | null } | null; startChildWorkflowExecutionInitiatedEventAttributes?: { workflowId?: string | null; workflowType?: { name?: string | null } | null } | null }[]): void {
  const keys = new Set<string>();
  const names = new Set<string>();
  for (const e of events) {
    const a = e.activityTaskScheduledEventAttributes;
    if (a?.activityId && !a.activityType?.name?.startsWith('kaon.')) {
      keys.add(a.activityId);
      if (a.activityType?.name) names.add(a.activityType.name);
    }
    const c = e.startChildWorkflowExecutionInitiatedEventAttributes;
    if (c?.workflowId?.startsWith(`${runId}/`) && !c.workflowType?.name?.startsWith('kaon.')) {
      keys.add(c.workflowId.slice(runId.length + 1));
      if (c.workflowType?.name) names.add(c.workflowType.name);
    }
  }
  const bases = [...keys].map((k) => k.replace(/[[#].*$/, ''));
  if (keys.has(from) || names.has(from) || bases.includes(from)) return;
  const list = [...keys].sort();
  throw new KaonError({
    code: ErrorCode.notFound,
    what: `run ${runId} has no step ${JSON.stringify(from)}${didYouMean(from, [...keys, ...names])}; its steps are ${list.length ? list.slice(0, 30).join(', ') + (list.length > 30 ? `, … (${list.length} in all)` : '') : 'none (it ran no step)'}`,
    fix: 'pass one of those step keys, or a step name, to --from (or leave --from out to reuse every step that succeeded)',
  });
}

function quote(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** The thin client: starts and steers runs. Depends on @temporalio/client and zod only (invariant 5). */
export class KaonClient {
  /** Temporal Schedules for pipelines: create, list, describe, pause, unpause, trigger, backfill, update, delete. */
  readonly schedules: KaonSchedules;
  /** Worker Versioning: the current build of a worker deployment. */
  readonly deployments: KaonDeployments;

  constructor(
    readonly temporal: Client,
    readonly taskQueue: string,
    private readonly ownsConnection: boolean,
    /** The deployment's encryption mark, as this client sees it (refuses writes without a key where it is set). */
    readonly encryption?: EncryptionGuard,
  ) {
    this.schedules = new KaonSchedules(temporal, taskQueue, encryption);
    this.deployments = new KaonDeployments(temporal.workflowService, temporal.options.namespace);
  }

  async start<P extends AnyPipeline>(pipeline: P, params: PipelineParams<P>, opts?: StartOptions): Promise<RunHandle<PipelineResult<P>, PipelineMessages<P>>>;
  async start(pipeline: string, params: unknown, opts?: StartOptions): Promise<RunHandle>;
  async start(pipeline: AnyPipeline | string, params: unknown, opts: StartOptions = {}): Promise<RunHandle> {
    return this.startRun(pipeline, params, opts);
  }

  /**
   * Resume a failed (or any) run: a new run of the same pipeline with the same params, linked to the old one.
   * Every step whose key and input match a succeeded step of the old run is reused, not recomputed — also
   * after the step's code was fixed, which Temporal's reset alone cannot do.
   */
  async resume(runId: string, opts: ResumeOptions = {}): Promise<RunHandle> {
    const old = this.temporal.workflow.getHandle(runId);
    const [d, history] = await Promise.all([old.describe(), old.fetchHistory()]);
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    const payload = started?.input?.payloads?.[0];
    if (!started || !payload) {
      throw new KaonError({ code: ErrorCode.notFound, what: `run ${runId} has no recorded params`, fix: 'pass the id of a Kaon run (kaon list shows them)' });
    }
    if (opts.from !== undefined) checkResumeFrom(runId, opts.from, history.events ?? []);
    const params = await decodePayload(this.temporal.options.loadedDataConverter, payload);
    return this.startRun(d.type, params, {
      taskQueue: opts.taskQueue ?? d.taskQueue,
      cache: opts.cache ?? 'on',
      resumeFrom: { workflowId: d.workflowId, runId: d.runId, recompute: opts.from ? [opts.from] : [] },
    });
  }

  private async startRun(pipeline: AnyPipeline | string, params: unknown, opts: StartOptions & { resumeFrom?: StepCall['resumeFrom'] }): Promise<RunHandle> {
    const name = typeof pipeline === 'string' ? pipeline : pipeline.kaon.name;
    let derivedKey = false;
    assertJsonValue(params, `params of pipeline "${name}"`);
    const size = Buffer.byteLength(JSON.stringify(params) ?? '');
    if (size > MAX_PARAMS_BYTES) {
      throw new KaonError({
        code: ErrorCode.invalidParams,
        what: `params of pipeline "${name}" are ${(size / 1024 / 1024).toFixed(1)} MiB of JSON, over Kaon's ${MAX_PARAMS_BYTES / 1024 / 1024} MiB limit (Temporal refuses payloads over 2 MiB, after retrying for about 40 s)`,
        fix: 'store the data as an artifact and pass its ArtifactRef in the params (for a sweep: a JSON-lines manifest, see k.map)',
      });
    }
    if (isPipeline(pipeline)) {
      // Validate before anything reaches the server: bad params never create a run.
      if (pipeline.kaon.unknownParams !== 'strip') checkUnknownParams(pipeline.kaon.params, params, `params of pipeline "${name}"`);
      const parsed = parseOrThrow(pipeline.kaon.params, params, {
        code: ErrorCode.invalidParams,
        subject: `params of pipeline "${name}"`,
        fix: 'correct the params to match the pipeline schema and start again',
      });
      if (opts.runKey === undefined && pipeline.kaon.runKey) {
        opts = { ...opts, runKey: pipeline.kaon.runKey(parsed) };
        derivedKey = true;
      }
    }
    if (opts.runKey !== undefined && !RUN_KEY.test(opts.runKey)) {
      throw new KaonError({
        code: ErrorCode.invalidParams,
        what: `run key ${JSON.stringify(opts.runKey)} is not valid`,
        fix: `use up to ${MAX_RUN_KEY} letters, digits and '_.:=-', starting with a letter or digit (e.g. '2026-11-21-us')${opts.runKey.length > MAX_RUN_KEY ? `; this one has ${opts.runKey.length} characters` : ''}`,
      });
    }
    if (opts.priority !== undefined && !isPriority(opts.priority)) {
      throw new KaonError({ code: ErrorCode.invalidParams, what: `priority ${JSON.stringify(opts.priority)} is not valid`, fix: 'pass an integer from 1 (runs first) to 5, or leave it out for the pipeline\'s default' });
    }
    const workflowId = opts.runKey ? `${name}--${opts.runKey}` : `${name}-${randomUUID().slice(0, 8)}`;
    const description = isPipeline(pipeline) ? pipeline.kaon.description : undefined;
    try {
      const handle = await this.temporal.workflow.start(name, {
        workflowId,
        taskQueue: opts.taskQueue ?? this.taskQueue,
        args: [params, { cache: opts.cache ?? 'on', ...(opts.resumeFrom ? { resumeFrom: opts.resumeFrom } : {}), ...(opts.priority !== undefined ? { priority: opts.priority } : {}) }],
        // Fairness per run: the run's workflow tasks, steps and children share one key (see RunCore).
        priority: { fairnessKey: fairnessKeyFor(workflowId), ...(opts.priority !== undefined ? { priorityKey: opts.priority } : {}) },
        // Same key while running (conflict) or after it closed (reuse): the server refuses, we return that run.
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: derivedKey ? 'ALLOW_DUPLICATE_FAILED_ONLY' : opts.runKey ? 'REJECT_DUPLICATE' : 'ALLOW_DUPLICATE',
        typedSearchAttributes: [
          { key: SAKey.pipeline, value: name },
          { key: SAKey.status, value: 'running' },
          ...(opts.runKey ? [{ key: SAKey.runKey, value: opts.runKey }] : []),
        ],
        staticSummary: `${name}${description ? ` — ${description}` : ''}`,
        staticDetails: [
          ...(opts.resumeFrom ? [`**resumed from** \`${opts.resumeFrom.workflowId}\`${opts.resumeFrom.recompute.length ? `, recomputing \`${opts.resumeFrom.recompute.join(', ')}\`` : ''}`, ''] : []),
          '**params**', '```json', JSON.stringify(params, null, 2), '```',
        ].join('\n'),
        memo: { kaon: { pipeline: name, cache: opts.cache ?? 'on', ...(opts.resumeFrom ? { resumedFrom: opts.resumeFrom.workflowId } : {}) } },
      });
      return new RunHandle(this.temporal, handle, false, this.resumer, isPipeline(pipeline) ? pipeline.kaon.messages : undefined);
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError && opts.runKey) {
        await this.refuseOtherParams(pipeline, workflowId, params, opts.runKey);
        return new RunHandle(this.temporal, this.temporal.workflow.getHandle(workflowId), true, this.resumer, isPipeline(pipeline) ? pipeline.kaon.messages : undefined);
      }
      throw missingSearchAttributes(err, this.temporal.options.namespace) ?? err;
    }
  }

  /** A run key names one run: the same key with other params is a mistake, shown with both sets of params. */
  private async refuseOtherParams(pipeline: AnyPipeline | string, workflowId: string, params: unknown, runKey: string): Promise<void> {
    const desc = await this.temporal.workflow.getHandle(workflowId).describe();
    const firstRunId = desc.raw.workflowExecutionInfo?.firstRunId || desc.runId;
    const page = await this.temporal.workflowService.getWorkflowExecutionHistory({ namespace: this.temporal.options.namespace, execution: { workflowId, runId: firstRunId }, maximumPageSize: 1 });
    const input = page.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    if (!input) return;
    const earlier: unknown = await decodePayload(this.temporal.options.loadedDataConverter, input);
    const norm = (v: unknown) => {
      if (!isPipeline(pipeline)) return canonicalJson(v);
      const r = pipeline.kaon.params.safeParse(v);
      return canonicalJson(r.success ? r.data : v);
    };
    if (norm(earlier) === norm(params)) return;
    throw new KaonError({
      code: ErrorCode.invalidParams,
      what: `run key "${runKey}" already names run ${workflowId}, started with other params: ${truncateJson(earlier)}; this start passed ${truncateJson(params)}`,
      fix: 'use another run key for other params, or leave the key out; to see the existing run: kaon status ' + workflowId,
    });
  }

  private readonly resumer = (id: string, opts: ResumeOptions): Promise<RunHandle> => this.resume(id, opts);

  /**
   * Emit an event: durable once this returns, even with no worker running (signal-with-start of Kaon's events
   * workflow). Each trigger starts at most one run per event id; the id defaults to a hash of the payload, so a
   * retried emit of the same data is the same event.
   */
  async emit<E extends EventDef>(event: E | string, payload: E extends EventDef ? z.input<E['payload']> : unknown, opts: { id?: string; taskQueue?: string } = {}): Promise<{ event: string; id: string }> {
    const name = typeof event === 'string' ? event : event.name;
    assertJsonValue(payload, `payload of event "${name}"`);
    let value: unknown = payload;
    if (isEventDef(event)) value = parseOrThrow(event.payload, payload, { code: ErrorCode.invalidParams, subject: `payload of event "${name}"`, fix: "emit a payload that matches the event's schema" });
    else if (!/^[A-Za-z][A-Za-z0-9_.-]{0,99}$/.test(name)) throw new KaonError({ code: ErrorCode.invalidParams, what: `event name ${JSON.stringify(name)} is not valid`, fix: "use the name of a defineEvent(), e.g. 'viewing-history'" });
    const id = opts.id ?? createHash('sha256').update(canonicalJson(value)).digest('hex').slice(0, 32);
    if (!RUN_KEY.test(id) || id.length > 120) throw new KaonError({ code: ErrorCode.invalidParams, what: `event id ${JSON.stringify(id)} is not valid`, fix: "use up to 120 letters, digits and '_.:=-', e.g. 'US-2026-11-21'" });
    const taskQueue = opts.taskQueue ?? this.taskQueue;
    const message: EventMessage = { event: name, id, payload: value, at: Date.now() };
    await this.temporal.workflow.signalWithStart(EVENTS_WORKFLOW, {
      workflowId: eventsWorkflowId(taskQueue),
      taskQueue,
      args: [],
      signal: EVENT_SIGNAL,
      signalArgs: [message],
      staticSummary: `Kaon events for task queue ${taskQueue}: starts the runs of triggers`,
    });
    return { event: name, id };
  }

  /** Pending joins (which key waits for which event), runs waiting in k.waitFor, and recent trigger errors, from the events workflow. */
  async triggers(opts: { taskQueue?: string } = {}): Promise<EventsView> {
    try {
      return await this.temporal.workflow.getHandle(eventsWorkflowId(opts.taskQueue ?? this.taskQueue)).query(QUERY_JOINS);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { joins: [], waiting: [], handled: 0, errors: [] };
      throw err;
    }
  }

  /** A past step call of a run, from its history: step, pipeline, recorded input, status, attempts, last failure. */
  stepCall(runId: string, key: string, opts: { reader?: ManifestReader } = {}): Promise<StepCallRecord> {
    return readStepCall(this.temporal, runId, key, opts.reader);
  }

  /**
   * The exact input a past step call got (`train[JP]#2` of a run), to reproduce it. Given the step, the input is
   * typed from its zod schema and checked against the contract as it is now (every field that no longer validates
   * is named); without it, the raw recorded value.
   */
  async stepInput<S extends StepDef>(runId: string, key: string, step: S): Promise<StepParsedInput<S>>;
  async stepInput(runId: string, key: string): Promise<unknown>;
  async stepInput(runId: string, key: string, step?: StepDef): Promise<unknown> {
    const call = await readStepCall(this.temporal, runId, key);
    return step ? checkRecordedInput(step, call) : call.input;
  }

  /** A handle on an existing run by its id. */
  run<R = unknown>(id: string): RunHandle<R> {
    return new RunHandle<R>(this.temporal, this.temporal.workflow.getHandle(id), false, this.resumer);
  }

  /** Find runs through Temporal visibility (search attributes KaonPipeline, KaonStatus). */
  async list(opts: ListOptions = {}): Promise<RunStatusInfo[]> {
    const clauses = [`${SAKey.pipeline.name} IS NOT NULL`];
    if (opts.pipeline) clauses.push(`${SAKey.pipeline.name} = ${quote(opts.pipeline)}`);
    if (opts.status !== undefined) assertRunStatus(opts.status);
    if (opts.status) clauses.push(`${SAKey.status.name} = ${quote(opts.status)}`);
    const out: RunStatusInfo[] = [];
    for await (const w of this.temporal.workflow.list({ query: clauses.join(' AND ') })) {
      const sa = w.searchAttributes as Record<string, unknown[] | undefined>;
      out.push({
        id: w.workflowId,
        runId: w.runId,
        pipeline: w.type,
        temporal: w.status.name as TemporalStatus,
        kaon: sa.KaonStatus?.[0] as string | undefined,
        startTime: w.startTime,
        closeTime: w.closeTime,
      });
      if (out.length >= (opts.limit ?? 100)) break;
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.ownsConnection) await this.temporal.connection.close();
  }
}

/** Connect to Temporal (envconfig by default) and return a Kaon client. */
/**
 * With OTEL_EXPORTER_OTLP_ENDPOINT set, a run's trace starts at the client's start call. The OTel SDK is loaded
 * here, only then: the client stays thin otherwise (invariant 5).
 */
function clientTracingInterceptor(): WorkflowClientInterceptor {
  // require, not import(): under bin/kaon.js (tsx's CJS hook) import() goes through the ESM loader.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { startTracing } = require('../observe/tracing') as typeof import('../observe/tracing');
  const { OpenTelemetryWorkflowClientInterceptor } = require('@temporalio/interceptors-opentelemetry/lib/client') as typeof import('@temporalio/interceptors-opentelemetry/lib/client');
  /* eslint-enable @typescript-eslint/no-require-imports */
  startTracing('kaon-client');
  return new OpenTelemetryWorkflowClientInterceptor();
}

/** Connect (5 s unless the options say otherwise) and check the namespace; failures name the setting at fault. */
async function openConnection(options: ConnectionOptions, namespace: string): Promise<Connection> {
  const target = { address: options.address ?? '127.0.0.1:7233', namespace, tls: options.tls, apiKey: options.apiKey };
  const connection = await connectFast(target, () => Connection.connect({ connectTimeout: '5s', ...options }));
  try {
    await checkNamespace((req) => connection.workflowService.describeNamespace(req), target);
  } catch (err) {
    await connection.close();
    throw err;
  }
  return connection;
}

export async function connect(opts: ConnectOptions = {}): Promise<KaonClient> {
  const cfg = connectionConfig();
  const dataConverter = opts.dataConverter ?? kaonDataConverter(); // a bad key file fails before connecting
  const namespace = opts.namespace ?? cfg.namespace;
  const connection = opts.connection ?? (await openConnection(cfg.connectionOptions, namespace));
  // Fail closed: without a key, every start, signal and update first checks the deployment's encryption mark.
  const guard = new EncryptionGuard((req) => connection.workflowService.describeNamespace(req), namespace, {
    hasKey: converterEncrypts(dataConverter),
    env: opts.env ?? process.env,
    who: opts.who ?? 'this client',
  });
  const runQueue = async (workflowId: string, runId?: string) => {
    try {
      const d = await connection.workflowService.describeWorkflowExecution({ namespace, execution: { workflowId, ...(runId ? { runId } : {}) } });
      return d.executionConfig?.taskQueue?.name ?? undefined;
    } catch {
      return undefined; // no such run: the call itself then fails with Temporal's own error
    }
  };
  const guards = guardInterceptors(guard, runQueue);
  const client = new Client({
    connection,
    namespace,
    dataConverter,
    interceptors: { workflow: [...guards.workflow, ...(tracingConfigured() ? [clientTracingInterceptor()] : [])], schedule: guards.schedule },
  });
  return new KaonClient(client, opts.taskQueue ?? DEFAULT_TASK_QUEUE(), opts.connection === undefined, guard);
}

function truncateJson(v: unknown): string {
  const t = JSON.stringify(v) ?? String(v);
  return t.length > 300 ? `${t.slice(0, 300)}…` : t;
}
