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
export {
  DEFAULT_RETRY,
  chunk,
  DEFAULT_TIMEOUT,
  MAX_FOREACH_ITEMS,
  MAX_HISTORY_EVENTS,
  taskQueueFor,
  type FailurePolicy,
  type ForeachOptions,
  type Kaon,
  type Settled,
  type StepCallOptions,
} from './context';
export { pipelineDispatcher } from './dispatch';
