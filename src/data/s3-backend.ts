import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { ErrorCode, KaonError } from '../definition/errors';
import { rethrowSystemError, systemErrorCode } from '../definition/system-errors';
import { blobKey, bytesOf, sourceStream, type ArtifactSource, type Backend, type BlobStat, type RecordStore } from './backend';
import { sha256Hex } from './canonical';
import { assertRecordKey } from './file-backend';
import { HashingTransform, hashFile, tempPathIn, writeStreamToFile, type BlobInfo } from './streams';

/** Multipart part size: 8 MiB × 4 parts in flight keeps an upload's memory at 32 MiB of reused buffers. */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 4;
const MAX_PARTS = 9_000; // S3 allows 10,000; leave headroom

export interface S3Options {
  /** S3-compatible endpoint (MinIO, moto, …). Default: $KAON_S3_ENDPOINT, else AWS. Implies path-style URLs. */
  endpoint?: string;
  /** Default: $AWS_REGION, $AWS_DEFAULT_REGION, else us-east-1. */
  region?: string;
  /** Default: the AWS SDK's standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, SSO, IMDS, …). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** A ready client; the other options are then ignored. */
  client?: S3Client;
}

/** An S3 client from the standard AWS environment plus KAON_S3_ENDPOINT. */
export function s3ClientFromEnv(opts: S3Options = {}): S3Client {
  if (opts.client) return opts.client;
  const endpoint = opts.endpoint ?? process.env.KAON_S3_ENDPOINT;
  const config: S3ClientConfig = {
    region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    // Kaon verifies sha256 end to end itself; the SDK's extra CRC per request would only cost CPU.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    // An endpoint that does not answer fails in seconds (then explained), not after the OS's minutes-long connect.
    requestHandler: { connectionTimeout: 5_000 },
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
  };
  return new S3Client(config);
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || (e?.$metadata?.httpStatusCode === 404 && e?.name !== 'NoSuchBucket');
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ETIMEDOUT']);

/** Turn the S3 errors a user can fix (no bucket, no credentials) into KaonErrors that say how; rethrow the rest. */
function explain(err: unknown, url: string): never {
  const e = err as { name?: string; message?: string };
  const sys = systemErrorCode(err);
  if (sys && NETWORK_CODES.has(sys)) {
    const endpoint = process.env.KAON_S3_ENDPOINT;
    rethrowSystemError(err, { doing: `reaching the artifact store ${url}`, setting: 'KAON_S3_ENDPOINT', ...(endpoint ? { path: endpoint } : {}) });
  }
  if (sys) rethrowSystemError(err, { doing: `spooling a transfer of the artifact store ${url}` });
  if (e?.name === 'NoSuchBucket') {
    throw new KaonError({
      code: ErrorCode.config,
      what: `the artifact store ${url} names a bucket that does not exist`,
      fix: 'create the bucket, or point KAON_ARTIFACTS at an existing one (s3://bucket/prefix)',
      cause: err,
    });
  }
  if (e?.name === 'CredentialsProviderError' || e?.name === 'InvalidAccessKeyId' || e?.name === 'SignatureDoesNotMatch') {
    throw new KaonError({
      code: ErrorCode.config,
      what: `no valid S3 credentials for the artifact store ${url}: ${e.message ?? e.name}`,
      fix: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and KAON_S3_ENDPOINT for an S3-compatible server',
      cause: err,
    });
  }
  throw err;
}

/**
 * Blobs and records in an S3 bucket under a prefix:
 *   <prefix>/sha256/ab/<sha256>   blobs
 *   <prefix>/<record key>         JSON records
 *
 * Puts hash first and upload to the final content key second: S3 makes an object visible only when its PutObject
 * or CompleteMultipartUpload succeeds, so a reader never sees part of a blob, and a killed writer leaves at most an
 * incomplete multipart upload (invisible; expire it with an AbortIncompleteMultipartUpload lifecycle rule).
 * A stream source is spooled to a local temp file while it is hashed (bounded memory, and no upload at all when
 * the bytes are already stored); a file source is hashed in place and uploaded from the file.
 */
export class S3Backend implements Backend {
  readonly url: string;
  readonly records: RecordStore;

  constructor(
    readonly client: S3Client,
    readonly bucket: string,
    readonly prefix: string,
    private readonly spoolDir: string,
  ) {
    this.url = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
    this.records = new S3Records(this);
  }

  key(rel: string): string {
    return this.prefix ? `${this.prefix}/${rel}` : rel;
  }

  blobUri(sha256: string): string {
    return `s3://${this.bucket}/${this.key(blobKey(sha256))}`;
  }

  async putBlob(source: ArtifactSource): Promise<BlobInfo> {
    if ('bytes' in source) {
      const body = bytesOf(source.bytes);
      const info = { sha256: sha256Hex(body), size: body.length };
      if (!(await this.hasBlob(info))) {
        await this.client
          .send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(blobKey(info.sha256)), Body: body, ContentLength: body.length, ContentType: 'application/octet-stream', Metadata: { sha256: info.sha256 } }))
          .catch((err: unknown) => explain(err, this.url));
      }
      return info;
    }
    let file: string;
    let info: BlobInfo;
    let spool: string | undefined;
    if ('path' in source) {
      file = source.path;
      info = await hashFile(file);
    } else {
      spool = tempPathIn(this.spoolDir, 'spool');
      const hasher = new HashingTransform();
      await writeStreamToFile(sourceStream(source), [hasher], spool, { fsync: false, mode: 0o600 });
      file = spool;
      info = hasher.result();
    }
    try {
      if (!(await this.hasBlob(info))) await this.upload(file, info);
      return info;
    } finally {
      if (spool) await rm(spool, { force: true });
    }
  }

  /**
   * Upload a local file to the blob's content key, re-verifying its hash on the way (a file changed between hashing
   * and upload must not land under the old hash). Multipart parts are read into a fixed pool of QUEUE_SIZE
   * buffers that are reused, so memory stays at QUEUE_SIZE × part size whatever the blob size, and the upload is
   * completed only after the last part matched the hash; on any failure it is aborted, never completed.
   */
  private async upload(file: string, info: BlobInfo): Promise<void> {
    const Bucket = this.bucket;
    const Key = this.key(blobKey(info.sha256));
    const partSize = Math.max(PART_SIZE, Math.ceil(info.size / MAX_PARTS));
    const changed = () => new KaonError({
      code: ErrorCode.badInput,
      what: `source file ${file} changed while it was being stored`,
      where: 'put source.path',
      fix: 'do not modify a file while putting it; write it completely, then put it',
      retryable: true,
    });
    const fh = await open(file, 'r');
    try {
      const hash = createHash('sha256');
      const readPart = async (buf: Buffer, len: number, offset: number): Promise<Buffer> => {
        let got = 0;
        while (got < len) {
          const { bytesRead } = await fh.read(buf, got, len - got, offset + got);
          if (bytesRead === 0) throw changed();
          got += bytesRead;
        }
        const part = buf.subarray(0, len);
        hash.update(part);
        return part;
      };
      const verifyEnd = async (): Promise<void> => {
        const { bytesRead } = await fh.read(Buffer.alloc(1), 0, 1, info.size);
        if (bytesRead !== 0 || hash.digest('hex') !== info.sha256) throw changed();
      };
      const meta = { ContentType: 'application/octet-stream', Metadata: { sha256: info.sha256 } };

      if (info.size <= partSize) {
        const body = await readPart(Buffer.allocUnsafe(info.size), info.size, 0);
        await verifyEnd();
        await this.client.send(new PutObjectCommand({ Bucket, Key, Body: body, ContentLength: body.length, ...meta })).catch((err: unknown) => explain(err, this.url));
        return;
      }

      const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket, Key, ...meta })).catch((err: unknown) => explain(err, this.url));
      try {
        const free: Buffer[] = [];
        const inFlight = new Set<Promise<void>>();
        const parts: CompletedPart[] = [];
        let failure: unknown;
        let partNumber = 1;
        for (let offset = 0; offset < info.size && failure === undefined; offset += partSize) {
          if (free.length === 0 && inFlight.size >= QUEUE_SIZE) await Promise.race(inFlight);
          if (failure !== undefined) break;
          const buf = free.pop() ?? Buffer.allocUnsafe(partSize);
          const body = await readPart(buf, Math.min(partSize, info.size - offset), offset);
          const PartNumber = partNumber++;
          const task: Promise<void> = this.client
            .send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body: body, ContentLength: body.length }))
            .then((res) => void parts.push({ PartNumber, ETag: res.ETag }), (err: unknown) => void (failure ??= err))
            .finally(() => {
              inFlight.delete(task);
              free.push(buf); // the SDK is done with the part's bytes once its request settled
            });
          inFlight.add(task);
        }
        await Promise.all(inFlight);
        if (failure !== undefined) explain(failure, this.url);
        await verifyEnd();
        parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
        await this.client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
      } catch (err) {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
        throw err;
      }
    } finally {
      await fh.close();
    }
  }

  private async hasBlob(info: BlobInfo): Promise<boolean> {
    const st = await this.statBlob(info.sha256);
    return st !== undefined && st.size === info.size;
  }

  async openBlob(sha256: string): Promise<Readable | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(blobKey(sha256)) }));
      return res.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      return explain(err, this.url);
    }
  }

  async statBlob(sha256: string): Promise<BlobStat | undefined> {
    return this.head(this.key(blobKey(sha256)));
  }

  async head(key: string): Promise<BlobStat | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: res.ContentLength ?? 0, modifiedAt: res.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      return explain(err, this.url);
    }
  }

  async deleteKey(key: string): Promise<boolean> {
    const existed = (await this.head(key)) !== undefined;
    if (existed) await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })).catch((err: unknown) => explain(err, this.url));
    return existed;
  }

  deleteBlob(sha256: string): Promise<boolean> {
    return this.deleteKey(this.key(blobKey(sha256)));
  }
}

class S3Records implements RecordStore {
  constructor(private readonly s3: S3Backend) {}

  private key(key: string): string {
    assertRecordKey(key);
    return this.s3.key(key);
  }

  async get(key: string): Promise<unknown> {
    try {
      const res = await this.s3.client.send(new GetObjectCommand({ Bucket: this.s3.bucket, Key: this.key(key) }));
      const text = await res.Body!.transformToString('utf8');
      return JSON.parse(text) as unknown;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      return explain(err, this.s3.url);
    }
  }

  async put(key: string, value: unknown): Promise<void> {
    const body = Buffer.from(JSON.stringify(value), 'utf8');
    await this.s3.client
      .send(new PutObjectCommand({ Bucket: this.s3.bucket, Key: this.key(key), Body: body, ContentLength: body.length, ContentType: 'application/json' }))
      .catch((err: unknown) => explain(err, this.s3.url));
  }

  async list(prefix: string): Promise<string[]> {
    const clean = prefix.replace(/\/+$/, '');
    const full = clean ? `${this.key(clean)}/` : this.s3.prefix ? `${this.s3.prefix}/` : '';
    const strip = this.s3.prefix ? this.s3.prefix.length + 1 : 0;
    const out: string[] = [];
    let token: string | undefined;
    do {
      const res = await this.s3.client
        .send(new ListObjectsV2Command({ Bucket: this.s3.bucket, Prefix: full, ...(token ? { ContinuationToken: token } : {}) }))
        .catch((err: unknown) => explain(err, this.s3.url));
      for (const o of res.Contents ?? []) if (o.Key) out.push(o.Key.slice(strip));
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out.sort();
  }

  delete(key: string): Promise<boolean> {
    return this.s3.deleteKey(this.key(key));
  }
}
