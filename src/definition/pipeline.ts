import type { z } from 'zod';

/** Static facts about a pipeline, readable by the client without loading workflow code. */
export interface PipelineMeta<P extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly params: P;
  readonly description: string | undefined;
}

/**
 * A pipeline is a Temporal workflow function (invariant 1) that also carries its typed contract.
 * Create one with `definePipeline` from `kaon/workflow`.
 */
export type Pipeline<P extends z.ZodType = z.ZodType, R = unknown> = ((params: z.input<P>) => Promise<R>) & {
  readonly kaon: PipelineMeta<P>;
};

export type PipelineParams<T extends Pipeline> = T extends Pipeline<infer P, unknown> ? z.input<P> : never;
export type PipelineResult<T extends Pipeline> = T extends Pipeline<z.ZodType, infer R> ? R : never;

export function isPipeline(v: unknown): v is Pipeline {
  return typeof v === 'function' && typeof (v as { kaon?: { name?: unknown } }).kaon?.name === 'string';
}
