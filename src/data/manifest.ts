// JSON-lines manifests for sweeps: the items going in (one JSON value per line) and the results coming out
// (line i is item i's result). Reads stream; a slice starts at a byte offset found once by planManifest.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { ArtifactRef } from '../definition/artifact-ref';
import { ErrorCode, KaonError } from '../definition/errors';
import { applyTemplate, SLICE_ITEMS, type AssembleCall, type BlobRef, type CallSlice, type StageCall, type SweepCounts, type WriteCall, type WrittenResults, type ResultPart } from '../definition/internal/map';
import { isSweep, type Sweep, type SweepLine } from '../definition/sweep';
import { keySegment } from './names';
import type { ArtifactStore } from './store';

export const RESULTS_MEDIA_TYPE = 'application/x-ndjson';

type Store = Pick<ArtifactStore, 'getPath' | 'getStream' | 'put' | 'putBlob' | 'records'>;

function badManifest(ref: ArtifactRef, what: string, fix: string): KaonError {
  return new KaonError({ code: ErrorCode.badInput, what: `items manifest ${ref.name ? `"${ref.name}" ` : ''}${ref.uri} ${what}`, fix });
}

// A verified local copy per blob, once per process: slices then read byte ranges without re-hashing the file.
const verified = new Map<string, Promise<string>>();
function localPath(store: Pick<ArtifactStore, 'getPath'>, ref: ArtifactRef): Promise<string> {
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
export async function readSlice(store: Pick<ArtifactStore, 'getPath'>, ref: ArtifactRef, offset: number, count: number): Promise<unknown[]> {
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

const missingLine = (i: number, m: { status: 'cancelled' | 'skipped'; error: string }): SweepLine => ({ i, ok: false, status: m.status, error: m.error });
const toText = (l: SweepLine): string => `${JSON.stringify(l)}\n`;

/** An ArtifactRef for a blob Kaon wrote for itself, so the verified readers can read it. */
export function blobArtifact(b: BlobRef): ArtifactRef {
  return { kind: 'kaon.artifact', uri: b.uri, sha256: b.sha256, size: b.size, mediaType: RESULTS_MEDIA_TYPE, producer: { pipeline: 'kaon', runId: 'kaon', step: 'kaon.map', attempt: 1 } };
}

/** Write lines as an internal blob (a call's part, a shard's pool). */
export async function writeLines(store: Pick<ArtifactStore, 'putBlob'>, lines: readonly SweepLine[]): Promise<BlobRef> {
  return store.putBlob({ bytes: lines.map(toText).join('') });
}

/** A bug in Kaon's own bookkeeping: never retried, never papered over with a placeholder. */
function bookkeepingBug(what: string): KaonError {
  return new KaonError({ code: ErrorCode.internal, what: `sweep results: ${what}`, fix: 'this is a bug in Kaon; report it with the run id. No result line was replaced or dropped: the write was refused', retryable: false });
}

/** Counts of a results manifest as it is written: what the file says is what the sweep reports. */
class Counter {
  readonly counts: Required<SweepCounts> = { succeeded: 0, failed: 0, cached: 0, notRun: 0, resumed: 0 };
  private next: number;
  constructor(start: number) {
    this.next = start;
  }
  /** Check line order (line i is item i) and count it. */
  add(l: SweepLine): string {
    if (l.i !== this.next) throw bookkeepingBug(`line for item ${l.i} where item ${this.next} belongs`);
    this.next++;
    if (l.ok) {
      this.counts.succeeded++;
      if (l.cached) this.counts.cached++;
      if (l.resumed) this.counts.resumed++;
    } else if (l.status === 'failed') this.counts.failed++;
    else this.counts.notRun++;
    return toText(l);
  }
  get at(): number {
    return this.next;
  }
}

/** Gather text into ~1 MiB chunks for the store's stream. */
async function* chunked(source: AsyncIterable<string>): AsyncGenerator<string> {
  let buf = '';
  for await (const t of source) {
    buf += t;
    if (buf.length > 1 << 20) {
      yield buf;
      buf = '';
    }
  }
  if (buf) yield buf;
}

/**
 * Write a shard's results manifest. Call c covers items [start + c·batch, …): its lines come from its own part,
 * else from the pools (inline lines the shard flushed) and held lines, else `missing`. A line is never replaced:
 * an item with two lines, or a part whose lines are not exactly its call's items, is refused as a bug.
 */
export async function assembleResults(store: Store, call: AssembleCall, beat?: () => void): Promise<WrittenResults> {
  const pooled = new Map<number, SweepLine>();
  const place = (l: SweepLine) => {
    if (l.i < call.start || l.i >= call.end) throw bookkeepingBug(`a pooled line for item ${l.i}, outside the shard's items ${call.start}–${call.end - 1}`);
    if (pooled.has(l.i)) throw bookkeepingBug(`two lines for item ${l.i}`);
    pooled.set(l.i, l);
  };
  for (const p of call.pools) for await (const l of readResults(store, blobArtifact(p))) place(l);
  for (const l of call.lines) place(l);
  const parts = new Map<number, BlobRef>();
  for (const { c, part } of call.parts) {
    if (parts.has(c)) throw bookkeepingBug(`two parts for call ${c}`);
    parts.set(c, part);
  }
  const counter = new Counter(call.start);
  async function* lines(): AsyncGenerator<string> {
    const calls = Math.ceil((call.end - call.start) / call.batch);
    for (let c = 0; c < calls; c++) {
      const first = call.start + c * call.batch;
      const last = Math.min(call.end, first + call.batch);
      const part = parts.get(c);
      if (part) {
        for await (const l of readResults(store, blobArtifact(part))) {
          if (pooled.has(l.i)) throw bookkeepingBug(`item ${l.i} has a line in its call's part and in a pool`);
          yield counter.add(l);
        }
        if (counter.at !== last) throw bookkeepingBug(`the part of call ${c} ends at item ${counter.at - 1}, not ${last - 1}`);
        beat?.();
        continue;
      }
      for (let i = first; i < last; i++) yield counter.add(pooled.get(i) ?? missingLine(i, call.missing));
    }
  }
  const ref = await store.put({ stream: Readable.from(chunked(lines())) }, { name: call.name, mediaType: RESULTS_MEDIA_TYPE, producer: call.producer });
  if (call.record) await store.records.put(priorKey(call.record), { ref, start: call.start, end: call.end });
  return { ref, ...counter.counts };
}

/** Concatenate ordered shard manifests into one; each part must hold exactly its range's lines. */
export async function writeResults(store: Store, call: WriteCall, beat?: () => void): Promise<WrittenResults> {
  const counter = new Counter(call.start);
  const ranges = [...call.parts.map((p) => ({ ...p, kind: 'part' as const })), ...(call.failed ?? []).map((f) => ({ ...f, kind: 'failed' as const }))].sort((a, b) => a.start - b.start);
  async function* lines(): AsyncGenerator<string> {
    for (const r of ranges) {
      if (r.start < counter.at) throw bookkeepingBug(`results for items ${r.start}–${r.end - 1} overlap earlier ones`);
      while (counter.at < r.start) yield counter.add(missingLine(counter.at, call.missing));
      if (r.kind === 'failed') {
        while (counter.at < r.end) yield counter.add({ i: counter.at, ok: false, status: 'failed', error: r.error });
        continue;
      }
      for await (const l of readResults(store, r.ref)) yield counter.add(l);
      if (counter.at !== r.end) throw bookkeepingBug(`the results of items ${r.start}–${r.end - 1} end at item ${counter.at - 1}`);
      beat?.();
    }
    while (counter.at < call.end) yield counter.add(missingLine(counter.at, call.missing));
  }
  const ref = await store.put({ stream: Readable.from(chunked(lines())) }, { name: call.name, mediaType: RESULTS_MEDIA_TYPE, producer: call.producer });
  return { ref, ...counter.counts };
}

/** Stage inline inputs as a JSON-lines manifest (one call per chunk), or join staged chunks in order. */
export async function stageInputs(store: Store, call: StageCall): Promise<ArtifactRef> {
  const meta = { name: call.name, mediaType: RESULTS_MEDIA_TYPE, producer: call.producer };
  if ('inputs' in call) return store.put({ bytes: call.inputs.map((v) => `${JSON.stringify(v ?? null)}\n`).join('') }, meta);
  const parts = call.join;
  async function* joined(): AsyncGenerator<Buffer> {
    for (const r of parts) for await (const chunk of await store.getStream(r)) yield chunk as Buffer;
  }
  return store.put({ stream: Readable.from(joined()) }, meta);
}

/** Parsed manifest slices, per process: a batch-1 sweep's thousand calls of one slice read it once. */
const slices = new Map<string, Promise<unknown[]>>();
function cachedSlice(store: Pick<ArtifactStore, 'getPath'>, ref: ArtifactRef, offset: number): Promise<unknown[]> {
  const id = `${ref.sha256}:${offset}`;
  let p = slices.get(id);
  if (!p) {
    p = readSlice(store, ref, offset, SLICE_ITEMS);
    p.catch(() => slices.delete(id));
    slices.set(id, p);
    if (slices.size > 8) slices.delete(slices.keys().next().value as string);
  }
  return p;
}

/** The inputs of one call's items, read from the manifest and filled into the template. */
export async function readCallItems(store: Pick<ArtifactStore, 'getPath'>, s: CallSlice): Promise<{ i: number; input: unknown }[]> {
  const loaded = await Promise.all(s.offsets.map((o) => cachedSlice(store, s.ref, o)));
  const out: { i: number; input: unknown }[] = [];
  for (let k = 0; k < s.count; k++) {
    const i = s.first + k;
    const at = i - s.sliceStart;
    const slice = loaded[Math.floor(at / SLICE_ITEMS)];
    const line = at >= 0 && slice ? slice[at % SLICE_ITEMS] : undefined;
    if (line === undefined) throw bookkeepingBug(`item ${i} is not in the manifest slices at bytes ${s.offsets.join(', ')} (from item ${s.sliceStart})`);
    out.push({ i, input: applyTemplate(s.template, line, i) });
  }
  return out;
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
