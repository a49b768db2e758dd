import { z } from 'zod';
import { ArtifactRef, Producer } from '../definition/artifact-ref';
import type { RecordStore } from './backend';
import { canonicalJson, sha256Hex } from './canonical';
import { keySegment } from './names';

/** An input of a put, as lineage remembers it: the bytes (sha256) and where they were when used. */
export const LineageInput = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  uri: z.string(),
  name: z.string().optional(),
});
export type LineageInput = z.infer<typeof LineageInput>;

/** One put: these bytes (`ref`) were produced by `producer` from `inputs`. The same bytes may have many records. */
export const LineageRecord = z.object({
  ref: ArtifactRef,
  producer: Producer,
  inputs: z.array(LineageInput),
  createdAt: z.string(),
});
export type LineageRecord = z.infer<typeof LineageRecord>;

/**
 * Record layout (every record is the full LineageRecord, so each query is one listing plus small reads):
 *   lineage/<sha256>/<id>.json                 what produced these bytes
 *   used-by/<input sha256>/<sha256>-<id>.json   what was produced from these bytes
 *   runs/<runId>/<sha256>-<id>.json             what a run produced
 * `id` hashes producer, name, media type and inputs: a retried put of the same thing overwrites its record,
 * a different step producing the same bytes adds one.
 */
export function lineageId(rec: Pick<LineageRecord, 'ref' | 'producer' | 'inputs'>): string {
  return sha256Hex(canonicalJson({
    producer: rec.producer,
    name: rec.ref.name,
    mediaType: rec.ref.mediaType,
    inputs: rec.inputs.map((i) => i.sha256).sort(),
  })).slice(0, 32);
}

export async function writeLineage(records: RecordStore, rec: LineageRecord): Promise<void> {
  const id = lineageId(rec);
  const sha = rec.ref.sha256;
  const inputShas = [...new Set(rec.inputs.map((i) => i.sha256))];
  await Promise.all([
    records.put(`lineage/${sha}/${id}.json`, rec),
    records.put(`runs/${keySegment(rec.producer.runId)}/${sha}-${id}.json`, rec),
    ...inputShas.map((input) => records.put(`used-by/${input}/${sha}-${id}.json`, rec)),
  ]);
}

/** The identity of one attempt of a step, as its artifacts' producer names it. */
export function attemptKey(p: Producer): string {
  return JSON.stringify([p.pipeline, p.runId, p.step, p.attempt]);
}

/**
 * The lineage records of one step attempt, held back until the attempt succeeds: a failed attempt (a bad output,
 * a refused artifact name, a crash) leaves blobs, which are content-addressed and harmless, but no record that
 * lists them as what its run produced. `commit` writes them all; `discard` drops them.
 */
export interface HeldLineage {
  commit(): Promise<void>;
  discard(): void;
  /** How many records are held (tests, logs). */
  readonly size: number;
}

/** Where a store keeps the records of attempts in progress (one per store). */
export class LineageHolds {
  private readonly held = new Map<string, LineageRecord[]>();

  constructor(private readonly records: RecordStore) {}

  /** Hold every record whose producer is `producer` until commit or discard. */
  hold(producer: Producer): HeldLineage {
    const key = attemptKey(producer);
    const recs: LineageRecord[] = [];
    this.held.set(key, recs);
    const release = () => {
      if (this.held.get(key) === recs) this.held.delete(key);
    };
    return {
      commit: async () => {
        release();
        await mapLimit(recs, 8, (r) => writeLineage(this.records, r));
      },
      discard: () => {
        release();
        recs.length = 0;
      },
      get size() {
        return recs.length;
      },
    };
  }

  /** Record `rec` now, or keep it with its attempt's held records. */
  async write(rec: LineageRecord): Promise<void> {
    const recs = this.held.get(attemptKey(rec.producer));
    if (recs) recs.push(rec);
    else await writeLineage(this.records, rec);
  }
}

/** Run `fn` over `items`, at most `limit` at a time (S3 listings can be long; don't open hundreds of requests). */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Every lineage record under a prefix, oldest first. Records that do not parse are skipped. */
export async function readLineage(records: RecordStore, prefix: string): Promise<LineageRecord[]> {
  const keys = (await records.list(prefix)).filter((k) => k.endsWith('.json'));
  const values = await mapLimit(keys, 16, (k) => records.get(k));
  return values
    .map((v) => LineageRecord.safeParse(v))
    .flatMap((r) => (r.success ? [r.data] : []))
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.ref.sha256.localeCompare(b.ref.sha256));
}
