import { z } from 'zod';
import { ArtifactRef } from './artifact-ref';

/** What k.map returns: counts, the first failures, and every item's result in a JSON-lines manifest. */
export const Sweep = z.object({
  kind: z.literal('kaon.sweep'),
  /** The sweep's key in the run state, e.g. `train` or `sweep[lr]`. */
  key: z.string(),
  /** The step or pipeline that ran per item. */
  target: z.string(),
  total: z.number().int().min(0),
  succeeded: z.number().int().min(0),
  failed: z.number().int().min(0),
  /** Reused from the cache or, on resume, from the earlier run (counted in succeeded too). */
  cached: z.number().int().min(0),
  /** Reused on resume from the earlier run (counted in cached and succeeded too). */
  resumed: z.number().int().min(0).optional(),
  /** Not run: cancelled, or skipped after a fail-fast failure. */
  notRun: z.number().int().min(0),
  /** Up to 20 failed items with their errors. */
  failures: z.array(z.object({ index: z.number().int(), error: z.string() })),
  /** Line i is item i's result: `{"i":i,"ok":true,"output":…}` or `{"i":i,"ok":false,"error":"…"}`. */
  results: ArtifactRef,
  durationMs: z.number().min(0),
  /** Completed items per second over the sweep's wall time. */
  rate: z.number().min(0),
});

/** A sweep's result; `O` is the per-item output type, carried for typed readers. */
export type Sweep<O = unknown> = z.infer<typeof Sweep> & { readonly __output?: O };

/** One line of a sweep's results manifest. */
export type SweepLine<O = unknown> =
  | { i: number; ok: true; output: O; cached?: boolean; resumed?: boolean; key?: string }
  | { i: number; ok: false; error: string; status: 'failed' | 'cancelled' | 'skipped'; key?: string };

export function isSweep(v: unknown): v is Sweep {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'kaon.sweep';
}
