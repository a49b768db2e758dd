// Streaming building blocks shared by both backends: hash while bytes flow, verify at the end of a read, and
// write a file atomically (temp in the destination folder + fsync + rename). Nothing here buffers a whole blob.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Chunk size for file reads: large chunks keep per-chunk overhead far below hashing and IO cost. */
export const CHUNK = 4 * 1024 * 1024;
/** Chunk size of streamed blob reads (through a backend's raw stream and a VerifyingTransform). */
export const READ_CHUNK = 256 * 1024;
/** Chunk size of verified local reads (verifiedFileStream); see bench/artifacts-io.ts. */
export const VERIFIED_READ_CHUNK = 2 * 1024 * 1024;
/** How much a stage may buffer ahead, so hashing (main thread) overlaps reads and writes (libuv threads). */
export const AHEAD = 8 * 1024 * 1024;

export interface BlobInfo {
  sha256: string;
  size: number;
}

/** Passes bytes through unchanged and hashes them on the way. */
export class HashingTransform extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  private digest: string | undefined;

  constructor() {
    super({ readableHighWaterMark: AHEAD, writableHighWaterMark: AHEAD });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.digest = this.hash.digest('hex');
    cb();
  }

  /** Valid once the stream has finished. */
  result(): BlobInfo {
    if (this.digest === undefined) throw new Error('HashingTransform.result() called before the stream ended');
    return { sha256: this.digest, size: this.bytes };
  }
}

/**
 * Passes bytes through and checks them against an expected hash and size. A mismatch is raised as soon as the
 * size is exceeded, else at the end: the stream emits `onMismatch(actual)` as its error instead of ending.
 */
export class VerifyingTransform extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;

  constructor(private readonly expected: BlobInfo, private readonly onMismatch: (actual: Partial<BlobInfo>) => Error) {
    super({ readableHighWaterMark: AHEAD, writableHighWaterMark: AHEAD });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.expected.size) {
      cb(this.onMismatch({ size: this.bytes }));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const sha256 = this.hash.digest('hex');
    if (sha256 !== this.expected.sha256 || this.bytes !== this.expected.size) cb(this.onMismatch({ sha256, size: this.bytes }));
    else cb();
  }
}

/**
 * A verified read of a local file in one stage: each chunk is read into a fresh buffer (the consumer owns what it
 * is given), the next read is issued before the current chunk is hashed (the disk or page-cache copy runs on a
 * libuv thread while the main thread hashes), and the chunk is pushed as is — no Transform, no extra copy.
 * Errors with `onMismatch(actual)` as soon as the file runs past the expected size, else at the end.
 * Undefined when the file does not exist.
 */
export async function verifiedFileStream(file: string, expected: BlobInfo, onMismatch: (actual: Partial<BlobInfo>) => Error, chunk = VERIFIED_READ_CHUNK): Promise<Readable | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return new VerifiedFileReadable(fh, expected, onMismatch, chunk);
}

class VerifiedFileReadable extends Readable {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  private looping = false;
  private wanted = false;
  private pending: { buf: Buffer; read: Promise<number> } | undefined;

  constructor(private readonly fh: FileHandle, private readonly expected: BlobInfo, private readonly onMismatch: (actual: Partial<BlobInfo>) => Error, private readonly chunk: number) {
    super({ highWaterMark: 2 * chunk });
  }

  private issue(): { buf: Buffer; read: Promise<number> } {
    const buf = Buffer.allocUnsafeSlow(this.chunk);
    const next = { buf, read: this.fh.read(buf, 0, this.chunk, null).then((r) => r.bytesRead) };
    // A read still in flight when the stream is destroyed must not become an unhandled rejection.
    next.read.catch(() => undefined);
    return next;
  }

  override _read(): void {
    if (this.looping) {
      this.wanted = true; // asked again while pushing: keep going after a full buffer
      return;
    }
    this.looping = true;
    this.loop().catch((err: Error) => this.destroy(err));
  }

  private async loop(): Promise<void> {
    for (;;) {
      const { buf, read } = this.pending ?? this.issue();
      this.pending = undefined;
      const n = await read;
      if (this.destroyed) return;
      if (n === 0) {
        const sha256 = this.hash.digest('hex');
        if (sha256 !== this.expected.sha256 || this.bytes !== this.expected.size) this.destroy(this.onMismatch({ sha256, size: this.bytes }));
        else this.push(null);
        return;
      }
      this.bytes += n;
      if (this.bytes > this.expected.size) {
        this.destroy(this.onMismatch({ size: this.bytes }));
        return;
      }
      this.pending = this.issue();
      const data = n === buf.length ? buf : buf.subarray(0, n);
      this.hash.update(data);
      this.wanted = false;
      if (!this.push(data) && !this.wanted) {
        this.looping = false;
        return;
      }
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // FileHandle.close waits for a read in flight.
    this.fh.close().then(() => cb(err), (e: Error) => cb(err ?? e));
  }
}

/** Hash a local file: two reused buffers, reading the next chunk (libuv thread) while this one is hashed. */
export async function hashFile(file: string): Promise<BlobInfo> {
  const fh = await open(file, 'r');
  try {
    const hash = createHash('sha256');
    const bufs: [Buffer, Buffer] = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
    let size = 0;
    let turn = 0;
    let pending: Promise<{ bytesRead: number; buffer: Buffer }> = fh.read(bufs[0], 0, CHUNK, null);
    for (;;) {
      const { bytesRead, buffer } = await pending;
      if (bytesRead === 0) break;
      turn ^= 1;
      pending = fh.read(turn ? bufs[1] : bufs[0], 0, CHUNK, null);
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { sha256: hash.digest('hex'), size };
  } finally {
    await fh.close();
  }
}

/** A temp-file name in `dir`: dot-prefixed so listings skip it, random so concurrent writers never collide. */
export function tempPathIn(dir: string, base = 'blob'): string {
  return path.join(dir, `.${base.slice(0, 40)}.${randomBytes(8).toString('hex')}.tmp`);
}

/**
 * A file sink that keeps the disk busy while the main thread hashes: up to `MAX_WRITES` positional writes are
 * queued on libuv's threads at once, and when `flushEvery` is set a background fdatasync starts after each such
 * stretch, so the final fsync has little left to flush instead of waiting for the whole file.
 * Like a Transform, it signals it is done with a chunk before the disk is: producers must not reuse a chunk's
 * memory after handing it to a stream (Node's contract for writable.write).
 */
class FileSink extends Writable {
  private static readonly MAX_WRITES = 4;
  private position = 0;
  private inFlight = 0;
  private flushedAt = 0;
  private flushing: Promise<void> | undefined;
  private failure: Error | undefined;
  private onSlot: (() => void) | undefined;
  private onIdle: (() => void) | undefined;

  constructor(private readonly fh: FileHandle, private readonly flushEvery: number) {
    super({ highWaterMark: AHEAD });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.issue([chunk], cb);
  }

  /** Chunks that queued up while writes were in flight go out as one writev (small network chunks coalesce). */
  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.issue(chunks.map((c) => c.chunk), cb);
  }

  private issue(buffers: Buffer[], cb: (err?: Error | null) => void): void {
    if (this.failure) return cb(this.failure);
    const at = this.position;
    for (const b of buffers) this.position += b.length;
    this.inFlight++;
    writeAll(this.fh, buffers, at).then(
      () => this.settled(),
      (err: Error) => this.settled(err),
    );
    if (this.inFlight < FileSink.MAX_WRITES) cb();
    else this.onSlot = () => cb(this.failure);
  }

  private settled(err?: Error): void {
    this.failure ??= err;
    this.inFlight--;
    if (this.flushEvery > 0 && !this.flushing && !this.failure && this.position - this.flushedAt >= this.flushEvery) {
      this.flushedAt = this.position;
      this.flushing = this.fh.datasync().then(
        () => void (this.flushing = undefined),
        (e: Error) => void ((this.failure ??= e), (this.flushing = undefined)),
      );
    }
    const slot = this.onSlot;
    this.onSlot = undefined;
    slot?.();
    if (this.inFlight === 0) this.onIdle?.();
  }

  override _final(cb: (err?: Error | null) => void): void {
    const done = (): void => {
      void (this.flushing ?? Promise.resolve()).then(() => cb(this.failure));
    };
    if (this.inFlight === 0) done();
    else this.onIdle = done;
  }
}

/** Positional write of `buffers` at `at`, finishing a short write (rare on regular files, but allowed by POSIX). */
async function writeAll(fh: FileHandle, buffers: Buffer[], at: number): Promise<void> {
  const total = buffers.reduce((n, b) => n + b.length, 0);
  let done = (buffers.length === 1 ? await fh.write(buffers[0]!, 0, total, at) : await fh.writev(buffers, at)).bytesWritten;
  if (done === total) return;
  const rest = Buffer.concat(buffers);
  while (done < total) {
    const { bytesWritten } = await fh.write(rest, done, total - done, at + done);
    if (bytesWritten === 0) throw new Error(`short write at offset ${at + done}`);
    done += bytesWritten;
  }
}

/** Flush in the background every 64 MiB while writing a blob (see FileSink). */
const FLUSH_EVERY = 64 * 1024 * 1024;

/**
 * Stream `source` through `through` into a new file at `file` (which must not exist), fsync it when asked.
 * The caller renames it into place; on failure the partial file is removed.
 */
export async function writeStreamToFile(source: Readable, through: Transform[], file: string, opts: { fsync: boolean; mode?: number }): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const fh = await open(file, 'wx', opts.mode ?? 0o644);
  try {
    await pipeline([source, ...through, new FileSink(fh, opts.fsync ? FLUSH_EVERY : 0)]);
    if (opts.fsync) await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(file, { force: true });
    throw err;
  }
  await fh.close();
}

/** fsync a directory so a rename into it survives a power loss. Best effort where the OS refuses (non-Linux). */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Directories cannot be opened for fsync on some platforms; rename is still atomic there.
  } finally {
    await fh?.close();
  }
}

/** Write `source` to `dest` atomically: temp file next to it, fsync, rename, fsync the folder. */
export async function writeFileAtomic(dest: string, source: Readable, through: Transform[] = [], opts: { mode?: number } = {}): Promise<void> {
  const tmp = tempPathIn(path.dirname(dest), path.basename(dest));
  await writeStreamToFile(source, through, tmp, { fsync: true, ...(opts.mode === undefined ? {} : { mode: opts.mode }) });
  try {
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(dest));
}
