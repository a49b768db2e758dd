/**
 * Execution seam — how one step runs, inside a Temporal activity on a worker.
 *
 * @example
 * export const trainImpl = implementStep(train, async ({ rows }, ctx) => {
 *   ctx.progress(0.5, 'fitting');
 *   return { accuracy: 0.9 };
 * });
 *
 * // Steps in any language: python()/command()/spark() contracts run through the runner executors.
 * const worker = await createKaonWorker({ ..., executors: createRunnerExecutors({ artifacts }) });
 */
export { implementStep, isStepImpl, type StepContext, type StepFn, type StepImpl, type StepLogger } from './implement';
export { storeCard, type CardImage, type CardInput } from './cards';
export { createStepActivities, MAX_OUTPUT_BYTES, type RunnerExecutor, type StepActivity, type StepActivityDeps } from './activities';
export {
  runProcess,
  terminateGroup,
  formatTail,
  EXIT_BAD_INPUT,
  PROTOCOL_FD,
  ProtocolMessage,
  type RunProcessOptions,
  type ProcessResult,
  type TailLine,
} from './process';
export { ItemProcess, itemEndMark, type ItemOutcome, type ItemProcessOptions, type ItemRunOptions, type ItemSession } from './item-session';
export { createLocalStepRunner, type LocalStepCall, type LocalStepEvent, type LocalStepHooks, type LocalStepResult, type LocalStepRunner } from './local';
export { ensurePythonEnv, pythonEnvKey, type PythonEnvOptions } from './python-env';
export { createRunnerExecutors, findArtifactRefs, KAON_PYTHON_HELPERS, type ArtifactIO, type RunnerDeps } from './runners';
export { historyPriorSteps, type HistoryEvent, type PriorStep, type PriorSteps } from './prior-steps';
export { checkJava, ensureSparkEnv, PYSPARK_VERSION, sparkMaster, type SparkEnv } from './spark';
export { stepEnv, BASE_ALLOW, RUNNER_ALLOW, type StepEnvParts } from './step-env';
export { resolveSecrets, redactor, type StepSecrets } from './secrets';
export { liveStepsDir, sweepDeadSteps, type SweepResult } from './sweep';
