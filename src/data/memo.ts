import { z } from 'zod';
import { ArtifactRef, isArtifactRef } from '../definition/artifact-ref';
import { ErrorCode, KaonError } from '../definition/errors';
import { canonicalJson, sha256Hex } from './canonical';
import { mapLimit } from './lineage';
import { keySegment } from './names';
import type { ArtifactStore } from './store';

export interface MemoKeyInput {
  /** The step's name. */
  step: string;
  /** The step's version: bumping it invalidates every earlier output. */
  version: string | number;
  /** The step's input (after parsing). ArtifactRefs inside count by their sha256 only. */
  input: unknown;
  /** Extra salt (a step's `cache.version`). */
  salt?: string | number;
}

/**
 * The memo key of a step call: sha256 of canonical JSON (sorted keys, no undefined) of step, version, salt and
 * input, where an ArtifactRef counts by its sha256 alone — the same bytes from different runs give the same key.
 */
export function memoKey(k: MemoKeyInput): string {
  return sha256Hex(canonicalJson({ kaon: 'memo/1', step: k.step, version: k.version, salt: k.salt, input: k.input }));
}

export const MemoEntry = z.object({
  key: z.string(),
  /** The step's name (what `clear({ step })` matches). */
  step: z.string(),
  /** The step key in the run that computed it, e.g. `train[US]`. */
  stepKey: z.string(),
  runId: z.string(),
  output: z.unknown(),
  /** Artifacts the output depends on; the entry is a hit only while all of them (and any ref inside output) exist. */
  refs: z.array(ArtifactRef),
  createdAt: z.string(),
});
export type MemoEntry = z.infer<typeof MemoEntry>;

export interface MemoPut {
  output: unknown;
  refs?: ArtifactRef[];
  runId: string;
  stepKey: string;
  /** Default: the step key without its `[…]`/`#n` suffix. */
  step?: string;
  /** Default: now. */
  createdAt?: Date | string;
}

/**
 * Step outputs by memo key, kept in the artifact store's backend. One mechanism for cross-run caching and for
 * resuming a failed run. Layout:
 *   memo/entries/<key>.json           the entry
 *   memo/steps/<step>/<key>.json      index for clear({ step })
 */
export interface MemoTable {
  /**
   * The entry, if there is one and every artifact it refers to still exists (else a miss). The caller (the step
   * activity) also checks the output against the step's current output schema: a stale one is a miss too.
   */
  get(key: string): Promise<MemoEntry | undefined>;
  put(key: string, entry: MemoPut): Promise<MemoEntry>;
  delete(key: string): Promise<boolean>;
  /** Delete every entry (of one step); returns how many entries were deleted. */
  clear(opts?: { step?: string }): Promise<number>;
}

const KEY = /^[0-9a-f]{64}$/;

function checkKey(key: unknown, where: string): string {
  if (typeof key === 'string' && KEY.test(key)) return key;
  throw new KaonError({ code: ErrorCode.badInput, what: `memo key ${JSON.stringify(key)} is not a sha256`, where, fix: 'compute keys with memoKey({ step, version, input })' });
}

/** Every ArtifactRef inside a JSON value. */
export function findArtifactRefs(value: unknown, out: ArtifactRef[] = []): ArtifactRef[] {
  if (isArtifactRef(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) findArtifactRefs(v, out);
  else if (typeof value === 'object' && value !== null) for (const v of Object.values(value)) findArtifactRefs(v, out);
  return out;
}

const entryKey = (key: string): string => `memo/entries/${key}.json`;
const indexKey = (step: string, key: string): string => `memo/steps/${keySegment(step)}/${key}.json`;

export function createMemoTable(store: Pick<ArtifactStore, 'records' | 'exists'>): MemoTable {
  const records = store.records;

  async function read(key: string): Promise<MemoEntry | undefined> {
    const raw = await records.get(entryKey(key)).catch(() => undefined);
    const parsed = MemoEntry.safeParse(raw);
    return parsed.success ? parsed.data : undefined; // an unreadable entry is a miss; the next put replaces it
  }

  async function allExist(refs: ArtifactRef[]): Promise<boolean> {
    const unique = [...new Map(refs.map((r) => [`${r.sha256}:${r.size}`, r])).values()];
    const found = await mapLimit(unique, 16, (r) => store.exists(r).catch(() => false));
    return found.every(Boolean);
  }

  async function removeEntry(key: string, step: string | undefined): Promise<boolean> {
    const existed = await records.delete(entryKey(key));
    if (step !== undefined) await records.delete(indexKey(step, key));
    return existed;
  }

  return {
    async get(keyIn) {
      const key = checkKey(keyIn, 'memo get');
      const entry = await read(key);
      if (!entry) return undefined;
      return (await allExist([...entry.refs, ...findArtifactRefs(entry.output)])) ? entry : undefined;
    },

    async put(keyIn, e) {
      const key = checkKey(keyIn, 'memo put');
      const step = e.step ?? e.stepKey.replace(/[[#].*$/s, '');
      const entry = MemoEntry.parse({
        key,
        step,
        stepKey: e.stepKey,
        runId: e.runId,
        output: e.output,
        refs: e.refs ?? [],
        createdAt: (e.createdAt instanceof Date ? e.createdAt : new Date(e.createdAt ?? Date.now())).toISOString(),
      });
      // Index first: an entry is then always reachable by clear({ step }), even if the second write never happens.
      await records.put(indexKey(step, key), { key });
      await records.put(entryKey(key), entry);
      return entry;
    },

    async delete(keyIn) {
      const key = checkKey(keyIn, 'memo delete');
      const entry = await read(key);
      return removeEntry(key, entry?.step);
    },

    async clear(opts = {}) {
      if (opts.step !== undefined) {
        const keys = (await records.list(`memo/steps/${keySegment(opts.step)}/`)).map((k) => k.split('/').pop()!.replace(/\.json$/, ''));
        const removed = await mapLimit(keys, 16, (key) => removeEntry(key, opts.step));
        return removed.filter(Boolean).length;
      }
      const all = await records.list('memo/');
      const removed = await mapLimit(all, 16, (k) => records.delete(k).then((existed) => existed && k.startsWith('memo/entries/')));
      return removed.filter(Boolean).length;
    },
  };
}
