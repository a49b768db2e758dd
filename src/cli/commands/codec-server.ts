// `kaon codec-server`: the Temporal codec-server protocol (POST /encode, /decode) over Kaon's AES-GCM codec, so
// the Temporal Web UI and CLI can show encrypted payloads. CORS for the UI's origin; a bearer token.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { AesGcmCodec, KEY_FILE_ENV, keyringFromEnv, readKeyFile } from '../../data/codec';
import { ErrorCode, KaonError } from '../../definition/errors';
import { flag, int, list, say, str, usageError, type CommandSpec } from '../command';

export const DEFAULT_CODEC_PORT = 8888;
/** The Web UI of `temporal server start-dev` (and `kaon dev`, which links it as 127.0.0.1). */
export const DEFAULT_CORS_ORIGINS = ['http://localhost:8233', 'http://127.0.0.1:8233'];
const MAX_BODY = 32 * 1024 * 1024;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
const ALLOWED_HEADERS = 'content-type, x-namespace, authorization';

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Required as `Authorization: Bearer <token>` (or as the endpoint's first path segment); null = no auth. */
  token: string | null;
  /** Origins allowed by CORS, e.g. http://localhost:8233. */
  corsOrigins: readonly string[];
}

export interface CodecServer {
  /** `http://host:port` */
  url: string;
  /** The endpoint for the Web UI: it cannot send a header, so the token rides in the path. */
  uiEndpoint: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();
const same = (a: string, b: string) => timingSafeEqual(digest(a), digest(b));

function parseOrigin(origin: string): string {
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    throw usageError('codec-server', `--cors-origin ${JSON.stringify(origin)} is not a URL`, 'pass the Web UI origin, e.g. --cors-origin http://localhost:8233');
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.origin !== origin.replace(/\/+$/, '')) {
    throw usageError('codec-server', `--cors-origin ${JSON.stringify(origin)} is not an origin (scheme://host[:port], no path)`, 'pass the Web UI origin, e.g. --cors-origin http://localhost:8233 or https://cloud.temporal.io');
  }
  return u.origin;
}

function b64(field: string, v: unknown): Uint8Array {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new HttpError(400, `${field} is not a base64 string. To fix: send {"payloads":[{"metadata":{"encoding":"<base64>"},"data":"<base64>"}]}`);
  return Buffer.from(v, 'base64');
}

function readPayloads(body: unknown): Payload[] {
  const list = (body as { payloads?: unknown } | null)?.payloads;
  if (!Array.isArray(list)) throw new HttpError(400, 'the body has no "payloads" array. To fix: send {"payloads":[{"metadata":{…},"data":"<base64>"}]} (the Temporal codec-server protocol)');
  return list.map((p: unknown, i) => {
    const o = p as { metadata?: unknown; data?: unknown } | null;
    if (typeof o !== 'object' || o === null || (o.metadata !== undefined && (typeof o.metadata !== 'object' || o.metadata === null))) {
      throw new HttpError(400, `payloads[${i}] is not a payload object. To fix: send {"metadata":{k: base64},"data": base64}`);
    }
    const metadata: Record<string, Uint8Array> = {};
    for (const [k, v] of Object.entries((o.metadata ?? {}) as Record<string, unknown>)) metadata[k] = b64(`payloads[${i}].metadata.${k}`, v);
    return { metadata, data: o.data === undefined ? new Uint8Array() : b64(`payloads[${i}].data`, o.data) };
  });
}

function writePayloads(payloads: Payload[]): string {
  return JSON.stringify({
    payloads: payloads.map((p) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
      data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
    })),
  });
}

/** Start a codec server. Resolves once it listens. */
export async function startCodecServer(opts: CodecServerOptions): Promise<CodecServer> {
  const host = opts.host ?? '127.0.0.1';
  const origins = new Set(opts.corsOrigins);
  const loopback = LOOPBACK.has(host.replace(/^\[|\]$/g, ''));
  const server = http.createServer((req, res) => {
    const origin = req.headers.origin;
    const allowed = origin !== undefined && origins.has(origin);
    const headers: Record<string, string> = { vary: 'Origin', 'cache-control': 'no-store' };
    if (allowed) Object.assign(headers, { 'access-control-allow-origin': origin, 'access-control-allow-credentials': 'true' });
    const send = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { ...headers, 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    const fail = (status: number, message: string) => send(status, JSON.stringify({ error: message }));
    void (async () => {
      // Without a token, only loopback names: a web page cannot reach the server through DNS rebinding.
      if (opts.token === null && loopback && !LOOPBACK.has((req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '').toLowerCase())) {
        return fail(403, 'this codec server answers loopback names only');
      }
      const url = new URL(req.url ?? '/', 'http://codec');
      let segments = url.pathname.split('/').filter(Boolean);
      if (req.method === 'OPTIONS') {
        if (!allowed) return fail(403, `origin ${JSON.stringify(origin ?? '')} is not allowed. To fix: start kaon codec-server with --cors-origin ${origin ?? '<the Web UI origin>'}`);
        res.writeHead(204, { ...headers, 'access-control-allow-methods': 'POST, OPTIONS', 'access-control-allow-headers': ALLOWED_HEADERS, 'access-control-max-age': '600' });
        return res.end();
      }
      if (opts.token !== null) {
        const auth = req.headers.authorization ?? '';
        const bearer = /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim();
        // The Web UI cannot add a header: its endpoint carries the token as the first path segment instead.
        const inPath = segments.length === 2 && same(segments[0]!, opts.token);
        if (inPath) segments = segments.slice(1);
        else if (!bearer || !same(bearer, opts.token)) {
          res.setHeader('www-authenticate', 'Bearer');
          return fail(401, `${bearer ? 'wrong' : 'no'} bearer token. To fix: send Authorization: Bearer <the token kaon codec-server was started with> (temporal … --codec-auth "Bearer <token>"), or use the printed Web UI endpoint`);
        }
      }
      const op = segments.length === 1 ? segments[0] : undefined;
      if (op !== 'encode' && op !== 'decode') return fail(404, `no route ${JSON.stringify(url.pathname)}. To fix: POST /encode or /decode`);
      if (req.method !== 'POST') return fail(405, `${op} takes POST`);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of req) {
        size += (c as Buffer).length;
        if (size > MAX_BODY) return fail(413, `the body is over ${MAX_BODY / 1024 / 1024} MiB`);
        chunks.push(c as Buffer);
      }
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return fail(400, 'the body is not JSON. To fix: send {"payloads":[…]} with content-type application/json');
      }
      const payloads = readPayloads(body);
      const out = op === 'encode' ? await opts.codec.encode(payloads) : await opts.codec.decode(payloads);
      send(200, writePayloads(out));
    })().catch((err: unknown) => {
      if (res.headersSent) return res.destroy();
      if (err instanceof HttpError) fail(err.status, err.message);
      // A payload whose key this server lacks: the message names the key id and the fix.
      else if (err instanceof KaonError) fail(422, err.message);
      else fail(500, err instanceof Error ? err.message : String(err));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new KaonError({ code: ErrorCode.config, what: `the codec server cannot listen on ${host}:${opts.port ?? 0}: ${err.code ?? err.message}`, where: '--port', fix: 'pick another --port (0 = any free one) or stop what uses it', cause: err })),
    );
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 0);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url,
    uiEndpoint: opts.token === null ? url : `${url}/${encodeURIComponent(opts.token)}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

export const codecServerCommand: CommandSpec = {
  name: 'codec-server',
  summary: "serve /encode and /decode for the Temporal Web UI and CLI with Kaon's encryption keys (KAON_ENCRYPTION_KEY_FILE)",
  options: {
    host: { type: 'string', value: 'host', description: 'address to listen on (default 127.0.0.1)' },
    port: { type: 'string', value: 'port', description: `port (default $KAON_CODEC_SERVER_PORT or ${DEFAULT_CODEC_PORT}; 0 = any free port)` },
    'cors-origin': { type: 'string', multiple: true, value: 'origin', description: `Web UI origin allowed to call it (default ${DEFAULT_CORS_ORIGINS.join(' and ')}, the dev server's UI); repeatable` },
    token: { type: 'string', value: 'token', description: 'bearer token callers must send (default $KAON_CODEC_SERVER_TOKEN)' },
    'no-auth': { type: 'boolean', description: 'serve without a token (loopback only; anyone on this machine can then decrypt)' },
    'key-file': { type: 'string', value: 'file', description: `the key file (default $${KEY_FILE_ENV})` },
  },
  notes: [
    'Key file: one `keyId:base64-of-32-bytes` per line (`openssl rand -base64 32` makes a key); the first line encrypts, every line decrypts.',
    'The Web UI cannot send a header: give it the printed endpoint, which carries the token in its path.',
  ],
  async run({ io, values }) {
    const keyFile = str(values, 'key-file');
    const keyring = keyFile ? readKeyFile(keyFile) : keyringFromEnv(io.env);
    if (!keyring) throw usageError('codec-server', `no encryption key: --key-file is not given and ${KEY_FILE_ENV} is not set`, `pass --key-file <file> or set ${KEY_FILE_ENV} (one \`keyId:base64\` per line; make a key with \`openssl rand -base64 32\`)`);
    const host = str(values, 'host') ?? '127.0.0.1';
    if (!/^[A-Za-z0-9.:[\]-]+$/.test(host)) throw usageError('codec-server', `--host ${JSON.stringify(host)} is not a host name or address`, 'pass e.g. --host 127.0.0.1');
    const port = int('codec-server', { port: values.port ?? io.env.KAON_CODEC_SERVER_PORT }, 'port', DEFAULT_CODEC_PORT, 0);
    if (port > 65535) throw usageError('codec-server', `--port ${port} is over 65535`, `pass e.g. --port ${DEFAULT_CODEC_PORT}`);
    const noAuth = flag(values, 'no-auth');
    const token = str(values, 'token') ?? io.env.KAON_CODEC_SERVER_TOKEN;
    if (noAuth && token) throw usageError('codec-server', '--no-auth and a token (--token or KAON_CODEC_SERVER_TOKEN) were both given', 'drop one of them');
    if (!noAuth && !token) {
      throw usageError('codec-server', 'no token: a codec server decrypts every payload for whoever calls it', `pass --token <secret> or set KAON_CODEC_SERVER_TOKEN (e.g. $(openssl rand -hex 24)); or, on loopback only, --no-auth. A random one: ${randomBytes(18).toString('base64url')}`);
    }
    if (token !== undefined && !/^[A-Za-z0-9._~+-]{16,512}$/.test(token)) {
      throw usageError('codec-server', 'the token is not 16–512 characters of letters, digits and ._~+-', 'use e.g. $(openssl rand -hex 24)');
    }
    const loopback = LOOPBACK.has(host.replace(/^\[|\]$/g, ''));
    if (noAuth && !loopback) throw usageError('codec-server', `--no-auth on ${host}: anyone who reaches it could decrypt every payload`, 'keep --no-auth to the default host 127.0.0.1, or give a token');
    const corsOrigins = (list(values, 'cors-origin') ?? DEFAULT_CORS_ORIGINS).map(parseOrigin);
    const server = await startCodecServer({ codec: new AesGcmCodec(keyring), host, port, token: noAuth ? null : token!, corsOrigins });
    try {
      if (noAuth) say(io.stderr, 'kaon codec-server: warning: --no-auth: any program on this machine can decrypt payloads through it');
      say(io.stdout, `kaon codec-server: ${server.url} (POST /encode, /decode); key "${keyring.keys[0]!.id}" encrypts, ${keyring.keys.map((k) => `"${k.id}"`).join(', ')} decrypt (${keyring.file})`);
      say(io.stdout, `kaon codec-server: CORS for ${corsOrigins.join(', ')}`);
      say(io.stdout, `kaon codec-server: Web UI: KAON_CODEC_ENDPOINT=${server.uiEndpoint} kaon dev`);
      say(io.stdout, 'kaon codec-server:   (or paste it in the UI\'s Data Encoder settings; with a bare `temporal server start-dev`, put `ui-codec-endpoint` in an --env-file, not on its command line, where ps shows the token)');
      if (!noAuth) say(io.stdout, `kaon codec-server: CLI: temporal workflow show -w <id> --codec-endpoint ${server.url} --codec-auth "Bearer <token>"`);
      say(io.stdout, 'kaon codec-server: Ctrl-C to stop');
      await new Promise<void>((resolve) => {
        if (io.signal?.aborted) resolve();
        else io.signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    } finally {
      await server.close();
    }
    return 0;
  },
};

/** $KAON_CODEC_ENDPOINT, checked: `kaon dev` hands it to the dev server's Web UI (--ui-codec-endpoint). */
export function uiCodecEndpoint(env: NodeJS.ProcessEnv): { uiCodecEndpoint: string } | Record<string, never> {
  const v = env.KAON_CODEC_ENDPOINT;
  if (!v) return {};
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
    throw new KaonError({ code: ErrorCode.config, what: `KAON_CODEC_ENDPOINT ${JSON.stringify(v)} is not an http(s) URL`, fix: 'set it to the Web UI endpoint `kaon codec-server` prints, e.g. http://127.0.0.1:8888/<token>, or unset it' });
  }
  return { uiCodecEndpoint: v.replace(/\/+$/, '') };
}
