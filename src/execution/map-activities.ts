import { ApplicationFailure, Context } from '@temporalio/activity';
import { KaonError } from '../definition/errors';
import { applyTemplate, MapActivity, type SliceCall, type AssembleCall, type BlobRef, type ResultPart, type StageCall, type WriteCall, type WrittenResults } from '../definition/internal/map';
import type { ArtifactRef } from '../definition/artifact-ref';
import type { SweepLine } from '../definition/sweep';
import { assembleResults, planManifest, readPrior, readSlice, stageInputs, writeLines, writeResults } from '../data/manifest';
import type { ArtifactStore } from '../data/store';

/** How often Kaon's long internal activities heartbeat: the workflow side gives them a 20 s heartbeat timeout. */
export const MAP_HEARTBEAT_MS = 2000;

/**
 * A KaonError (bad manifest, a bookkeeping bug) is not retried. A long activity heartbeats while it runs, so a lost
 * worker is noticed at the heartbeat timeout, not at the 30-minute start-to-close.
 */
function internal<A extends unknown[], R>(fn: (...a: A) => Promise<R>, long = false): (...a: A) => Promise<R> {
  return async (...a) => {
    const timer = long ? setInterval(() => Context.current().heartbeat(), MAP_HEARTBEAT_MS) : undefined;
    try {
      return await fn(...a);
    } catch (err) {
      if (err instanceof KaonError) throw ApplicationFailure.create({ type: err.code, message: err.message, nonRetryable: !err.retryable });
      throw err;
    } finally {
      if (timer) clearInterval(timer);
    }
  };
}

/** Kaon's own activities behind k.map: plan a manifest, stage inline inputs, write results, find an earlier run's results. */
export function createMapActivities(store: ArtifactStore): Record<string, (arg: never) => Promise<unknown>> {
  const beat = () => Context.current().heartbeat();
  return {
    [MapActivity.plan]: internal((a: { ref: ArtifactRef; sliceItems: number }) => planManifest(store, a.ref, a.sliceItems), true),
    [MapActivity.stage]: internal((c: StageCall): Promise<ArtifactRef> => stageInputs(store, c), true),
    [MapActivity.slice]: internal(async (c: SliceCall) => (await readSlice(store, c.ref, c.offset, c.count)).map((item, k) => applyTemplate(c.template, item, c.start + k))),
    [MapActivity.pool]: internal((c: { lines: SweepLine[] }): Promise<BlobRef> => writeLines(store, c.lines)),
    [MapActivity.assemble]: internal((c: AssembleCall): Promise<WrittenResults> => assembleResults(store, c, beat), true),
    [MapActivity.write]: internal((c: WriteCall): Promise<WrittenResults> => writeResults(store, c, beat), true),
    [MapActivity.prior]: internal(async (a: { shardId: string }): Promise<ResultPart | null> => (await readPrior(store, a.shardId)) ?? null),
  };
}
