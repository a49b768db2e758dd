import { chmod, link, mkdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ArtifactRef, Producer } from '../definition/artifact-ref';
import { ErrorCode, KaonError, parseOrThrow } from '../definition/errors';
import { blobKey, checkSource, type ArtifactSource, type Backend, type RecordStore } from './backend';
import { FileBackend } from './file-backend';
import { LineageHolds, readLineage, type HeldLineage, type LineageRecord } from './lineage';
import { guessMediaType, keySegment, validateArtifactName, validateMediaType } from './names';
import { S3Backend, s3ClientFromEnv, type S3Options } from './s3-backend';
import { VerifyingTransform, hashFile, verifiedFileStream, writeFileAtomic, type BlobInfo } from './streams';
import { matches, readRecord, recordable, recordOf, unchanged, writeRecord } from './verified';

export interface PutMeta {
  /** A relative name such as `model.pt` or `features/US.parquet`; used when the artifact is materialised. */
  name?: string;
  /** Default: from the name's extension, else application/octet-stream. */
  mediaType?: string;
  producer: Producer;
  /** The artifacts these bytes were made from (lineage). */
  inputs?: ArtifactRef[];
}

export interface ArtifactStat {
  uri: string;
  sha256: string;
  size: number;
  modifiedAt: Date;
}

/** An ArtifactRef, or just the sha256 of the bytes. */
export type ArtifactTarget = ArtifactRef | string;

/**
 * Content-addressed artifact storage with lineage. Every read is verified against the ref's sha256; every write
 * is atomic. The store resolves refs by sha256 within its own location (`url`), so refs stay valid as long as the
 * bytes are in this store, whatever run wrote them.
 */
export interface ArtifactStore {
  /** `file:///abs/path` or `s3://bucket/prefix`. */
  readonly url: string;
  /** Small JSON records kept in the same backend (lineage, memo entries). */
  readonly records: RecordStore;
  /** Store bytes (hashed while streaming; same bytes, same uri, stored once) and record their lineage. */
  put(source: ArtifactSource, meta: PutMeta): Promise<ArtifactRef>;
  /**
   * Store bytes Kaon keeps for itself (a sweep call's result part): content-addressed and atomic like put, but no
   * name and no lineage record, so a 100,000-call sweep does not list 100,000 parts as its run's artifacts.
   */
  putBlob(source: ArtifactSource): Promise<{ uri: string; sha256: string; size: number }>;
  /** The bytes, verified: the stream errors with KAON_ARTIFACT_CORRUPT at its end if they do not match the ref. */
  getStream(ref: ArtifactRef): Promise<Readable>;
  /**
   * A verified local file with the bytes. Without `dir`: the blob itself for a local store (read-only; never
   * modify it), else a cached copy. With `dir`: a copy at `<dir>/<name or sha256>`, or with `{ link: true }` a hard
   * link to the read-only (0444) blob when the store is local, on the same filesystem, and links are safe (see
   * ArtifactStoreOptions.links); else a copy.
   * A local blob that was verified before and has not changed since (same size, mtime, inode) is not hashed again.
   */
  getPath(ref: ArtifactRef, dir?: string, opts?: { link?: boolean }): Promise<string>;
  /** The bytes in memory, verified; for small artifacts only (refuses more than `maxBytes`, default 64 MiB). */
  getBytes(ref: ArtifactRef, opts?: { maxBytes?: number }): Promise<Buffer>;
  /** Whether the blob is stored (with the ref's size, when a ref is given). */
  exists(target: ArtifactTarget): Promise<boolean>;
  stat(target: ArtifactTarget): Promise<ArtifactStat>;
  /** Delete the blob (cache invalidation, tests). Lineage records stay: they are history. */
  delete(target: ArtifactTarget): Promise<boolean>;
  /** What produced these bytes: one record per producing put. */
  producedBy(target: ArtifactTarget): Promise<LineageRecord[]>;
  /** What was produced from these bytes: records whose inputs include them. */
  usedBy(target: ArtifactTarget): Promise<LineageRecord[]>;
  /** The artifacts a run produced (the run id of their producer). */
  listByRun(runId: string): Promise<ArtifactRef[]>;
  /**
   * Hold back the lineage records of puts by `producer` (one step attempt) until `commit()`: the activity commits
   * them once the attempt's output is valid, so a failed attempt's artifacts are never listed as its run's outputs.
   */
  holdLineage(producer: Producer): HeldLineage;
}

export interface ArtifactStoreOptions {
  /** Options of the S3 client for s3:// stores (else from the AWS environment and KAON_S3_ENDPOINT). */
  s3?: S3Options;
  /**
   * Kaon's home folder (`.kaon/`): without a url and $KAON_ARTIFACTS the store is `<home>/artifacts`. The runtime
   * passes kaonHome() (see defaultArtifactStore in src/runtime); the data seam does not locate it itself.
   */
  home?: string;
  /** Local folder for S3 upload spools and materialised copies. Default: `home`, else `<os tmpdir>/kaon`. */
  localDir?: string;
  /**
   * When `getPath(ref, dir, { link: true })` hard-links a local blob instead of copying it. The blob is read-only
   * (0444), so a step that opens its input for writing gets EACCES — but root bypasses permission bits, so 'auto'
   * (the default) links only when the process is not root, and copies otherwise. 'always' links even as root
   * (then only verification guards the blob: a change is caught by the next verified read). 'never' copies.
   */
  links?: 'auto' | 'always' | 'never';
  /** Use this backend instead of the one `url` names (tests inject failing or instrumented backends). */
  backend?: Backend;
  /** The setting that chose the location, named in errors (default: KAON_ARTIFACTS, or KAON_HOME for `<home>/artifacts`). */
  setting?: string | undefined;
  /** Instrumentation (tests, benchmarks): how the store hashes a local file. Default: a double-buffered reader. */
  hashFile?: (file: string) => Promise<BlobInfo>;
}

const SHA256 = /^[0-9a-f]{64}$/;

/**
 * The artifact store named by one setting: `url`, else $KAON_ARTIFACTS, else `<opts.home>/artifacts`.
 *   file:///abs/path (or a bare absolute path)   a local folder
 *   s3://bucket/prefix                          S3 or an S3-compatible server ($KAON_S3_ENDPOINT)
 */
export function createArtifactStore(url?: string, opts: ArtifactStoreOptions = {}): ArtifactStore {
  const localDir = opts.localDir ?? opts.home ?? path.join(os.tmpdir(), 'kaon');
  const setting = url ?? (process.env.KAON_ARTIFACTS || undefined);
  if (opts.backend) return new Store(opts.backend, localDir, opts);
  if (setting === undefined && opts.home === undefined) {
    throw new KaonError({
      code: ErrorCode.config,
      what: 'no artifact store location: no url, KAON_ARTIFACTS is unset and no Kaon home was given',
      where: 'createArtifactStore',
      fix: 'pass a url (file:///abs/folder or s3://bucket/prefix), set KAON_ARTIFACTS, or pass { home } (the runtime\'s defaultArtifactStore() uses <project>/.kaon)',
    });
  }
  return new Store(backendFor(setting, opts, localDir), localDir, opts);
}

function configError(setting: string, why: string): KaonError {
  return new KaonError({
    code: ErrorCode.config,
    what: `artifact store ${JSON.stringify(setting)} ${why}`,
    where: 'KAON_ARTIFACTS',
    fix: 'set KAON_ARTIFACTS to file:///absolute/folder or s3://bucket/prefix (or unset it for <project>/.kaon/artifacts)',
  });
}

function backendFor(url: string | undefined, opts: ArtifactStoreOptions, localDir: string): Backend {
  const setting = opts.setting ?? (url === undefined ? (process.env.KAON_HOME ? 'KAON_HOME' : undefined) : 'KAON_ARTIFACTS');
  if (url === undefined) return new FileBackend(path.join(path.resolve(opts.home!), 'artifacts'), setting);
  if (url.startsWith('/')) return new FileBackend(path.resolve(url), setting);
  if (url.startsWith('file:')) {
    let root: string;
    try {
      root = fileURLToPath(url);
    } catch (err) {
      throw configError(url, `is not a valid file URL (${(err as Error).message})`);
    }
    return new FileBackend(path.resolve(root), setting);
  }
  if (url.startsWith('s3://')) {
    const rest = url.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = (slash < 0 ? '' : rest.slice(slash + 1)).replace(/^\/+|\/+$/g, '');
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw configError(url, `names an invalid bucket ${JSON.stringify(bucket)}`);
    if (prefix.split('/').some((p) => p === '' || p === '.' || p === '..') && prefix !== '') throw configError(url, 'has an empty, "." or ".." part in its prefix');
    return new S3Backend(s3ClientFromEnv(opts.s3), bucket, prefix, path.join(localDir, 'tmp', 's3-spool'));
  }
  throw configError(url, 'is neither a file:// nor an s3:// URL');
}

function describe(ref: ArtifactRef): string {
  return `artifact ${ref.name ? `"${ref.name}" ` : ''}${ref.uri}`;
}

function producedHow(ref: ArtifactRef): string {
  const p = ref.producer;
  return `step "${p.step}" of pipeline "${p.pipeline}" (run ${p.runId})`;
}

class Store implements ArtifactStore {
  readonly url: string;
  readonly records: RecordStore;
  private readonly cacheDir: string;

  private readonly hash: (file: string) => Promise<BlobInfo>;
  private readonly linksSafe: boolean;
  private readonly lineage: LineageHolds;

  constructor(private readonly backend: Backend, localDir: string, opts: ArtifactStoreOptions = {}) {
    this.url = backend.url;
    this.records = backend.records;
    this.lineage = new LineageHolds(backend.records);
    this.cacheDir = path.join(localDir, 'cache', 'artifacts');
    this.hash = opts.hashFile ?? hashFile;
    const links = opts.links ?? 'auto';
    this.linksSafe = links === 'always' || (links === 'auto' && process.getuid?.() !== 0);
  }

  async put(source: ArtifactSource, meta: PutMeta): Promise<ArtifactRef> {
    // Check everything before writing anything: bad input leaves nothing behind.
    if (typeof meta !== 'object' || meta === null) {
      throw new KaonError({ code: ErrorCode.badInput, what: 'put needs a meta object', where: 'put meta', fix: 'pass { producer: { pipeline, runId, step, attempt }, name?, mediaType?, inputs? }' });
    }
    const producer = parseOrThrow(Producer, meta.producer, { code: ErrorCode.badInput, subject: 'artifact producer (put meta.producer)', fix: 'pass { pipeline, runId, step, attempt } of the step that makes these bytes' });
    const name = meta.name === undefined ? undefined : validateArtifactName(meta.name, 'put meta.name');
    const mediaType = meta.mediaType === undefined ? guessMediaType(name) : validateMediaType(meta.mediaType);
    const inputs = parseOrThrow(z.array(ArtifactRef), meta.inputs ?? [], { code: ErrorCode.badInput, subject: 'artifact inputs (put meta.inputs)', fix: 'pass the ArtifactRefs this artifact was made from, as returned by put()' });
    await checkSource(source);

    const info = await this.backend.putBlob(source);
    const ref: ArtifactRef = {
      kind: 'kaon.artifact',
      uri: this.backend.blobUri(info.sha256),
      sha256: info.sha256,
      size: info.size,
      mediaType,
      ...(name === undefined ? {} : { name }),
      producer,
    };
    await this.lineage.write({
      ref,
      producer,
      inputs: inputs.map((i) => ({ sha256: i.sha256, uri: i.uri, ...(i.name === undefined ? {} : { name: i.name }) })),
      createdAt: new Date().toISOString(),
    });
    return ref;
  }

  async putBlob(source: ArtifactSource): Promise<{ uri: string; sha256: string; size: number }> {
    await checkSource(source);
    const info = await this.backend.putBlob(source);
    return { uri: this.backend.blobUri(info.sha256), sha256: info.sha256, size: info.size };
  }

  private checkRef(ref: unknown, where: string): ArtifactRef {
    return parseOrThrow(ArtifactRef, ref, { code: ErrorCode.badInput, subject: `artifact ref (${where})`, fix: 'pass an ArtifactRef as returned by put() or a step output' });
  }

  private sha(target: ArtifactTarget, where: string): string {
    if (typeof target === 'string') {
      if (SHA256.test(target)) return target;
      throw new KaonError({ code: ErrorCode.badInput, what: `${JSON.stringify(target)} is not a sha256`, where, fix: 'pass an ArtifactRef or its 64-character lowercase hex sha256' });
    }
    return this.checkRef(target, where).sha256;
  }

  private missing(ref: ArtifactRef): KaonError {
    const elsewhere = ref.uri !== this.backend.blobUri(ref.sha256);
    return new KaonError({
      code: ErrorCode.artifactMissing,
      what: `${describe(ref)} is not in the artifact store ${this.url}`,
      fix: elsewhere
        ? `it was stored at ${ref.uri}: point KAON_ARTIFACTS at that store, or re-run ${producedHow(ref)} to produce it here`
        : `re-run ${producedHow(ref)} to produce it again (its blob is no longer in this store)`,
      retryable: false,
      details: { uri: ref.uri, sha256: ref.sha256, store: this.url },
    });
  }

  private corrupt(ref: ArtifactRef, actual: Partial<BlobInfo>): KaonError {
    const got = actual.sha256 ? `hash to ${actual.sha256.slice(0, 12)}… (${actual.size} bytes)` : `run past ${ref.size} bytes`;
    return new KaonError({
      code: ErrorCode.artifactCorrupt,
      what: `${describe(ref)} is corrupt: its stored bytes ${got}, but the ref says sha256 ${ref.sha256.slice(0, 12)}… (${ref.size} bytes)`,
      fix: `delete the damaged blob (store.delete(ref), or remove ${this.backend.localBlobPath?.(ref.sha256) ?? this.backend.blobUri(ref.sha256)}) and re-run ${producedHow(ref)} to store it again`,
      retryable: false,
      details: { uri: ref.uri, sha256: ref.sha256, actual },
    });
  }

  async getStream(refIn: ArtifactRef): Promise<Readable> {
    const ref = this.checkRef(refIn, 'getStream');
    if (this.backend.localBlobPath) {
      // One stage: read large chunks and hash them in the same pass (no Transform, no extra buffering).
      const stream = await verifiedFileStream(this.backend.localBlobPath(ref.sha256), ref, (actual) => this.corrupt(ref, actual));
      if (!stream) throw this.missing(ref);
      return stream;
    }
    const src = await this.backend.openBlob(ref.sha256);
    if (!src) throw this.missing(ref);
    const verifier = new VerifyingTransform(ref, (actual) => this.corrupt(ref, actual));
    // pipeline forwards a read error to the verifier and destroys the source if the consumer gives up early.
    pipeline(src, verifier, () => undefined);
    return verifier;
  }

  /**
   * Verify a local blob in place: skipped when its verification record still matches the file, else hashed (and
   * recorded when the file is not being written and its mtime is clearly in the past; see verified.ts).
   */
  private async verifiedLocalBlob(ref: ArtifactRef): Promise<string> {
    const blob = this.backend.localBlobPath!(ref.sha256);
    const recordFile = this.backend.localRecordPath?.(ref.sha256);
    const startedMs = Date.now();
    const before = await stat(blob, { bigint: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw this.missing(ref);
      throw err;
    });
    if (recordFile && before.size === BigInt(ref.size) && matches(await readRecord(recordFile), ref.sha256, before)) return blob;
    const actual = await this.hash(blob).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw this.missing(ref);
      throw err;
    });
    if (actual.sha256 !== ref.sha256 || actual.size !== ref.size) throw this.corrupt(ref, actual);
    if (recordFile && recordable(before, startedMs)) {
      const after = await stat(blob, { bigint: true }).catch(() => undefined);
      if (after && unchanged(before, after)) await writeRecord(recordFile, recordOf(ref.sha256, after));
    }
    return blob;
  }

  async getPath(refIn: ArtifactRef, dir?: string, opts: { link?: boolean } = {}): Promise<string> {
    const ref = this.checkRef(refIn, 'getPath');
    if (dir === undefined && this.backend.localBlobPath) return this.verifiedLocalBlob(ref);
    const dest = dir === undefined ? path.join(this.cacheDir, ...blobKey(ref.sha256).split('/')) : inside(dir, ref);
    if (opts.link && dir !== undefined && this.backend.localBlobPath && this.linksSafe) {
      const linked = await this.linkBlob(ref, dest);
      if (linked) return linked;
    }
    if (await fileHolds(dest, ref, this.hash)) return dest;
    const src = await this.backend.openBlob(ref.sha256);
    if (!src) throw this.missing(ref);
    // Verified on the way into a temp file; only matching bytes are renamed into place.
    await writeFileAtomic(dest, src, [new VerifyingTransform(ref, (actual) => this.corrupt(ref, actual))]);
    return dest;
  }

  /**
   * Hard-link the verified blob at `dest`. The blob is made read-only first (0444, its mode since put; restored if
   * someone changed it), so the step reading it cannot write through the link. Undefined when a link cannot be made
   * (another filesystem, a filesystem without hard links, dest taken): the caller copies instead.
   */
  private async linkBlob(ref: ArtifactRef, dest: string): Promise<string | undefined> {
    const blob = await this.verifiedLocalBlob(ref);
    const st = await stat(blob);
    if ((st.mode & 0o222) !== 0) await chmod(blob, 0o444);
    try {
      await mkdir(path.dirname(dest), { recursive: true });
      await link(blob, dest);
      return dest;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        const there = await stat(dest).catch(() => undefined);
        if (there && there.ino === st.ino && there.dev === st.dev) return dest;
        return undefined;
      }
      if (code === 'EXDEV' || code === 'EPERM' || code === 'EMLINK' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') return undefined;
      throw err;
    }
  }

  async getBytes(refIn: ArtifactRef, opts: { maxBytes?: number } = {}): Promise<Buffer> {
    const ref = this.checkRef(refIn, 'getBytes');
    const max = opts.maxBytes ?? 64 * 1024 * 1024;
    if (ref.size > max) {
      throw new KaonError({ code: ErrorCode.badInput, what: `${describe(ref)} has ${ref.size} bytes, more than getBytes' limit of ${max}`, fix: 'read it with getStream() or getPath(), or pass a larger maxBytes' });
    }
    const chunks: Buffer[] = [];
    for await (const chunk of await this.getStream(ref)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async exists(target: ArtifactTarget): Promise<boolean> {
    const st = await this.backend.statBlob(this.sha(target, 'exists'));
    return st !== undefined && (typeof target === 'string' || st.size === target.size);
  }

  async stat(target: ArtifactTarget): Promise<ArtifactStat> {
    const sha256 = this.sha(target, 'stat');
    const st = await this.backend.statBlob(sha256);
    if (!st) {
      if (typeof target !== 'string') throw this.missing(target);
      throw new KaonError({ code: ErrorCode.artifactMissing, what: `no blob with sha256 ${sha256} in the artifact store ${this.url}`, fix: 're-run the step that produced it' });
    }
    return { uri: this.backend.blobUri(sha256), sha256, size: st.size, modifiedAt: st.modifiedAt };
  }

  delete(target: ArtifactTarget): Promise<boolean> {
    return this.backend.deleteBlob(this.sha(target, 'delete'));
  }

  producedBy(target: ArtifactTarget): Promise<LineageRecord[]> {
    return readLineage(this.backend.records, `lineage/${this.sha(target, 'producedBy')}/`);
  }

  usedBy(target: ArtifactTarget): Promise<LineageRecord[]> {
    return readLineage(this.backend.records, `used-by/${this.sha(target, 'usedBy')}/`);
  }

  holdLineage(producer: Producer): HeldLineage {
    return this.lineage.hold(producer);
  }

  async listByRun(runId: string): Promise<ArtifactRef[]> {
    if (typeof runId !== 'string' || runId.length === 0) {
      throw new KaonError({ code: ErrorCode.badInput, what: 'listByRun needs a run id', where: 'listByRun runId', fix: 'pass the run id of a Kaon run (its Temporal run id)' });
    }
    return (await readLineage(this.backend.records, `runs/${keySegment(runId)}/`)).map((r) => r.ref);
  }
}

/** `<dir>/<name or sha256>`, refusing a name that would leave `dir` (refs can come from anywhere). */
function inside(dir: string, ref: ArtifactRef): string {
  const name = ref.name === undefined ? ref.sha256 : validateArtifactName(ref.name, 'getPath ref.name');
  const root = path.resolve(dir);
  const dest = path.resolve(root, ...name.split('/'));
  const rel = path.relative(root, dest);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new KaonError({ code: ErrorCode.artifactName, what: `artifact name ${JSON.stringify(name)} would be written outside ${root}`, where: 'getPath', fix: 'use a relative artifact name without ".." parts' });
  }
  return dest;
}

/** Whether a local file already holds exactly the ref's bytes (then materialising again is a no-op). */
async function fileHolds(file: string, ref: ArtifactRef, hash: (file: string) => Promise<BlobInfo>): Promise<boolean> {
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile() || st.size !== ref.size) return false;
  return (await hash(file)).sha256 === ref.sha256;
}
