// Hosting a worker for the project from the CLI (kaon worker, kaon dev, kaon demo).
import { DefaultLogger, Runtime, type LogLevel, type NativeConnection } from '@temporalio/worker';
import { toMs } from '../definition/duration';
import { DEFAULT_TASK_QUEUE } from '../runtime/config';
import { collectSteps, createKaonWorker, type KaonWorker } from '../runtime/worker';
import { taskQueueFor } from '../workflow/options';
import { formatDuration } from '../observe/terminal';
import { say, type CliIo } from './command';
import { loadActivities, loadPipelines, type Project } from './project';
import { connectWorker } from './temporal';
import { startMetricsServer, type KaonMetricsServer } from '../runtime/telemetry';
import { tracingConfigured } from '../observe/otel-env';
import { encryptionSummary, kaonDataConverter } from '../data/codec';

export interface HostedWorker {
  worker: KaonWorker;
  connection: NativeConnection;
  address: string;
  namespace: string;
  taskQueue: string;
  graceMs: number;
  /** The Prometheus endpoint, with --metrics. */
  metrics?: KaonMetricsServer;
}

export interface HostOptions {
  queues?: string[] | undefined;
  taskQueue?: string | undefined;
  grace?: string | undefined;
  /** Connect here instead of through envconfig (the embedded dev server). */
  server?: { address: string; namespace: string };
  /** Prefix of the lines printed, e.g. 'kaon worker'. */
  label: string;
  /** Worker Versioning: serve this build of the deployment (see createKaonWorker). */
  deployment?: { name?: string; buildId: string; current?: boolean | 'if-none' } | undefined;
  /** Temporal SDK log level unless KAON_LOG_LEVEL says otherwise. Default INFO. */
  logLevel?: LogLevel;
  /** Serve Prometheus metrics (Kaon's and the SDK's) on this `[host]:port`. */
  metrics?: string | undefined;
}

const LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

function logLevel(io: CliIo, fallback: LogLevel): LogLevel {
  const wanted = io.env.KAON_LOG_LEVEL?.toUpperCase();
  return LEVELS.find((l) => l === wanted) ?? fallback;
}

/** The SDK logs (worker state, step logs) at KAON_LOG_LEVEL. Must run before the first connection. */
function installRuntime(io: CliIo, fallback: LogLevel): void {
  try {
    Runtime.install({ logger: new DefaultLogger(logLevel(io, fallback)) });
  } catch {
    // Already installed (a second worker in this process): keep the first.
  }
}

/** Load the project, connect, create the worker and print what it serves. Not yet running. */
export async function hostWorker(io: CliIo, project: Project, opts: HostOptions): Promise<HostedWorker> {
  const graceMs = toMs(opts.grace ?? '30s', '--grace');
  const pipelines = loadPipelines(project.workflows);
  const activities = loadActivities(project.activities);
  const { impls, steps } = collectSteps(activities);
  const byQueue = new Map<string, Set<string>>([['default', new Set()]]);
  for (const def of [...impls.map((i) => i.def), ...steps]) {
    const q = def.options.queue ?? 'default';
    byQueue.set(q, (byQueue.get(q) ?? new Set()).add(def.name));
  }
  const taskQueue = opts.taskQueue ?? DEFAULT_TASK_QUEUE();
  const queues = opts.queues && opts.queues.length > 0 ? opts.queues : [...byQueue.keys()];
  // With --metrics the runtime is installed with the SDK's Prometheus exporter (so before the first connection).
  const metrics = opts.metrics !== undefined ? await startMetricsServer({ listen: opts.metrics, logger: new DefaultLogger(logLevel(io, opts.logLevel ?? 'INFO')) }) : undefined;
  if (!metrics) installRuntime(io, opts.logLevel ?? 'INFO');
  let conn: Awaited<ReturnType<typeof connectWorker>>;
  let dataConverter: ReturnType<typeof kaonDataConverter>;
  try {
    dataConverter = kaonDataConverter({ env: io.env }); // a bad key file fails here, before connecting

    conn = await connectWorker(opts.server);
  } catch (err) {
    await metrics?.close();
    throw err;
  }
  const { connection, address, namespace } = conn;
  let worker: KaonWorker;
  try {
    worker = await createKaonWorker({
      workflowsPath: project.workflows,
      activities,
      taskQueue,
      queues,
      connection,
      namespace,
      shutdownGraceTime: graceMs,
      workerOptions: { dataConverter },
      env: io.env,
      ...(opts.deployment ? { deployment: opts.deployment } : {}),
      ...(metrics ? { metrics: metrics.metrics } : {}),
    });
  } catch (err) {
    await connection.close();
    await metrics?.close();
    throw err;
  }
  say(io.stdout, `${opts.label}: connected to ${address} (namespace ${namespace})`);
  const encryption = encryptionSummary(dataConverter);
  if (encryption) say(io.stdout, `  ${encryption}`);
  if (metrics) say(io.stdout, `  metrics: ${metrics.url} (Prometheus text: kaon_* and the Temporal SDK's temporal_*)`);
  if (tracingConfigured(io.env)) say(io.stdout, `  traces: OTLP to ${io.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? io.env.OTEL_EXPORTER_OTLP_ENDPOINT}`);
  const unimplemented = steps.filter((d) => !d.run && !impls.some((i) => i.def.name === d.name)).map((d) => d.name).sort();
  if (unimplemented.length) {
    say(io.stderr, `${opts.label}: warning: step contracts with no implementation in ${project.activities}: ${unimplemented.join(', ')}. A run that calls one fails at once. To fix: implementStep(<step>, fn) next to the contract, or give it run: python(…) / command(…)`);
  }
  if (worker.deployment) say(io.stdout, `  build ${worker.deployment.buildId} of worker deployment ${worker.deployment.name} (runs stay on the build they started on; loops move at continue-as-new)`);
  for (const q of queues) {
    const stepNames = [...(byQueue.get(q) ?? [])].sort();
    const what = [
      q === 'default' ? `pipelines ${[...pipelines.keys()].join(', ')}` : '',
      stepNames.length ? `steps ${stepNames.join(', ')}` : q === 'default' ? '' : 'no steps of this project use this queue',
    ].filter(Boolean).join('; ');
    say(io.stdout, `  task queue ${taskQueueFor(taskQueue, q)}: ${what}`);
  }
  return { worker, connection, address, namespace, taskQueue, graceMs, ...(metrics ? { metrics } : {}) };
}

/**
 * Run the worker until io.signal aborts (SIGINT/SIGTERM), then shut down gracefully: no new tasks, in-flight
 * steps get the grace period to finish. Resolves once every worker has stopped.
 */
export async function runUntilSignal(io: CliIo, hosted: HostedWorker, label: string): Promise<void> {
  const running = hosted.worker.run();
  say(io.stdout, `${label}: ready; Ctrl-C to stop (in-flight steps get ${formatDuration(hosted.graceMs)} to finish)`);
  const onAbort = () => {
    say(io.stdout, `${label}: shutting down; waiting for in-flight steps (up to ${formatDuration(hosted.graceMs)})…`);
    hosted.worker.shutdown();
  };
  if (io.signal?.aborted) onAbort();
  else io.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await running;
  } finally {
    io.signal?.removeEventListener('abort', onAbort);
    await hosted.connection.close();
    await hosted.metrics?.close();
  }
  say(io.stdout, `${label}: stopped`);
}
