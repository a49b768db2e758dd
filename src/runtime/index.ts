/**
 * kaon/worker — runs on workers: step implementations, the worker bootstrap, the embedded dev server.
 *
 * @example
 * import * as activities from './activities';
 * const worker = await createKaonWorker({ workflowsPath: require.resolve('./workflows'), activities });
 * await worker.run();
 */
export { createKaonWorker, collectSteps, defaultExecutors, stepMemo, type KaonWorker, type KaonWorkerOptions } from './worker';
export { localSteps, localRunId, type LocalSteps, type LocalStepOptions, type LocalRunResult } from './local-step';
export { startDevServer, freePort, type DevServer, type DevServerOptions } from './dev-server';
export { ensureTemporalCli, TEMPORAL_CLI_VERSION } from './temporal-cli';
export { bundlePipelines, writeWorkflowEntry } from './bundle';
export { connectionConfig, nativeConnectionConfig, DEFAULT_TASK_QUEUE } from './config';
export { kaonHome, projectRoot } from './paths';
export { defaultArtifactStore } from './artifacts';
export { startMetricsServer, parseListenAddress, workerTracing, type KaonMetricsServer, type MetricsServerOptions } from './telemetry';
export { implementStep, createStepActivities, type StepContext, type StepImpl, type StepFn, type RunnerExecutor } from '../execution';
