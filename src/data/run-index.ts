import { keySegment } from './names';
import type { RecordStore } from './backend';

/** Which memo key each step key of a run produced. Resume compares a new run's keys with an old run's. */
export interface RunIndexEntry {
  stepKey: string;
  step: string;
  key: string;
}

export interface RunIndex {
  record(runId: string, entry: RunIndexEntry): Promise<void>;
  lookup(runId: string, stepKey: string): Promise<RunIndexEntry | undefined>;
  list(runId: string): Promise<RunIndexEntry[]>;
}

const prefix = (runId: string) => `memo/runs/${keySegment(runId)}/`;

export function createRunIndex(records: RecordStore): RunIndex {
  const read = async (k: string): Promise<RunIndexEntry | undefined> => {
    const v = (await records.get(k).catch(() => undefined)) as RunIndexEntry | undefined;
    return v && typeof v.key === 'string' && typeof v.stepKey === 'string' ? v : undefined;
  };
  return {
    record: (runId, entry) => records.put(`${prefix(runId)}${keySegment(entry.stepKey)}.json`, entry),
    lookup: (runId, stepKey) => read(`${prefix(runId)}${keySegment(stepKey)}.json`),
    async list(runId) {
      const keys = await records.list(prefix(runId));
      const entries = await Promise.all(keys.map((k) => read(k.startsWith(prefix(runId)) ? k : `${prefix(runId)}${k}`)));
      return entries.filter((e): e is RunIndexEntry => e !== undefined);
    },
  };
}
