import { ApplicationFailure } from '@temporalio/activity';
import { KaonError } from '../definition/errors';
import { applyTemplate, MapActivity, type ResultPart, type SliceCall, type WriteCall } from '../definition/internal/map';
import type { ArtifactRef } from '../definition/artifact-ref';
import { planManifest, readPrior, readSlice, writeResults } from '../data/manifest';
import type { ArtifactStore } from '../data/store';

function permanentFailure<A extends unknown[], R>(fn: (...a: A) => Promise<R>): (...a: A) => Promise<R> {
  return async (...a) => {
    try {
      return await fn(...a);
    } catch (err) {
      if (err instanceof KaonError) throw ApplicationFailure.create({ type: err.code, message: err.message, nonRetryable: !err.retryable });
      throw err;
    }
  };
}

/** Kaon's own activities behind k.map: plan a manifest, read a slice, write results, find an earlier run's results. */
export function createMapActivities(store: ArtifactStore): Record<string, (arg: never) => Promise<unknown>> {
  return {
    [MapActivity.plan]: permanentFailure((a: { ref: ArtifactRef; sliceItems: number }) => planManifest(store, a.ref, a.sliceItems)),
    [MapActivity.slice]: permanentFailure(async (c: SliceCall) => {
      const items = await readSlice(store, c.ref, c.offset, c.count);
      return items.map((item, k) => applyTemplate(c.template, item, c.start + k));
    }),
    [MapActivity.write]: permanentFailure((c: WriteCall) => writeResults(store, c)),
    [MapActivity.prior]: permanentFailure(async (a: { shardId: string }): Promise<ResultPart | null> => (await readPrior(store, a.shardId)) ?? null),
  };
}
