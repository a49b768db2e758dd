import type { Trigger } from './events';
import type { z } from 'zod';

/** Static facts about a pipeline, readable by the client without loading workflow code. */
export interface PipelineMeta<P extends z.ZodType = z.ZodType, M extends Record<string, z.ZodType> = Record<string, z.ZodType>> {
  readonly name: string;
  readonly params: P;
  readonly description: string | undefined;
  /** Typed messages a run accepts (run.send). */
  readonly messages: M;
  /** What starts it besides people and schedules. */
  readonly triggers: readonly Trigger[];
  /** Under Worker Versioning: stay on the starting build ('pinned') or follow the current one. */
  readonly versioning: 'pinned' | 'auto-upgrade';
  /** Params fields the schema does not declare: refused or dropped. */
  readonly unknownParams: 'error' | 'strip';
  /** The run key of a start that names none (one run per country, say). */
  readonly runKey: ((params: unknown) => string) | undefined;
}

/**
 * A pipeline is a Temporal workflow function (invariant 1) that also carries its typed contract.
 * Create one with `definePipeline` from `kaon/workflow`.
 */
export type Pipeline<P extends z.ZodType = z.ZodType, R = unknown, M extends Record<string, z.ZodType> = Record<never, never>> = ((params: z.input<P>) => Promise<R>) & {
  readonly kaon: PipelineMeta<P, M>;
};

/** Any pipeline, whatever its params and result (function parameters are contravariant, hence `any`). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyPipeline = Pipeline<any, any, any>;

export type PipelineParams<T extends AnyPipeline> = T extends { kaon: PipelineMeta<infer P, infer _M> } ? z.input<P> : never;
export type PipelineMessages<T extends AnyPipeline> = T extends { kaon: { messages: infer M } } ? M : never;
export type PipelineResult<T extends AnyPipeline> = T extends (params: never) => Promise<infer R> ? R : never;

export function isPipeline(v: unknown): v is AnyPipeline {
  return typeof v === 'function' && typeof (v as { kaon?: { name?: unknown } }).kaon?.name === 'string';
}
