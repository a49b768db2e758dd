// JSON-lines manifests for sweeps: the items going in (one JSON value per line) and the results coming out
// (line i is item i's result). Reads stream; a slice starts at a byte offset found once by planManifest.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { ArtifactRef } from '../definition/artifact-ref';
import { ErrorCode, KaonError } from '../definition/errors';
import type { ResultPart, WriteCall } from '../definition/internal/map';
import { isSweep, type Sweep, type SweepLine } from '../definition/sweep';
import { keySegment } from './names';
import type { ArtifactStore } from './store';

export const RESULTS_MEDIA_TYPE = 'application/x-ndjson';

type Store = Pick<ArtifactStore, 'getPath' | 'getStream' | 'put' | 'records'>;

function badManifest(ref: ArtifactRef, what: string, fix: string): KaonError {
  return new KaonError({ code: ErrorCode.badInput, what: `items manifest ${ref.name ? `"${ref.name}" ` : ''}${ref.uri} ${what}`, fix });
}

// A verified local copy per blob, once per process: slices then read byte ranges without re-hashing the file.
const verified = new Map<string, Promise<string>>();
function localPath(store: Store, ref: ArtifactRef): Promise<string> {
  let p = verified.get(ref.sha256);
  if (!p) {
    p = store.getPath(ref);
    p.catch(() => verified.delete(ref.sha256));
    verified.set(ref.sha256, p);
    if (verified.size > 64) verified.delete(verified.keys().next().value as string);
  }
  return p;
}

/** Lines of a file from byte `start`, with each line's exact byte length (its newline included). */
async function* lines(file: string, start = 0): AsyncGenerator<{ text: string; bytes: number }> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(file, { start, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let buf = rest.length ? Buffer.concat([rest, chunk]) : chunk;
    let nl: number;
    while ((nl = buf.indexOf(10)) >= 0) {
      const end = nl > 0 && buf[nl - 1] === 13 ? nl - 1 : nl;
      yield { text: buf.toString('utf8', 0, end), bytes: nl + 1 };
      buf = buf.subarray(nl + 1);
    }
    rest = Buffer.from(buf);
  }
  if (rest.length) yield { text: rest.toString('utf8').replace(/\r$/, ''), bytes: rest.length };
}

/** Count the items, check every line is JSON, and find the byte offset of every `sliceItems`-th line. */
export async function planManifest(store: Store, ref: ArtifactRef, sliceItems: number): Promise<{ total: number; offsets: number[] }> {
  const file = await localPath(store, ref);
  const offsets: number[] = [];
  let pos = 0;
  let n = 0;
  for await (const { text, bytes } of lines(file)) {
    if (n % sliceItems === 0) offsets.push(pos);
    if (text.trim() === '') throw badManifest(ref, `has an empty line ${n + 1}`, 'write one JSON value per line, with no blank lines (line i is item i)');
    try {
      JSON.parse(text);
    } catch (err) {
      throw badManifest(ref, `line ${n + 1} is not JSON (${(err as Error).message}): ${text.slice(0, 80)}`, 'write one JSON value per line (JSON.stringify(item) + "\\n")');
    }
    pos += bytes;
    n++;
  }
  return { total: n, offsets };
}

/** `count` items starting at byte `offset` (a slice start found by planManifest). */
export async function readSlice(store: Store, ref: ArtifactRef, offset: number, count: number): Promise<unknown[]> {
  const file = await localPath(store, ref);
  const out: unknown[] = [];
  for await (const { text } of lines(file, offset)) {
    if (out.length >= count) break;
    out.push(JSON.parse(text));
  }
  return out;
}

/** Every line of a results manifest, in order. */
export async function* readResults<O = unknown>(store: Pick<ArtifactStore, 'getStream'>, ref: ArtifactRef): AsyncGenerator<SweepLine<O>> {
  const rl = createInterface({ input: await store.getStream(ref), crlfDelay: Infinity });
  for await (const text of rl) if (text !== '') yield JSON.parse(text) as SweepLine<O>;
}

/** The typed reader of a sweep's results: `for await (const line of readSweep(store, sweep))`. */
export function readSweep<O>(store: Pick<ArtifactStore, 'getStream'>, sweep: Sweep<O>): AsyncGenerator<SweepLine<O>> {
  if (!isSweep(sweep)) {
    throw new KaonError({ code: ErrorCode.badInput, what: 'readSweep needs a Sweep (what k.map returns)', fix: 'pass the value k.map returned, e.g. a step input declared with the Sweep schema' });
  }
  return readResults<O>(store, sweep.results);
}

const missingLine = (i: number, m: WriteCall['missing']): SweepLine => ({ i, ok: false, status: m.status, error: m.error });
const toText = (l: SweepLine): string => `${JSON.stringify(l)}\n`;

/** Write a results manifest for items [start, end): parts and lines in item order, gaps filled. */
export async function writeResults(store: Store, call: WriteCall): Promise<ArtifactRef> {
  async function* collect(): AsyncGenerator<string> {
    const slots: (SweepLine | undefined)[] = new Array(call.end - call.start);
    const place = (l: SweepLine) => {
      if (l.i >= call.start && l.i < call.end) slots[l.i - call.start] = l;
    };
    for (const p of call.parts) for await (const l of readResults(store, p.ref)) place(l);
    for (const l of call.lines ?? []) place(l);
    for (let k = 0; k < slots.length; k++) yield toText(slots[k] ?? missingLine(call.start + k, call.missing));
  }
  async function* concat(): AsyncGenerator<string> {
    let at = call.start;
    const parts: ResultPart[] = [...call.parts].sort((a, b) => a.start - b.start);
    for (const p of parts) {
      for (; at < p.start; at++) yield toText(missingLine(at, call.missing));
      let buf = '';
      for await (const l of readResults(store, p.ref)) {
        buf += toText(l);
        if (buf.length > 1 << 20) {
          yield buf;
          buf = '';
        }
      }
      if (buf) yield buf;
      at = Math.max(at, p.end);
    }
    for (; at < call.end; at++) yield toText(missingLine(at, call.missing));
  }
  const ref = await store.put({ stream: Readable.from(call.mode === 'collect' ? collect() : concat()) }, { name: call.name, mediaType: RESULTS_MEDIA_TYPE, producer: call.producer });
  if (call.record) await store.records.put(priorKey(call.record), { ref, start: call.start, end: call.end });
  return ref;
}

const priorKey = (shardId: string) => `sweeps/${keySegment(shardId)}.json`;

/** The results an earlier run's shard recorded, for a resume. */
export async function readPrior(store: Store, shardId: string): Promise<ResultPart | undefined> {
  const v = (await store.records.get(priorKey(shardId)).catch(() => undefined)) as ResultPart | undefined;
  return v && typeof v.start === 'number' && typeof v.end === 'number' && typeof v.ref === 'object' ? v : undefined;
}

// Earlier results by line, cached per process: a resumed shard's calls look up their items one by one.
const priorLines = new Map<string, Promise<Map<number, SweepLine>>>();
export function priorLine(store: Pick<ArtifactStore, 'getStream'>, ref: ArtifactRef, i: number): Promise<SweepLine | undefined> {
  let p = priorLines.get(ref.sha256);
  if (!p) {
    p = (async () => {
      const m = new Map<number, SweepLine>();
      for await (const l of readResults(store, ref)) m.set(l.i, l);
      return m;
    })();
    p.catch(() => priorLines.delete(ref.sha256));
    priorLines.set(ref.sha256, p);
    if (priorLines.size > 16) priorLines.delete(priorLines.keys().next().value as string);
  }
  return p.then((m) => m.get(i));
}
