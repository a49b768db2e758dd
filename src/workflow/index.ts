/**
 * kaon/workflow — orchestration, in the Temporal workflow sandbox (deterministic; no Node built-ins).
 *
 * @example
 * export const demo = definePipeline({
 *   name: 'ml-demo', params: z.object({ seed: z.number() }),
 *   async run(p, k) {
 *     const data = await k.step(generate, { seed: p.seed });
 *     const [a, b] = await k.foreach(['lr', 'tree'], { concurrency: 2 }, (m) => k.step(train, { data, model: m }));
 *     return { a, b };
 *   },
 * });
 */
export { definePipeline, progressQuery, type PipelineConfig } from './pipeline';
export { type Kaon } from './context';
export { DEFAULT_RETRY, DEFAULT_TIMEOUT, taskQueueFor, type StepCallOptions } from './options';
export { chunk, MAX_FOREACH_ITEMS, type FailurePolicy, type ForeachOptions, type Settled } from './foreach';
export { HISTORY_LIMITS, MAX_HISTORY_EVENTS, type HistoryBudget } from './history-guard';
export type { RunOptions } from './core';
export { MAX_INLINE_MAP_BYTES, type MapOptions } from './map';
export { Sweep, isSweep, type SweepLine } from '../definition/sweep';
export { pipelineDispatcher } from './dispatch';
export type { ApprovalOptions, Decision, WaitForOptions } from './gates';
export type { MessageSchemas } from './control';
