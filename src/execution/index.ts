/**
 * Execution seam — how one step runs, inside a Temporal activity on a worker.
 *
 * @example
 * export const trainImpl = implementStep(train, async ({ rows }, ctx) => {
 *   ctx.progress(0.5, 'fitting');
 *   return { accuracy: 0.9 };
 * });
 */
export { implementStep, isStepImpl, type StepContext, type StepFn, type StepImpl, type StepLogger } from './implement';
export { createStepActivities, MAX_OUTPUT_BYTES, type RunnerExecutor, type StepActivity, type StepActivityDeps } from './activities';
