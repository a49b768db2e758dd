import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ErrorCode, KaonError } from '../definition/errors';
import { CHUNK, type BlobInfo } from './streams';

/** Where the bytes of a put come from. */
export type ArtifactSource = { path: string } | { stream: Readable } | { bytes: Uint8Array | string };

export interface BlobStat {
  size: number;
  modifiedAt: Date;
}

/**
 * Small JSON documents kept next to the blobs, in the same backend (lineage, memo entries). Keys are relative,
 * '/'-separated, built from `keySegment()`s; `list(prefix)` returns every key under a prefix, recursively.
 */
export interface RecordStore {
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown): Promise<void>;
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<boolean>;
}

/**
 * Where bytes physically live (a folder, an S3 prefix). The store builds content addressing, verification,
 * lineage and naming on top; a backend only stores blobs by sha256 and JSON records by key.
 */
export interface Backend {
  /** The store's own address: `file:///abs/path` or `s3://bucket/prefix`. */
  readonly url: string;
  readonly records: RecordStore;
  /** The uri an ArtifactRef carries for this blob. */
  blobUri(sha256: string): string;
  /** Hash while streaming and publish the blob atomically under its sha256 (once; same bytes, same blob). */
  putBlob(source: ArtifactSource): Promise<BlobInfo>;
  /** The raw (unverified) bytes, or undefined when there is no such blob. */
  openBlob(sha256: string): Promise<Readable | undefined>;
  statBlob(sha256: string): Promise<BlobStat | undefined>;
  deleteBlob(sha256: string): Promise<boolean>;
  /** A local file holding the blob, when the backend keeps blobs on the local disk (unverified). */
  localBlobPath?(sha256: string): string;
  /** Where the verification record of a local blob is kept (see verified.ts); with localBlobPath only. */
  localRecordPath?(sha256: string): string;
}

/** `sha256/ab/<full sha>`: two hex characters of fan-out keep folders small; the full hash stays greppable. */
export function blobKey(sha256: string): string {
  return `sha256/${sha256.slice(0, 2)}/${sha256}`;
}

/** Check a put source and say which kind it is; a missing or non-regular source file is bad input. */
export async function checkSource(source: ArtifactSource): Promise<'path' | 'stream' | 'bytes'> {
  const s = source as Partial<Record<'path' | 'stream' | 'bytes', unknown>>;
  const kinds = (['path', 'stream', 'bytes'] as const).filter((k) => s[k] !== undefined);
  if (kinds.length !== 1) {
    throw new KaonError({
      code: ErrorCode.badInput,
      what: `an artifact source must have exactly one of path, stream or bytes; got ${kinds.length ? kinds.join(', ') : 'none'}`,
      where: 'put source',
      fix: 'pass { path: "/abs/file" }, { stream: readable } or { bytes: bufferOrString }',
    });
  }
  const kind = kinds[0]!;
  if (kind === 'path') {
    const file = s.path;
    const st = typeof file === 'string' ? await stat(file).catch(() => undefined) : undefined;
    if (!st?.isFile()) {
      throw new KaonError({
        code: ErrorCode.badInput,
        what: `source file ${JSON.stringify(file)} ${st ? 'is not a regular file' : 'does not exist'}`,
        where: 'put source.path',
        fix: 'pass the path of an existing regular file (write the file before putting it)',
      });
    }
  } else if (kind === 'stream' && !(s.stream instanceof Readable)) {
    throw new KaonError({ code: ErrorCode.badInput, what: 'source.stream is not a Node Readable', where: 'put source.stream', fix: 'pass a stream.Readable (e.g. fs.createReadStream(file) or Readable.from(chunks))' });
  } else if (kind === 'bytes' && typeof s.bytes !== 'string' && !(s.bytes instanceof Uint8Array)) {
    throw new KaonError({ code: ErrorCode.badInput, what: 'source.bytes is neither a Uint8Array nor a string', where: 'put source.bytes', fix: 'pass a Buffer/Uint8Array, or a string (stored as UTF-8)' });
  }
  return kind;
}

export function bytesOf(bytes: Uint8Array | string): Buffer {
  return typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The source as a stream of large chunks. */
export function sourceStream(source: ArtifactSource): Readable {
  if ('path' in source) return createReadStream(source.path, { highWaterMark: CHUNK });
  if ('stream' in source) return source.stream;
  return Readable.from([bytesOf(source.bytes)]);
}
