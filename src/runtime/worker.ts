import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { toMs, type Duration } from '../definition/duration';
import { ErrorCode, KaonError } from '../definition/errors';
import { isStepDef, type StepDef } from '../definition/step';
import type { ArtifactStore } from '../data/store';
import { createMemoTable, memoKey } from '../data/memo';
import { createStepActivities, type StepActivityDeps, type StepMemo } from '../execution/activities';
import { createRunnerExecutors, type RunnerDeps } from '../execution/runners';
import { createMapActivities } from '../execution/map-activities';
import { historyPriorSteps, type HistoryEvent, type PriorSteps } from '../execution/prior-steps';
import { mlflowFromEnv } from '../execution/mlflow';
import { liveStepsDir, sweepDeadSteps } from '../execution/sweep';
import { isStepImpl, type StepImpl } from '../execution/implement';
import { taskQueueFor } from '../workflow/options';
import { bundlePipelines } from './bundle';
import { ApplicationFailure, type LoadedDataConverter } from '@temporalio/common';
import { decodeArrayFromPayloads, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow';
import { Context } from '@temporalio/activity';
import { DEFAULT_DEPLOYMENT, KaonDeployments } from '../client/deployments';
import { DEFAULT_TASK_QUEUE, nativeConnectionConfig } from './config';
import { checkNamespace, withConnectErrors } from '../client/connect-errors';
import { defaultArtifactStore } from './artifacts';
import { converterEncrypts, kaonDataConverter, refusingPlaintext } from '../data/codec';
import { fetchMark, keylessRefusal, markCovering } from '../client/encryption-mark';
import { refusePlaintextArgs } from '../definition/internal/plaintext';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { kaonHome, projectRoot } from './paths';
import type { KaonMetrics } from '../observe/metrics';
import { tracingConfigured } from '../observe/otel-env';
import { workerTracing } from './telemetry';

export interface KaonWorkerOptions {
  /** The module that exports your pipelines (workflow code). */
  workflowsPath: string;
  /**
   * A pre-built bundle of `workflowsPath` (tests bundle once and share it). With an encryption key, build it with
   * bundlePipelines(path, { failureConverterPath: ENCRYPTED_FAILURES_PATH }) so workflow failures are encrypted too.
   */
  workflowBundle?: { code: string } | { codePath: string };
  /** Step implementations and contracts: a module namespace, or a list of implementStep() values and step defs. */
  activities: Record<string, unknown> | readonly unknown[];
  /** The pipelines' task queue. Default $KAON_TASK_QUEUE or 'kaon'. */
  taskQueue?: string;
  /** Queues to serve: 'default' (workflows and steps without a queue) and step queue names. Default: all. */
  queues?: readonly string[];
  connection?: NativeConnection;
  namespace?: string;
  /** How long in-flight steps may finish after SIGINT/SIGTERM. Default 30 s. */
  shutdownGraceTime?: Duration;
  /** Runners for python()/command() steps. Default: Kaon's process and Python executors on the artifact store. */
  executors?: StepActivityDeps['executors'];
  /** The artifact store (and memo table). Default: the one named by KAON_ARTIFACTS, else .kaon/artifacts. */
  artifacts?: ArtifactStore;
  /**
   * Worker Versioning: this worker serves build `buildId` of worker deployment `name` (default from
   * $KAON_DEPLOYMENT and $KAON_BUILD_ID). Runs stay on the build they started on; loops move to the current build
   * at their next continue-as-new. `current`: make this build current once it polls — 'if-none' (default: only
   * when the deployment has no current build yet), true (a deploy), or false (promote later, `kaon deployment current`).
   */
  deployment?: { name?: string; buildId: string; current?: boolean | 'if-none' };
  /**
   * Where step metrics go (durations, attempts, cache hits and misses, artifact bytes, sweep items): the sink of
   * startMetricsServer(), or createKaonMetrics() over your own registry. Default: not collected.
   */
  metrics?: KaonMetrics;
  /**
   * OpenTelemetry traces through Temporal's interceptors: a run is one trace, a span per step. Default: on when
   * OTEL_EXPORTER_OTLP_ENDPOINT (or …_TRACES_ENDPOINT) is set. A `workflowBundle` must then be built with
   * bundlePipelines(path, { tracing: true }).
   */
  tracing?: boolean;
  /** Records step attempts elsewhere. Default: MLflow when MLFLOW_TRACKING_URI is set, else none; pass null for none. */
  bookkeeping?: StepActivityDeps['bookkeeping'] | null;
  /** The environment read for KAON_ENCRYPTION (default process.env): `required` refuses to start without a key. */
  env?: NodeJS.ProcessEnv;
  /** Extra Temporal worker options (concurrency limits, interceptors…). */
  workerOptions?: Partial<Omit<WorkerOptions, 'taskQueue' | 'activities' | 'workflowsPath' | 'workflowBundle' | 'connection'>>;
}

function deploymentFromEnv(): KaonWorkerOptions['deployment'] {
  const buildId = process.env.KAON_BUILD_ID;
  if (!buildId) return undefined;
  return { buildId, ...(process.env.KAON_DEPLOYMENT ? { name: process.env.KAON_DEPLOYMENT } : {}) };
}

/**
 * Kaon's process and Python executors, reading and writing artifacts in `store`. The runtime supplies the paths the
 * execution seam does not look up itself: the project root (relative scripts, cwd) and `.kaon/` (Python envs).
 */
export function defaultExecutors(store: Pick<ArtifactStore, 'getPath' | 'put'>, deps: Omit<RunnerDeps, 'artifacts'> = {}, metrics?: KaonMetrics): NonNullable<StepActivityDeps['executors']> {
  const count = (direction: 'in' | 'out', bytes: number) => metrics?.artifactBytes(direction, bytes);
  return createRunnerExecutors({
    ...deps,
    root: deps.root ?? projectRoot(),
    pythonEnv: { home: kaonHome(), ...deps.pythonEnv },
    liveDir: deps.liveDir ?? liveStepsDir(kaonHome()),
    artifacts: {
      // Inputs are hard links to the read-only blobs where the store is local (copies across filesystems, for S3,
      // and for a root worker, which permission bits would not stop): see ArtifactStoreOptions.links.
      materialise: async (ref, dir) => {
        const p = await store.getPath(ref, dir, { link: true });
        count('out', ref.size);
        return p;
      },
      save: async (file, inputs, producer) => {
        const ref = await store.put({ path: file.path }, { name: file.name, ...(file.mediaType ? { mediaType: file.mediaType } : {}), producer, inputs });
        count('in', ref.size);
        return ref;
      },
    },
  });
}

/** The memo table on a store, in the shape execution needs. */
export function stepMemo(store: ArtifactStore): StepMemo {
  const table = createMemoTable(store);
  return {
    key: memoKey,
    get: (key) => table.get(key),
    put: (key, e) => table.put(key, e),
    allExist: async (refs) => (await Promise.all(refs.map((r) => store.exists(r).catch(() => false)))).every(Boolean),
  };
}

/** Earlier runs' completed steps, read from their histories through the worker's connection and data converter. */
export function priorStepsFromHistory(connection: NativeConnection, namespace: string, converter: LoadedDataConverter): PriorSteps {
  return historyPriorSteps({
    async history(workflowId) {
      const events: HistoryEvent[] = [];
      let nextPageToken: Uint8Array | undefined;
      do {
        const page = await connection.workflowService.getWorkflowExecutionHistory({ namespace, execution: { workflowId }, ...(nextPageToken ? { nextPageToken } : {}) });
        events.push(...(page.history?.events ?? []));
        nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
      } while (nextPageToken);
      return events;
    },
    decode: (payloads) => decodeArrayFromPayloads(converter, payloads),
  });
}

export interface KaonWorker {
  readonly taskQueue: string;
  /** The deployment and build this worker serves under Worker Versioning, if any. */
  readonly deployment?: { name: string; buildId: string };
  /** Task queues actually polled. */
  readonly polled: readonly string[];
  run(): Promise<void>;
  runUntil<R>(fn: Promise<R> | (() => Promise<R>)): Promise<R>;
  shutdown(): void;
}

export function collectSteps(activities: KaonWorkerOptions['activities']): { impls: StepImpl[]; steps: StepDef[] } {
  const values = Array.isArray(activities) ? activities : Object.values(activities);
  return { impls: values.filter(isStepImpl), steps: values.filter(isStepDef) };
}

/**
 * Create the workers for a Kaon deployment: one Temporal worker per task queue served, sharing a connection.
 * Steps reach a queue's workers through their `queue` option (`python` → `<taskQueue>.python`).
 */
export async function createKaonWorker(opts: KaonWorkerOptions): Promise<KaonWorker> {
  const taskQueue = opts.taskQueue ?? DEFAULT_TASK_QUEUE();
  const { impls, steps } = collectSteps(opts.activities);
  const store = opts.artifacts ?? defaultArtifactStore();
  const executors = opts.executors ?? defaultExecutors(store, {}, opts.metrics);
  const memo = stepMemo(store);
  const stepQueues = new Set<string>(['default']);
  for (const def of [...impls.map((i) => i.def), ...steps]) stepQueues.add(def.options.queue ?? 'default');
  const wanted = opts.queues ?? [...stepQueues];
  for (const q of wanted) {
    if (!/^[A-Za-z0-9_.-]+$/.test(q)) {
      throw new KaonError({ code: ErrorCode.config, what: `queue name ${JSON.stringify(q)} is not valid`, fix: "use letters, digits, '_', '-' or '.', e.g. --queues default,python" });
    }
  }
  const own = opts.connection ? undefined : nativeConnectionConfig();
  const namespace = opts.namespace ?? own?.namespace ?? nativeConnectionConfig().namespace;
  const target = { address: own?.options.address ?? '', namespace, tls: own?.options.tls, apiKey: own?.options.apiKey };
  // Connect errors and a missing namespace fail here, naming the setting at fault (see connect-errors.ts).
  const connection = opts.connection ?? (await withConnectErrors(target, () => NativeConnection.connect(own!.options)));
  await checkNamespace((req) => connection.workflowService.describeNamespace(req), target).catch(async (err: unknown) => {
    if (!opts.connection) await connection.close();
    throw err;
  });
  // What a killed worker left on this machine (step process groups, work dirs) goes before this one takes steps.
  sweepDeadSteps(liveStepsDir(kaonHome()), (m) => Runtime.instance().logger.info(m));
  // Encrypted payloads (AES-GCM) when $KAON_ENCRYPTION_KEY_FILE is set; the same converter reads earlier histories.
  const readConverter = opts.workerOptions?.dataConverter ?? kaonDataConverter();
  // With a key, a plaintext input is refused (the codec marks it; the interceptors below and the bundle's refuse it).
  const dataConverter = refusingPlaintext(readConverter);
  if (!converterEncrypts(dataConverter)) {
    // Without a key, a worker in a deployment marked encrypted refuses to start: it could only fail every task.
    const mark = await fetchMark((req) => connection.workflowService.describeNamespace(req), namespace, opts.env ?? process.env).catch(async (err: unknown) => {
      if (!opts.connection) await connection.close();
      throw err;
    });
    const setting = markCovering(mark, taskQueue);
    if (setting) {
      if (!opts.connection) await connection.close();
      throw keylessRefusal({ who: `the worker for task queue ${taskQueue}`, action: 'start', namespace, taskQueue, setting });
    }
  }
  const prior = priorStepsFromHistory(connection, namespace, loadDataConverter(readConverter));
  const bookkeeping = opts.bookkeeping === null ? undefined : (opts.bookkeeping ?? mlflowFromEnv());
  const served = { ...createStepActivities({ impls, steps, executors, artifacts: store, memo, prior, ...(opts.metrics ? { metrics: opts.metrics } : {}), ...(bookkeeping ? { bookkeeping } : {}) }), ...createMapActivities(store) };
  const known = Object.keys(served).filter((n) => !n.startsWith('kaon.')).sort();
  const activities = {
    ...served,
    // A step no implementation here serves fails at once, naming it: retrying cannot make the code appear.
    default: async () => {
      const info = Context.current().info;
      throw ApplicationFailure.create({
        type: ErrorCode.noImplementation,
        nonRetryable: true,
        message: `step "${info.activityType}" is not implemented on the worker that took it (task queue ${info.taskQueue}; it implements ${known.join(', ') || 'no steps'}). To fix: implement it with implementStep(${info.activityType}, fn) in the activities module the worker loads, or give its contract run: python(…), command(…) or spark(…), or route it with queue: to workers that have it`,
      });
    },
  };
  const grace = toMs(opts.shutdownGraceTime ?? '30s', 'shutdownGraceTime');
  const tracing = workerTracing(opts.tracing ?? tracingConfigured());
  const bundle = opts.workflowBundle ?? (wanted.includes('default') ? await bundlePipelines(opts.workflowsPath, { tracing: tracing !== undefined, ...(dataConverter.failureConverterPath ? { failureConverterPath: dataConverter.failureConverterPath } : {}) }) : undefined);
  const deployment = opts.deployment ?? deploymentFromEnv();
  const deploymentName = deployment ? (deployment.name ?? DEFAULT_DEPLOYMENT) : undefined;
  if (deployment && !/^[A-Za-z0-9_.:-]{1,200}$/.test(deployment.buildId)) {
    throw new KaonError({ code: ErrorCode.config, what: `build id ${JSON.stringify(deployment.buildId)} is not valid`, fix: "use letters, digits and '_.:-', e.g. the git commit: --build-id $(git rev-parse --short HEAD)" });
  }
  // Steps: a plaintext input at a keyed worker fails the attempt, non-retryably, before the step's code runs.
  const plaintextGuard: ActivityInterceptorsFactory = (ctx) => ({
    inbound: {
      execute: async (input, next) => {
        refusePlaintextArgs(input.args, `the input of step ${ctx.info.activityType} (${ctx.info.activityId})`);
        return next(input);
      },
    },
  });
  const workers: Worker[] = [];
  for (const q of wanted) {
    const isDefault = q === 'default';
    workers.push(
      await Worker.create({
        connection,
        namespace,
        taskQueue: isDefault ? taskQueue : taskQueueFor(taskQueue, q),
        activities,
        ...(isDefault && bundle ? { workflowBundle: bundle } : {}),
        shutdownGraceTime: grace,
        // Cancellation reaches a step through heartbeats; keep the throttle short so it arrives in seconds.
        defaultHeartbeatThrottleInterval: '1s',
        maxHeartbeatThrottleInterval: '2s',
        ...(deployment && deploymentName
          ? { workerDeploymentOptions: { version: { deploymentName, buildId: deployment.buildId }, useWorkerVersioning: true, defaultVersioningBehavior: 'PINNED' as const } }
          : {}),
        ...opts.workerOptions,
        dataConverter,
        interceptors: {
          ...opts.workerOptions?.interceptors,
          activity: [plaintextGuard, ...(tracing?.interceptors.activity ?? []), ...(opts.workerOptions?.interceptors?.activity ?? [])],
        },
        ...(tracing ? { sinks: { ...opts.workerOptions?.sinks, ...tracing.sinks } } : {}),
      }),
    );
  }
  const polled = workers.map((w) => w.options.taskQueue);
  const promote = async () => {
    if (!deployment || !deploymentName || deployment.current === false) return;
    const d = new KaonDeployments(connection.workflowService, namespace);
    if (deployment.current !== true && (await d.describe(deploymentName))?.current) return;
    await d.setCurrent(deployment.buildId, { deployment: deploymentName, identity: `kaon worker ${deployment.buildId}` });
  };
  const runAll = () => {
    const running = Promise.all(workers.map((w) => w.run()));
    promote().catch((err: unknown) => process.emitWarning(`kaon: ${err instanceof Error ? err.message : String(err)}`));
    return running.then(() => undefined).finally(() => tracing?.flush().catch(() => undefined));
  };
  return {
    taskQueue,
    ...(deployment && deploymentName ? { deployment: { name: deploymentName, buildId: deployment.buildId } } : {}),
    polled,
    run: runAll,
    shutdown: () => {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
    runUntil: async <R>(fn: Promise<R> | (() => Promise<R>)): Promise<R> => {
      const running = runAll();
      try {
        return await (typeof fn === 'function' ? fn() : fn);
      } finally {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await running;
      }
    },
  };
}
