// The board's index of sweep results: a k.map results manifest (line k is item start + k) scanned once per sha256
// into a compact index — each line's byte offset, its state, and for a failure its error signature — so any page,
// filtered or not, is then O(page): positional reads of its own lines. A sweep is a list of segments (the whole
// results manifest, or while it runs one per shard, with no manifest yet for the shards still running).
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { ArtifactRef } from '../../definition/artifact-ref';
import { shortHash } from '../../definition/internal/ids';
import type { SweepLine } from '../../definition/sweep';

/** State codes (low 3 bits) and flags of an item in the index. */
const OK = 0;
const FAILED = 1;
const SKIPPED = 2;
const CANCELLED = 3;
const PENDING = 4;
const CACHED = 8;
const RESUMED = 16;
const STATE_NAMES = ['ok', 'failed', 'skipped', 'cancelled', 'pending'] as const;

export type ItemState = (typeof STATE_NAMES)[number];
/** What the item table filters by: `not-run` is skipped or cancelled; `cached` is ok and reused. */
export const STATE_FILTERS = ['ok', 'failed', 'not-run', 'cached', 'pending'] as const;
export type StateFilter = (typeof STATE_FILTERS)[number];

/** Distinct error signatures kept per manifest; the rest are counted under one "other errors" signature. */
const MAX_SIGNATURES = 500;
const OTHER = '(other errors)';

export interface Signature {
  /** A short stable hash of `text`: the filter's value. */
  id: string;
  /** The normalized first line of the error (numbers and ids stripped). */
  text: string;
  count: number;
  /** The first item with it, and its error as written. */
  first: number;
  example: string;
}

export interface ResultsIndex {
  sha256: string;
  /** The verified local file it was scanned from (pages read their lines there). */
  file: string;
  lines: number;
  /** Byte offset of each line, and the file's length last (lines + 1 entries). */
  offsets: Float64Array;
  codes: Uint8Array;
  /** Per line: its signature's position in `signatures`, or -1. */
  sigs: Int32Array;
  signatures: Signature[];
  counts: Counts;
  scanMs: number;
}

export interface Counts {
  ok: number;
  failed: number;
  skipped: number;
  cancelled: number;
  pending: number;
  cached: number;
  resumed: number;
}

/** Items [start, end) of a sweep: their results manifest, or none yet (the items are pending). */
export interface Segment {
  start: number;
  end: number;
  ref?: ArtifactRef | undefined;
}

export interface PageQuery {
  state?: StateFilter | undefined;
  /** A signature id: only the failures with that signature. */
  sig?: string | undefined;
  offset: number;
  limit: number;
}

export interface SweepRow {
  i: number;
  state: ItemState;
  cached?: boolean;
  resumed?: boolean;
  /** The output (artifact refs shortened) or the error's first line, cut to a table cell. */
  preview: string;
}

export interface SweepPage {
  total: number;
  counts: Counts;
  /** Items that match the filter (all items without one). */
  matched: number;
  offset: number;
  limit: number;
  rows: SweepRow[];
  /** Failures grouped by signature, most frequent first. */
  signatures: Signature[];
  /** Time spent scanning manifests not indexed before this request. */
  scanMs: number;
}

/**
 * The signature of an error: its telling line (a traceback's last `XxxError: …` line, else the first line), "To
 * fix: …" cut, ids and numbers replaced by `<id>` and `#`, so `ValueError: bad config 17` and `… 3` group together.
 */
export function errorSignature(error: string): string {
  const lines = error.split('\n').map((l) => l.trim()).filter(Boolean);
  const told = [...lines].reverse().find((l) => /^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b:/.test(l)) ?? lines[0] ?? '(no message)';
  const text = told
    .replace(/\s*To fix:.*$/i, '')
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '<id>')
    .replace(/\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b/gi, '<id>')
    .replace(/(?<![A-Za-z_0-9])\d+(?:\.\d+)?/g, '#')
    .replace(/\s+/g, ' ')
    .trim();
  return text.length > 160 ? `${text.slice(0, 159)}…` : text || '(no message)';
}

const newCounts = (): Counts => ({ ok: 0, failed: 0, skipped: 0, cancelled: 0, pending: 0, cached: 0, resumed: 0 });

function grow<T extends Float64Array | Uint8Array | Int32Array>(a: T, n: number): T {
  if (n < a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(1024, a.length * 2));
  b.set(a);
  return b;
}

/** Each line of a file, as byte ranges [start, end) without the newline, streamed in 1 MiB chunks. */
async function eachLine(file: string, fn: (buf: Buffer, start: number, end: number, at: number) => void): Promise<number> {
  let rest: Buffer = Buffer.alloc(0);
  let base = 0; // file offset of rest[0]
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    const buf = rest.length ? Buffer.concat([rest, chunk]) : chunk;
    let from = 0;
    let nl: number;
    while ((nl = buf.indexOf(10, from)) >= 0) {
      fn(buf, from, nl > from && buf[nl - 1] === 13 ? nl - 1 : nl, base + from);
      from = nl + 1;
    }
    rest = Buffer.from(buf.subarray(from));
    base += from;
  }
  if (rest.length) fn(rest, 0, rest.length, base);
  return base + rest.length;
}

/** Scan a results manifest once: offsets, states, signatures, counts. */
export async function scanResults(file: string, sha256: string): Promise<ResultsIndex> {
  const t0 = performance.now();
  let offsets = new Float64Array(1024);
  let codes = new Uint8Array(1024);
  let sigs = new Int32Array(1024);
  const signatures: Signature[] = [];
  const sigAt = new Map<string, number>();
  const counts = newCounts();
  let n = 0;
  const okHead = Buffer.from('"ok":true');
  const flagged = [Buffer.from('"cached":true'), Buffer.from('"resumed":true')];
  const end = await eachLine(file, (buf, s, e, at) => {
    if (e === s) return; // a trailing empty line
    offsets = grow(offsets, n + 1);
    codes = grow(codes, n);
    sigs = grow(sigs, n);
    offsets[n] = at;
    sigs[n] = -1;
    // Most lines succeeded: `{"i":…,"ok":true,…}` with no flag is known without parsing its output.
    // (Searches stay within the line: a search past it would make the scan quadratic.)
    const bytes = buf.subarray(s, e);
    if (bytes.subarray(0, 32).includes(okHead) && !flagged.some((f) => bytes.includes(f))) {
      codes[n] = OK;
      counts.ok++;
      n++;
      return;
    }
    const line = JSON.parse(buf.toString('utf8', s, e)) as SweepLine;
    if (line.ok) {
      codes[n] = OK | (line.cached ? CACHED : 0) | (line.resumed ? RESUMED : 0);
      counts.ok++;
      if (line.cached) counts.cached++;
      if (line.resumed) counts.resumed++;
    } else if (line.status === 'failed') {
      codes[n] = FAILED;
      counts.failed++;
      let text = errorSignature(line.error);
      let k = sigAt.get(text);
      if (k === undefined && signatures.length >= MAX_SIGNATURES) {
        text = OTHER;
        k = sigAt.get(text);
      }
      if (k === undefined) {
        k = signatures.length;
        sigAt.set(text, k);
        signatures.push({ id: shortHash(text), text, count: 0, first: line.i, example: line.error.length > 2000 ? `${line.error.slice(0, 2000)}…` : line.error });
      }
      signatures[k]!.count++;
      sigs[n] = k;
    } else {
      codes[n] = line.status === 'cancelled' ? CANCELLED : SKIPPED;
      if (line.status === 'cancelled') counts.cancelled++;
      else counts.skipped++;
    }
    n++;
  });
  offsets = grow(offsets, n + 1);
  offsets[n] = end;
  return { sha256, file, lines: n, offsets: offsets.slice(0, n + 1), codes: codes.slice(0, n), sigs: sigs.slice(0, n), signatures, counts, scanMs: performance.now() - t0 };
}

/** Byte offsets of every line of a file (an items manifest: line i is item i's input). */
export async function scanLines(file: string): Promise<Float64Array> {
  let offsets = new Float64Array(1024);
  let n = 0;
  const end = await eachLine(file, (_b, s, e, at) => {
    if (e === s) return;
    offsets = grow(offsets, n + 1);
    offsets[n++] = at;
  });
  offsets = grow(offsets, n + 1);
  offsets[n] = end;
  return offsets.slice(0, n + 1);
}

/** Lines [k] of a file by their offsets; contiguous lines are read at once. */
async function readLines(file: string, offsets: Float64Array, ks: number[]): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  if (!ks.length) return out;
  const fh = await open(file, 'r');
  try {
    const sorted = [...new Set(ks)].sort((a, b) => a - b);
    for (let a = 0; a < sorted.length; ) {
      let b = a;
      while (b + 1 < sorted.length && sorted[b + 1] === sorted[b]! + 1) b++;
      const from = offsets[sorted[a]!]!;
      const to = offsets[sorted[b]! + 1]!;
      const buf = Buffer.alloc(to - from);
      await fh.read(buf, 0, buf.length, from);
      for (let k = sorted[a]!; k <= sorted[b]!; k++) out.set(k, buf.toString('utf8', offsets[k]! - from, offsets[k + 1]! - from).replace(/\r?\n$/, ''));
      a = b + 1;
    }
  } finally {
    await fh.close();
  }
  return out;
}

const matches = (code: number, state: StateFilter | undefined): boolean => {
  const s = code & 7;
  switch (state) {
    case undefined:
      return true;
    case 'ok':
      return s === OK;
    case 'failed':
      return s === FAILED;
    case 'not-run':
      return s === SKIPPED || s === CANCELLED;
    case 'cached':
      return s === OK && (code & CACHED) !== 0;
    case 'pending':
      return s === PENDING;
  }
};

/** Shorten artifact refs in a preview: `⟨artifact model.npz⟩`. */
function preview(v: unknown, max = 140): string {
  const text = JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && (x as { kind?: unknown }).kind === 'kaon.artifact' ? `⟨artifact ${(x as ArtifactRef).name ?? (x as ArtifactRef).sha256.slice(0, 12)}⟩` : x)) ?? 'undefined';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function firstLine(error: string, max = 200): string {
  const l = error.split('\n').find((x) => x.trim()) ?? error;
  return l.length > max ? `${l.slice(0, max - 1)}…` : l;
}

/** What the index needs of the artifact store: a verified local file (a local store's blob, else a cached copy). */
export interface IndexStore {
  getPath(ref: ArtifactRef): Promise<string>;
}

/** Indexes of results and items manifests, cached per sha256 (a manifest never changes: it is content-addressed). */
export class SweepIndexes {
  private readonly results = new Map<string, Promise<ResultsIndex>>();
  private readonly items = new Map<string, Promise<Float64Array>>();

  constructor(
    private readonly store: IndexStore,
    private readonly max = 32,
  ) {}

  private cached<T>(map: Map<string, Promise<T>>, sha: string, make: () => Promise<T>): { value: Promise<T>; fresh: boolean } {
    const hit = map.get(sha);
    if (hit) {
      // Most recently used last.
      map.delete(sha);
      map.set(sha, hit);
      return { value: hit, fresh: false };
    }
    const value = make();
    value.catch(() => map.delete(sha));
    map.set(sha, value);
    if (map.size > this.max) map.delete(map.keys().next().value!);
    return { value, fresh: true };
  }

  /** The index of a results manifest, and whether this call scanned it. */
  index(ref: ArtifactRef): { value: Promise<ResultsIndex>; fresh: boolean } {
    return this.cached(this.results, ref.sha256, async () => scanResults(await this.store.getPath(ref), ref.sha256));
  }

  /** Lines of an indexed manifest; a file gone since (a store cleaned up) drops the index, so the next call rescans. */
  private async read(idx: ResultsIndex, ks: number[]): Promise<Map<number, string>> {
    try {
      return await readLines(idx.file, idx.offsets, ks);
    } catch (err) {
      this.results.delete(idx.sha256);
      throw err;
    }
  }

  /** A page of a sweep's items, filtered by state and error signature. */
  async page(segments: readonly Segment[], q: PageQuery): Promise<SweepPage> {
    const parts = await Promise.all(
      segments.map(async (seg) => {
        if (!seg.ref) return { seg, idx: undefined, fresh: false };
        const { value, fresh } = this.index(seg.ref);
        return { seg, idx: await value, fresh };
      }),
    );
    const counts = newCounts();
    const bySig = new Map<string, Signature>();
    let scanMs = 0;
    let total = 0;
    for (const { seg, idx, fresh } of parts) {
      total += seg.end - seg.start;
      if (!idx) {
        counts.pending += seg.end - seg.start;
        continue;
      }
      if (fresh) scanMs += idx.scanMs;
      for (const k of Object.keys(counts) as (keyof Counts)[]) counts[k] += idx.counts[k];
      counts.pending += Math.max(0, seg.end - seg.start - idx.lines);
      for (const s of idx.signatures) {
        const m = bySig.get(s.id);
        if (!m) bySig.set(s.id, { ...s, first: s.first });
        else {
          m.count += s.count;
          if (s.first < m.first) Object.assign(m, { first: s.first, example: s.example });
        }
      }
    }
    // The window [offset, offset + limit) of the matching items, in item order.
    const want: { part: number; k: number; i: number; code: number }[] = [];
    const from = q.offset;
    const to = q.offset + q.limit;
    let matched = 0;
    const take = (part: number, k: number, i: number, code: number) => {
      if (matched >= from && matched < to) want.push({ part, k, i, code });
      matched++;
    };
    parts.forEach(({ seg, idx }, p) => {
      const n = seg.end - seg.start;
      const lines = idx ? Math.min(n, idx.lines) : 0;
      if (!q.state && !q.sig && idx) {
        // No filter: the window is arithmetic.
        const a = Math.max(0, from - matched);
        const b = Math.min(lines, to - matched);
        for (let k = a; k < b; k++) want.push({ part: p, k, i: seg.start + k, code: idx.codes[k]! });
        matched += lines;
      } else if (idx) {
        const sig = q.sig ? idx.signatures.findIndex((s) => s.id === q.sig) : -1;
        if (q.sig && sig < 0) return;
        for (let k = 0; k < lines; k++) {
          const code = idx.codes[k]!;
          if (matches(code, q.state) && (!q.sig || idx.sigs[k] === sig)) take(p, k, seg.start + k, code);
        }
      }
      // Items without a result yet.
      if (!q.sig && (!q.state || q.state === 'pending')) for (let k = lines; k < n; k++) take(p, k, seg.start + k, PENDING);
    });
    const rows: SweepRow[] = [];
    const texts = new Map<number, Map<number, string>>();
    await Promise.all(
      parts.map(async ({ seg, idx }, p) => {
        if (!idx || !seg.ref) return;
        const ks = want.filter((w) => w.part === p && w.k < idx.lines).map((w) => w.k);
        if (ks.length) texts.set(p, await this.read(idx, ks));
      }),
    );
    for (const w of want) {
      const text = texts.get(w.part)?.get(w.k);
      const state = STATE_NAMES[w.code & 7]!;
      const row: SweepRow = { i: w.i, state, preview: '' };
      if (w.code & CACHED) row.cached = true;
      if (w.code & RESUMED) row.resumed = true;
      if (text) {
        const line = JSON.parse(text) as SweepLine;
        row.preview = line.ok ? preview(line.output) : firstLine(line.error);
      }
      rows.push(row);
    }
    const signatures = [...bySig.values()].sort((a, b) => b.count - a.count || a.first - b.first);
    return { total, counts, matched, offset: q.offset, limit: q.limit, rows, signatures, scanMs };
  }

  /** Item i's result line, or undefined while it has none. */
  async line(segments: readonly Segment[], i: number): Promise<SweepLine | undefined> {
    const seg = segments.find((s) => i >= s.start && i < s.end);
    if (!seg?.ref) return undefined;
    const idx = await this.index(seg.ref).value;
    const k = i - seg.start;
    if (k >= idx.lines) return undefined;
    const text = (await this.read(idx, [k])).get(k);
    return text ? (JSON.parse(text) as SweepLine) : undefined;
  }

  /** Line i of an items manifest, parsed (the raw item, before the input template). */
  async item(ref: ArtifactRef, i: number): Promise<unknown> {
    const offsets = await this.cached(this.items, ref.sha256, async () => scanLines(await this.store.getPath(ref))).value;
    if (i < 0 || i >= offsets.length - 1) return undefined;
    const text = (await readLines(await this.store.getPath(ref), offsets, [i])).get(i);
    return text === undefined ? undefined : JSON.parse(text);
  }
}
