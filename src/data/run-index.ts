import type { ArtifactRef } from '../definition/artifact-ref';
import { keySegment } from './names';
import type { RecordStore } from './backend';

/** What step key `stepKey` of a run computed: its memo key (step, version, input) and its output. */
export interface RunIndexEntry {
  stepKey: string;
  step: string;
  key: string;
  output: unknown;
  refs: ArtifactRef[];
}

/**
 * Per-run step records, the basis of resume: a new run reuses an old run's output for a step key when the
 * memo keys match. Writes are write-behind — a step does not wait for its record — because a lost record only
 * means a step is recomputed on resume. Reads in the same process wait for pending writes (read-your-writes);
 * flush() waits for all of them (the worker calls it on shutdown).
 */
export interface RunIndex {
  record(runId: string, entry: RunIndexEntry): void;
  lookup(runId: string, stepKey: string): Promise<RunIndexEntry | undefined>;
  list(runId: string): Promise<RunIndexEntry[]>;
  flush(): Promise<void>;
}

const prefix = (runId: string) => `memo/runs/${keySegment(runId)}/`;

export function createRunIndex(records: RecordStore, onError: (err: unknown, entry: RunIndexEntry) => void = () => undefined): RunIndex {
  const pending = new Map<string, Promise<void>>();
  const read = async (k: string): Promise<RunIndexEntry | undefined> => {
    await pending.get(k);
    const v = (await records.get(k).catch(() => undefined)) as RunIndexEntry | undefined;
    return v && typeof v.key === 'string' && typeof v.stepKey === 'string' && Array.isArray(v.refs) ? v : undefined;
  };
  return {
    record(runId, entry) {
      const k = `${prefix(runId)}${keySegment(entry.stepKey)}.json`;
      const write = (pending.get(k) ?? Promise.resolve())
        .then(() => records.put(k, entry))
        .catch((err: unknown) => onError(err, entry))
        .finally(() => {
          if (pending.get(k) === write) pending.delete(k);
        });
      pending.set(k, write);
    },
    lookup: (runId, stepKey) => read(`${prefix(runId)}${keySegment(stepKey)}.json`),
    async list(runId) {
      const keys = await records.list(prefix(runId));
      const entries = await Promise.all(keys.map((k) => read(k.startsWith(prefix(runId)) ? k : `${prefix(runId)}${k}`)));
      return entries.filter((e): e is RunIndexEntry => e !== undefined);
    },
    async flush() {
      while (pending.size > 0) await Promise.all([...pending.values()]);
    },
  };
}
