import { createHash } from 'node:crypto';
import { ErrorCode, KaonError } from '../definition/errors';

export const MAX_NAME_LENGTH = 255;

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * An artifact name is a relative, forward-slash path (`model.pt`, `features/US.parquet`): it may become a file
 * path when the artifact is materialised into a folder, so anything that could escape that folder is refused.
 */
export function validateArtifactName(name: unknown, where = 'name'): string {
  const fail = (why: string): never => {
    throw new KaonError({
      code: ErrorCode.artifactName,
      what: `artifact name ${JSON.stringify(name)} is not allowed: ${why}`,
      where,
      fix: 'use a relative name of 1–255 characters made of forward-slash separated parts, none of them "." or ".." (e.g. "features/US.parquet"), without backslashes or control characters',
      retryable: false,
    });
  };
  if (typeof name !== 'string') return fail('it must be a string');
  if (name.length === 0) return fail('it is empty');
  if (name.length > MAX_NAME_LENGTH) return fail(`it is ${name.length} characters long (at most ${MAX_NAME_LENGTH})`);
  if (CONTROL.test(name)) return fail('it contains a control character');
  if (name.includes('\\')) return fail('it contains a backslash');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return fail('it is an absolute path');
  for (const part of name.split('/')) {
    if (part === '..') return fail('it contains ".." (path traversal)');
    if (part === '.') return fail('it contains a "." path part');
    if (part === '') return fail('it contains an empty path part ("//" or a trailing "/")');
  }
  return name;
}

/** The longest key segment: a file name (with `.json`) stays under the 255 bytes filesystems allow. */
const MAX_SEGMENT = 240;

/**
 * One path segment of a record key, safe on every filesystem and in S3 keys (`..`, `/`, `%` are escaped). A long
 * value (a 255-character run id escapes to up to 3× that) keeps a readable start and ends with a hash of the whole.
 */
export function keySegment(value: string): string {
  const encoded = encodeURIComponent(value).replace(/^\./, '%2E');
  if (encoded.length <= MAX_SEGMENT) return encoded;
  const start = encoded.slice(0, MAX_SEGMENT - 17).replace(/%[0-9A-F]?$/, ''); // never half an escape
  return `${start}~${createHash('sha256').update(value).digest('hex').slice(0, 16)}`;
}

const MEDIA_TYPES: Record<string, string> = {
  json: 'application/json',
  jsonl: 'application/x-ndjson',
  csv: 'text/csv',
  tsv: 'text/tab-separated-values',
  txt: 'text/plain',
  md: 'text/markdown',
  html: 'text/html',
  parquet: 'application/vnd.apache.parquet',
  arrow: 'application/vnd.apache.arrow.file',
  npy: 'application/x-npy',
  npz: 'application/x-npz',
  pt: 'application/x-pytorch',
  onnx: 'application/onnx',
  png: 'image/png',
  jpg: 'image/jpeg',
  gz: 'application/gzip',
  zip: 'application/zip',
  tar: 'application/x-tar',
};

/** The media type to record when none is given: from the name's extension, else application/octet-stream. */
export function guessMediaType(name: string | undefined): string {
  const ext = name?.split('/').pop()?.split('.').pop()?.toLowerCase();
  return (ext && name?.includes('.') ? MEDIA_TYPES[ext] : undefined) ?? 'application/octet-stream';
}

const MEDIA_TYPE = /^[A-Za-z0-9][\w.+-]*\/[A-Za-z0-9][\w.+-]*(\s*;.*)?$/;

export function validateMediaType(mediaType: string): string {
  if (!MEDIA_TYPE.test(mediaType) || CONTROL.test(mediaType)) {
    throw new KaonError({
      code: ErrorCode.badInput,
      what: `media type ${JSON.stringify(mediaType)} is not of the form type/subtype`,
      where: 'artifact mediaType',
      fix: 'pass a media type such as "application/json" or "application/vnd.apache.parquet", or omit it',
    });
  }
  return mediaType;
}
