// Payload encryption: an AES-256-GCM Temporal PayloadCodec with key ids and rotation, and the data converter
// Kaon's client, worker, CLI and board share. Pure (node:crypto, node:fs and @temporalio/common only), so the thin
// client can import it.
//
// Key file (KAON_ENCRYPTION_KEY_FILE): one `keyId:base64-of-32-bytes` per line; blank lines and `#` comments are
// ignored. The first key encrypts; every key decrypts, so rotating is: put the new key first, keep the old ones.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DataConverter, LoadedDataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { ErrorCode, KaonError } from '../definition/errors';
import { REFUSED_PLAINTEXT } from '../definition/internal/plaintext';

export const KEY_FILE_ENV = 'KAON_ENCRYPTION_KEY_FILE';
/** Payload metadata: the encoding of an encrypted payload, and the id of the key that encrypted it. */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
export const CIPHER_METADATA = 'encryption-cipher';
const CIPHER = 'AES-256-GCM';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export interface EncryptionKey {
  readonly id: string;
  readonly key: Buffer;
}

/** The configured keys: `keys[0]` encrypts, all decrypt. `file` names where they came from, for messages. */
export interface Keyring {
  readonly file: string;
  readonly keys: readonly EncryptionKey[];
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function badKeyFile(file: string, line: number | undefined, what: string, fix: string, cause?: unknown): KaonError {
  return new KaonError({
    code: ErrorCode.config,
    what: `the encryption key file ${file} (${KEY_FILE_ENV})${line !== undefined ? `, line ${line},` : ''} ${what}`,
    fix,
    ...(cause !== undefined ? { cause } : {}),
  });
}

const FORMAT = 'write one `keyId:base64-of-32-bytes` per line, e.g. `k1:` followed by the output of `openssl rand -base64 32`';

/** Parse a key file's text. Refuses, naming the line: a bad id, bad base64, a key that is not 32 bytes, a duplicate id. */
export function parseKeyFile(text: string, file: string): Keyring {
  const keys: EncryptionKey[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    const n = i + 1;
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon < 0) throw badKeyFile(file, n, 'has no `keyId:` prefix', FORMAT);
    const id = line.slice(0, colon).trim();
    const b64 = line.slice(colon + 1).trim();
    if (!KEY_ID.test(id)) {
      throw badKeyFile(file, n, `has key id ${JSON.stringify(id.slice(0, 70))}, which is not valid`, "use up to 64 letters, digits and '_.-' for the id, starting with a letter or digit (e.g. k2026-12)");
    }
    const earlier = seen.get(id);
    if (earlier !== undefined) throw badKeyFile(file, n, `repeats key id "${id}" (first on line ${earlier})`, 'give every key its own id: a reused id could not tell which key encrypted a payload');
    if (!BASE64.test(b64) || b64.length % 4 !== 0) throw badKeyFile(file, n, `has a key for "${id}" that is not valid base64`, FORMAT);
    const key = Buffer.from(b64, 'base64');
    if (key.length !== 32) throw badKeyFile(file, n, `has a key for "${id}" of ${key.length} bytes; AES-256 needs exactly 32`, FORMAT);
    seen.set(id, n);
    keys.push({ id, key });
  });
  if (keys.length === 0) throw badKeyFile(file, undefined, 'has no keys', FORMAT);
  return { file, keys };
}

/** Read and parse a key file; an unreadable file is a KAON_CONFIG error naming it. */
export function readKeyFile(file: string): Keyring {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw badKeyFile(abs, undefined, `cannot be read (${code ?? (err as Error).message})`, `point ${KEY_FILE_ENV} at a readable file (${FORMAT}), or unset it to run without encryption`, err);
  }
  return parseKeyFile(text, abs);
}

/** The keyring $KAON_ENCRYPTION_KEY_FILE names, or undefined when it is unset (no encryption). */
export function keyringFromEnv(env: NodeJS.ProcessEnv = process.env): Keyring | undefined {
  const file = env[KEY_FILE_ENV];
  return file ? readKeyFile(file) : undefined;
}

function aad(keyId: string): Uint8Array {
  // The key id is bound to the ciphertext: editing it in metadata makes decryption fail, not pick another key.
  return enc.encode(`kaon/${CIPHER}/${keyId}`);
}

function b64(u: Uint8Array): string {
  return Buffer.from(u).toString('base64');
}

/** The inner payload, as JSON: it keeps the original metadata (encoding) and data. */
function serialise(p: Payload): Buffer {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) if (v) metadata[k] = b64(v);
  return Buffer.from(JSON.stringify({ metadata, data: b64(p.data ?? new Uint8Array()) }));
}

function deserialise(bytes: Buffer): Payload {
  const o = JSON.parse(bytes.toString('utf8')) as { metadata: Record<string, string>; data: string };
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(o.metadata)) metadata[k] = Buffer.from(v, 'base64');
  return { metadata, data: Buffer.from(o.data, 'base64') };
}

/** The key id of an encrypted payload, or undefined for a payload this codec did not encrypt. */
export function encryptedKeyId(p: Payload): string | undefined {
  const m = p.metadata;
  if (!m?.encoding || dec.decode(m.encoding) !== ENCRYPTED_ENCODING) return undefined;
  return m[KEY_ID_METADATA] ? dec.decode(m[KEY_ID_METADATA]) : '';
}

/**
 * AES-256-GCM: each payload gets a fresh 12-byte IV; data = IV ‖ ciphertext ‖ tag; metadata names the encoding
 * and the key id. Without a keyring it encrypts nothing and only explains encrypted payloads it cannot read.
 *
 * `refusePlaintext` (a worker's codec, with a keyring): a plaintext payload decodes to a marker that carries only
 * its encoding, never its data; Kaon's workflow and activity interceptors refuse any input holding one.
 */
export class AesGcmCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;

  constructor(
    readonly keyring: Keyring | undefined,
    readonly opts: { refusePlaintext?: boolean } = {},
  ) {
    this.byId = new Map((keyring?.keys ?? []).map((k) => [k.id, k.key]));
  }

  /** The same keys, refusing plaintext on decode (what a worker uses). */
  refusingPlaintext(): AesGcmCodec {
    return this.keyring && !this.opts.refusePlaintext ? new AesGcmCodec(this.keyring, { refusePlaintext: true }) : this;
  }

  encode(payloads: Payload[]): Promise<Payload[]> {
    const current = this.keyring?.keys[0];
    if (!current) return Promise.resolve(payloads);
    return Promise.resolve(
      payloads.map((p) => {
        if (encryptedKeyId(p) !== undefined) return p;
        const iv = randomBytes(IV_BYTES);
        const cipher = createCipheriv('aes-256-gcm', current.key, iv, { authTagLength: TAG_BYTES });
        cipher.setAAD(aad(current.id));
        const body = Buffer.concat([cipher.update(serialise(p)), cipher.final()]);
        return {
          metadata: { encoding: enc.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: enc.encode(current.id), [CIPHER_METADATA]: enc.encode(CIPHER) },
          data: Buffer.concat([iv, body, cipher.getAuthTag()]),
        };
      }),
    );
  }

  decode(payloads: Payload[]): Promise<Payload[]> {
    try {
      return Promise.resolve(payloads.map((p) => this.decodeOne(p)));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private decodeOne(p: Payload): Payload {
    const id = encryptedKeyId(p);
    if (id === undefined) {
      if (!this.opts.refusePlaintext || !this.keyring) return p; // a reader: plaintext, e.g. a run from before encryption
      const encoding = p.metadata?.encoding ? dec.decode(p.metadata.encoding) : 'none';
      return { metadata: { encoding: enc.encode('json/plain') }, data: enc.encode(JSON.stringify({ [REFUSED_PLAINTEXT]: { encoding } })) };
    }
    const key = this.byId.get(id);
    if (!key) {
      throw new KaonError({
        code: ErrorCode.config,
        what: this.keyring
          ? `a payload was encrypted with key "${id}", which the encryption key file ${this.keyring.file} (${KEY_FILE_ENV}) does not have (it has ${[...this.byId.keys()].map((k) => `"${k}"`).join(', ')})`
          : `a payload was encrypted with key "${id}", but no encryption key is configured here (${KEY_FILE_ENV} is not set)`,
        fix: this.keyring
          ? `add the line for key "${id}" back to the key file, below the current key (every line decrypts, only the first encrypts)`
          : `set ${KEY_FILE_ENV} to a key file that has key "${id}" (the one the worker and clients use)`,
      });
    }
    const data = Buffer.from(p.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) throw this.corrupt(id, 'it is too short to be one');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(aad(id));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      return deserialise(Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]));
    } catch (err) {
      throw this.corrupt(id, 'authentication failed', err);
    }
  }

  private corrupt(id: string, why: string, cause?: unknown): KaonError {
    return new KaonError({
      code: ErrorCode.config,
      what: `a payload encrypted with key "${id}" cannot be decrypted: ${why}`,
      fix: `check that key "${id}" in ${this.keyring?.file ?? KEY_FILE_ENV} is the same key the writer used (an id must never be reused for another key); otherwise the payload was altered`,
      ...(cause !== undefined ? { cause } : {}),
    });
  }
}

/** The failure converter module used with a key: message and stack trace go into encrypted attributes. */
export const ENCRYPTED_FAILURES_PATH = require.resolve('./encrypted-failures');

/**
 * The data converter Kaon builds every Temporal client and worker with. With a keyring (from `keyFile`, else
 * $KAON_ENCRYPTION_KEY_FILE): AES-GCM payloads and encrypted failure messages. Without one: plaintext, and an
 * encrypted payload fails with an error that says which key it needs.
 */
export function kaonDataConverter(opts: { keyFile?: string; keyring?: Keyring; env?: NodeJS.ProcessEnv } = {}): DataConverter {
  const keyring = opts.keyring ?? (opts.keyFile ? readKeyFile(opts.keyFile) : keyringFromEnv(opts.env));
  return { payloadCodecs: [new AesGcmCodec(keyring)], ...(keyring ? { failureConverterPath: ENCRYPTED_FAILURES_PATH } : {}) };
}

/** Whether a data converter encrypts: Kaon's codec with a key, or any codec of the caller's own. */
export function converterEncrypts(dc: DataConverter): boolean {
  return (dc.payloadCodecs ?? []).some((c) => !(c instanceof AesGcmCodec) || c.keyring !== undefined);
}

/** A worker's converter: Kaon's codec, when it has a key, refuses plaintext payloads (see AesGcmCodec). */
export function refusingPlaintext(dc: DataConverter): DataConverter {
  if (!dc.payloadCodecs?.some((c) => c instanceof AesGcmCodec && c.keyring)) return dc;
  return { ...dc, payloadCodecs: dc.payloadCodecs.map((c) => (c instanceof AesGcmCodec ? c.refusingPlaintext() : c)) };
}

function isPayload(v: unknown): v is Payload {
  const m = (v as { metadata?: Record<string, unknown> } | null)?.metadata;
  return typeof m === 'object' && m !== null && m.encoding instanceof Uint8Array;
}

async function decodePayloads(converter: LoadedDataConverter, payloads: Payload[]): Promise<Payload[]> {
  let out = payloads;
  for (const codec of [...converter.payloadCodecs].reverse()) out = await codec.decode(out);
  return out;
}

/** One payload's value through the converter's codecs and payload converter. */
export async function decodePayload<T = unknown>(converter: LoadedDataConverter, payload: Payload): Promise<T> {
  const [decoded] = await decodePayloads(converter, [payload]);
  return converter.payloadConverter.fromPayload<T>(decoded!);
}

/**
 * Decode, in place, every payload in a raw message from Temporal (a fetched history, a describe response) with
 * the converter's codecs, and restore failures' encoded messages and stack traces: readers of raw history then
 * see what they would without encryption. Returns `root`.
 */
export async function decodeRaw<T>(converter: LoadedDataConverter, root: T): Promise<T> {
  if (converter.payloadCodecs.length === 0) return root;
  const visit = async (node: unknown): Promise<void> => {
    if (typeof node !== 'object' || node === null || ArrayBuffer.isView(node)) return;
    const obj = node as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      const v = obj[key];
      if (Array.isArray(v)) {
        if (v.length > 0 && v.every(isPayload)) obj[key] = await decodePayloads(converter, v);
        else for (const item of v) await visit(item);
      } else if (isPayload(v)) {
        if (key !== 'indexedFields') [obj[key]] = await decodePayloads(converter, [v]);
      } else if (typeof v === 'object' && v !== null && !ArrayBuffer.isView(v) && !('low' in v && 'high' in v)) {
        // Maps of payloads (memo fields, headers) are objects whose values are payloads; search attributes are never encoded.
        if (key === 'indexedFields') continue;
        await visit(v);
      }
    }
    const attrs = obj.encodedAttributes;
    if (isPayload(attrs) && encryptedKeyId(attrs) === undefined && 'message' in obj) {
      try {
        const a = converter.payloadConverter.fromPayload<{ message?: unknown; stack_trace?: unknown }>(attrs);
        if (typeof a.message === 'string') obj.message = a.message;
        if (typeof a.stack_trace === 'string') obj.stackTrace = a.stack_trace;
      } catch {
        // Not the SDK's { message, stack_trace }: leave the failure as it is.
      }
    }
  };
  await visit(root);
  return root;
}

/** One line for start-up banners: which key encrypts, how many decrypt; undefined without encryption. */
export function encryptionSummary(dc: DataConverter): string | undefined {
  const codec = dc.payloadCodecs?.find((c): c is AesGcmCodec => c instanceof AesGcmCodec);
  const ring = codec?.keyring;
  if (!ring) return undefined;
  return `payloads encrypted (${CIPHER}) with key "${ring.keys[0]!.id}" from ${ring.file}; ${ring.keys.length === 1 ? 'it alone decrypts' : `keys ${ring.keys.map((k) => `"${k.id}"`).join(', ')} decrypt`}`;
}
