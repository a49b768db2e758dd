import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { toMs, type Duration } from '../definition/duration';
import { ErrorCode, KaonError } from '../definition/errors';
import { isStepDef, type StepDef } from '../definition/step';
import { createStepActivities, type RunnerExecutor, type StepActivityDeps } from '../execution/activities';
import { isStepImpl, type StepImpl } from '../execution/implement';
import { taskQueueFor } from '../workflow/context';
import { bundlePipelines } from './bundle';
import { DEFAULT_TASK_QUEUE, nativeConnectionConfig } from './config';

export interface KaonWorkerOptions {
  /** The module that exports your pipelines (workflow code). */
  workflowsPath: string;
  /** A pre-built bundle of `workflowsPath` (tests bundle once and share it). */
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
  executors?: StepActivityDeps['executors'];
  /** Extra Temporal worker options (concurrency limits, interceptors…). */
  workerOptions?: Partial<Omit<WorkerOptions, 'taskQueue' | 'activities' | 'workflowsPath' | 'workflowBundle' | 'connection'>>;
}

export interface KaonWorker {
  readonly taskQueue: string;
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
export async function createKaonWorker(opts: KaonWorkerOptions & { executors?: Partial<Record<string, RunnerExecutor>> }): Promise<KaonWorker> {
  const taskQueue = opts.taskQueue ?? DEFAULT_TASK_QUEUE();
  const { impls, steps } = collectSteps(opts.activities);
  const activities = createStepActivities({ impls, steps, ...(opts.executors ? { executors: opts.executors } : {}) });
  const stepQueues = new Set<string>(['default']);
  for (const def of [...impls.map((i) => i.def), ...steps]) stepQueues.add(def.options.queue ?? 'default');
  const wanted = opts.queues ?? [...stepQueues];
  for (const q of wanted) {
    if (!/^[A-Za-z0-9_.-]+$/.test(q)) {
      throw new KaonError({ code: ErrorCode.config, what: `queue name ${JSON.stringify(q)} is not valid`, fix: "use letters, digits, '_', '-' or '.', e.g. --queues default,python" });
    }
  }
  const connection = opts.connection ?? (await NativeConnection.connect(nativeConnectionConfig().options));
  const namespace = opts.namespace ?? nativeConnectionConfig().namespace;
  const grace = toMs(opts.shutdownGraceTime ?? '30s', 'shutdownGraceTime');
  const bundle = opts.workflowBundle ?? (wanted.includes('default') ? await bundlePipelines(opts.workflowsPath) : undefined);
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
        ...opts.workerOptions,
      }),
    );
  }
  const polled = workers.map((w) => w.options.taskQueue);
  const runAll = () => Promise.all(workers.map((w) => w.run())).then(() => undefined);
  return {
    taskQueue,
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
