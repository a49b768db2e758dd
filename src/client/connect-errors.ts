// One place that turns a failed connection to Temporal into a KaonError naming the setting at fault and the fix.
// Used by the client (kaon/client connect), the worker (createKaonWorker) and the CLI (kaon run/status/worker…).
//
// The SDKs' own errors are too vague to act on: grpc-js (the client) says only "Failed to connect before the
// deadline" for a refused port, an untrusted CA, a missing client certificate or TLS against plain text alike.
// So on failure we probe the address ourselves (a TCP connect, a TLS handshake with the same CA and client
// certificate, the HTTP/2 preface) and name what the probe saw. Node built-ins only: the client stays thin.
import net from 'node:net';
import tls from 'node:tls';
import { ErrorCode, KaonError } from '../definition/errors';

/** The TLS part of the connection options, as @temporalio/client and @temporalio/worker both take it. */
export interface ConnectTls {
  serverNameOverride?: string | undefined;
  serverRootCACertificate?: Uint8Array | undefined;
  clientCertPair?: { crt: Uint8Array; key: Uint8Array } | undefined;
}

/** What Kaon tried to connect to, with which settings. */
export interface ConnectTarget {
  /** host:port; empty for a connection the caller made (then nothing is probed). */
  address: string;
  namespace: string;
  tls?: ConnectTls | boolean | null | undefined;
  apiKey?: unknown;
}

/** Where each setting comes from, in Temporal's envconfig conventions: the variable, and the temporal.toml key. */
const S = {
  address: 'TEMPORAL_ADDRESS (temporal.toml: address)',
  namespace: 'TEMPORAL_NAMESPACE (temporal.toml: namespace)',
  tls: 'TEMPORAL_TLS (temporal.toml: tls.disabled)',
  ca: 'TEMPORAL_TLS_SERVER_CA_CERT_PATH or _DATA (temporal.toml: tls.server_ca_cert_path)',
  cert: 'TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH, or their _DATA (temporal.toml: tls.client_cert_path, tls.client_key_path)',
  serverName: 'TEMPORAL_TLS_SERVER_NAME (temporal.toml: tls.server_name)',
  apiKey: 'TEMPORAL_API_KEY (temporal.toml: api_key)',
};

/** How long the probe waits for each stage (connect, handshake, first frame): a live server answers in ms. */
const PROBE_MS = 3000;

type Probe =
  | { ok: true; alpn?: string | false | undefined }
  | { ok: false; kind: 'refused' | 'unknown-host' | 'timeout' | 'closed' | 'http1' | 'not-h2' | 'tls-server' | 'plain-server' | 'untrusted' | 'name' | 'expired' | 'cert-required' | 'cert-refused' | 'other'; detail: string };

function errno(err: unknown): string {
  return ((err as NodeJS.ErrnoException)?.code ?? '').toUpperCase();
}

function hostPort(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address.replace(/^[a-z]+:\/\//, ''));
  return m ? { host: m[1]!, port: Number(m[2]) } : { host: address, port: 7233 };
}

function tlsOptions(t: ConnectTarget): ConnectTls | undefined {
  if (t.tls === true) return {};
  if (t.tls && typeof t.tls === 'object') return t.tls;
  return t.apiKey !== undefined && t.tls !== false ? {} : undefined;
}

function classifyTlsError(err: unknown): Probe {
  const code = errno(err);
  const raw = (err as Error)?.message ?? String(err);
  // OpenSSL's text is "<hex>:error:<hex>:SSL routines:<function>:<reason>:<file>:<line>…": keep the reason.
  const msg = /SSL routines:[^:]*:([^:]+)/.exec(raw)?.[1] ?? raw.split('\n')[0]!;
  const detail = `${code ? `${code}: ` : ''}${msg}`;
  if (code === 'ECONNREFUSED') return { ok: false, kind: 'refused', detail };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { ok: false, kind: 'unknown-host', detail };
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST|RECORD_LAYER_FAILURE|UNKNOWN_PROTOCOL/i.test(detail)) return { ok: false, kind: 'plain-server', detail };
  if (/CERT_HAS_EXPIRED|CERT_NOT_YET_VALID/.test(code)) return { ok: false, kind: 'expired', detail };
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return { ok: false, kind: 'name', detail };
  if (/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_UNTRUSTED|CERT_SIGNATURE_FAILURE/.test(code)) return { ok: false, kind: 'untrusted', detail };
  if (/CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE/i.test(detail)) return { ok: false, kind: 'cert-required', detail };
  if (/UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|DECRYPT_ERROR|ACCESS_DENIED/i.test(detail)) return { ok: false, kind: 'cert-refused', detail };
  if (code === 'ECONNRESET' || code === 'EPIPE') return { ok: false, kind: 'closed', detail };
  return { ok: false, kind: 'other', detail };
}

// The client's connection preface and an empty SETTINGS frame: an HTTP/2 server answers with its SETTINGS.
const H2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

/** Send the HTTP/2 preface on an open socket and see what comes back. */
function firstAnswer(sock: net.Socket, done: (p: Probe) => void, secure: boolean): void {
  let buf = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    if (buf.length < 9 && !buf.subarray(0, 5).toString('latin1').startsWith('HTTP/')) return;
    if (buf.subarray(0, 5).toString('latin1') === 'HTTP/') return done({ ok: false, kind: 'http1', detail: buf.toString('latin1').split('\r\n')[0] ?? '' });
    if (!secure && buf[0] === 0x15 && buf[1] === 0x03) return done({ ok: false, kind: 'tls-server', detail: 'the server answered with a TLS alert' });
    if (buf[3] === 0x04) return done({ ok: true });
    return done({ ok: false, kind: 'other', detail: `unexpected answer to the HTTP/2 preface: ${buf.subarray(0, 16).toString('hex')}` });
  });
  sock.on('end', () => done({ ok: false, kind: 'closed', detail: 'the server closed the connection without an HTTP/2 answer' }));
  sock.write(H2_PREFACE);
}

/** Probe the transport the way gRPC would use it: TCP, then TLS (when configured), then HTTP/2. */
export function probeTransport(target: ConnectTarget, timeoutMs = PROBE_MS): Promise<Probe> {
  const { host, port } = hostPort(target.address);
  const t = tlsOptions(target);
  return new Promise<Probe>((resolve) => {
    let sock: net.Socket | undefined;
    let finished = false;
    const timer = setTimeout(() => done({ ok: false, kind: 'timeout', detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
    timer.unref();
    function done(p: Probe): void {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock?.destroy();
      resolve(p);
    }
    if (t) {
      const servername = t.serverNameOverride ?? (net.isIP(host) ? undefined : host);
      const s = tls.connect({
        host,
        port,
        ...(servername ? { servername } : {}),
        ...(t.serverRootCACertificate ? { ca: Buffer.from(t.serverRootCACertificate) } : {}),
        ...(t.clientCertPair ? { cert: Buffer.from(t.clientCertPair.crt), key: Buffer.from(t.clientCertPair.key) } : {}),
        ALPNProtocols: ['h2'],
      });
      sock = s;
      s.on('error', (err) => done(classifyTlsError(err)));
      // With TLS 1.3 the server checks the client certificate after our handshake completes: a refusal arrives
      // as an alert instead of the server's first HTTP/2 frame, so wait for that frame.
      s.on('secureConnect', () => (s.alpnProtocol === 'h2' ? firstAnswer(s, done, true) : done({ ok: false, kind: 'not-h2', detail: `ALPN ${s.alpnProtocol || 'none'}` })));
    } else {
      const s = net.connect({ host, port });
      sock = s;
      s.on('error', (err) => done(classifyTlsError(err)));
      s.on('connect', () => firstAnswer(s, done, false));
    }
  }).then(async (p) => {
    // A plain-text connection the server drops: does it speak TLS? Then TLS is what is missing.
    if (!t && !p.ok && (p.kind === 'closed' || p.kind === 'other' || p.kind === 'tls-server')) {
      const speaksTls = await new Promise<boolean>((resolve) => {
        const s = tls.connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
        const timer = setTimeout(() => { s.destroy(); resolve(false); }, timeoutMs);
        timer.unref();
        s.on('secureConnect', () => { clearTimeout(timer); s.destroy(); resolve(true); });
        s.on('error', () => { clearTimeout(timer); resolve(false); });
      });
      if (speaksTls) return { ok: false, kind: 'tls-server', detail: 'the server completed a TLS handshake' } as Probe;
    }
    return p;
  });
}

/** The gRPC status code of an SDK error, if it carries one (grpc-js ServiceError, its cause, or core's text). */
function grpcCode(err: unknown): number | undefined {
  for (let e: unknown = err, i = 0; e && i < 4; e = (e as { cause?: unknown }).cause, i++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'number') return c;
    const m = (e as Error).message ?? '';
    const lead = /^(\d+) [A-Z_]+:/.exec(m);
    if (lead) return Number(lead[1]);
    if (/valid authentication credentials|UNAUTHENTICATED/i.test(m)) return 16;
    if (/does not have permission|PERMISSION_DENIED/i.test(m)) return 7;
    if (/not implemented or not supported|UNIMPLEMENTED|HTTP status code 404/i.test(m)) return 12;
    if (/Namespace .* is not found|NOT_FOUND/i.test(m)) return 5;
  }
  return undefined;
}

function firstLine(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, i = 0; e && i < 3; e = (e as { cause?: unknown }).cause, i++) {
    const m = ((e as Error).message ?? String(e)).split('\n')[0]!.trim();
    if (m && !parts.includes(m)) parts.push(m);
  }
  return parts.join(': ').slice(0, 300);
}

/** `what` names the address and namespace itself when it starts with "cannot reach Temporal at". */
function fail(target: ConnectTarget, what: string, fix: string, cause: unknown): KaonError {
  const at = target.address ? `Temporal at ${target.address}, namespace ${target.namespace}` : `namespace ${target.namespace}`;
  return new KaonError({ code: ErrorCode.config, what: what.startsWith('cannot reach Temporal at') ? what : `${what} (${at})`, fix, cause });
}

/**
 * The one mapping from a failed connect (or the namespace check right after it) to a KaonError that names the
 * setting at fault and the fix. Probes the transport when the SDK's error does not say what went wrong.
 */
export async function connectError(err: unknown, target: ConnectTarget, probed?: Probe): Promise<KaonError> {
  if (err instanceof KaonError) return err;
  const t = tlsOptions(target);
  const hasKey = target.apiKey !== undefined && target.apiKey !== '';
  const code = grpcCode(err);
  if (code === 5) {
    return fail(target, `namespace "${target.namespace}" does not exist on this Temporal server`, `create it (\`temporal operator namespace create -n ${target.namespace}\`, or in Temporal Cloud's console), or set ${S.namespace} to an existing one`, err);
  }
  if (code === 16) {
    return hasKey
      ? fail(target, 'the server refused the API key (UNAUTHENTICATED)', `set ${S.apiKey} to a valid, unexpired key for this namespace`, err)
      : fail(target, 'the server requires authentication and no API key is set (UNAUTHENTICATED)', `set ${S.apiKey}, or use mTLS with ${S.cert}`, err);
  }
  if (code === 7) {
    return fail(target, `the server refused access to namespace "${target.namespace}" (PERMISSION_DENIED)`, `use an API key (${S.apiKey}) or client certificate (${S.cert}) allowed in this namespace, or set ${S.namespace}`, err);
  }
  // A connection given by the caller: its address is unknown here, so there is nothing to probe.
  const probe: Probe = probed ?? (target.address ? await probeTransport(target) : { ok: true });
  if (probe.ok) {
    if (code === 12) return fail(target, 'the server at this address speaks HTTP/2 but is not a Temporal frontend (UNIMPLEMENTED)', `point ${S.address} at the Temporal frontend's gRPC port (7233 by default; Temporal Cloud: <namespace>.<account>.tmprl.cloud:7233)`, err);
    return fail(target, `cannot reach Temporal: ${firstLine(err)}`, `check ${S.address} points at a running Temporal frontend, or start a local server with \`kaon dev\``, err);
  }
  const d = probe.detail;
  switch (probe.kind) {
    case 'refused':
      return fail(target, `cannot reach Temporal at ${target.address} (namespace ${target.namespace}): connection refused, nothing listens there`, `start a local server with \`kaon dev\` (or \`npm run demo\`), or point ${S.address} / TEMPORAL_PROFILE at your cluster`, err);
    case 'unknown-host':
      return fail(target, `cannot reach Temporal: the host in ${target.address} is unknown (${d})`, `check the host name in ${S.address}`, err);
    case 'timeout':
      return fail(target, `cannot reach Temporal: ${target.address} does not answer (${d})`, `check ${S.address} and that a firewall lets you reach that port`, err);
    case 'http1':
      return fail(target, `the server at ${target.address} is not a Temporal server: it speaks HTTP/1 (${d})`, `point ${S.address} at the Temporal frontend's gRPC port (7233 by default), not at the Web UI or another HTTP service`, err);
    case 'not-h2':
      return fail(target, `the TLS server at ${target.address} is not a gRPC server: it does not offer HTTP/2 (${d})`, `point ${S.address} at the Temporal frontend's gRPC port`, err);
    case 'tls-server':
      return fail(target, `the server requires TLS and Kaon connected in plain text (${d})`, `turn TLS on: set TEMPORAL_TLS=true, with ${S.ca} if its certificate is not signed by a public CA (an API key in ${S.apiKey} turns TLS on too)`, err);
    case 'plain-server':
      return fail(target, `TLS is on but the server speaks plain text (${d})`, `turn TLS off with TEMPORAL_TLS=false (a local dev server has no TLS), or point ${S.address} at the server's TLS port`, err);
    case 'untrusted':
      return fail(target, `the server's TLS certificate is not trusted: ${t?.serverRootCACertificate ? 'it is not signed by the CA in' : 'no CA is configured, and the system roots do not trust it; see'} ${S.ca} (${d})`, `set ${S.ca} to the PEM of the CA that signed the server's certificate`, err);
    case 'name':
      return fail(target, `the server's TLS certificate does not match the host name (${d})`, `connect with the name on its certificate in ${S.address}, or set ${S.serverName} to it`, err);
    case 'expired':
      return fail(target, `a TLS certificate is expired or not yet valid (${d})`, 'renew the certificate (server or client) and check the machine clock', err);
    case 'cert-required':
      return t?.clientCertPair
        ? fail(target, `the server refused the TLS handshake (${d})`, `check the client certificate in ${S.cert} is one the server accepts`, err)
        : fail(target, `the server requires a client certificate (mTLS) and none is configured (${d})`, `set ${S.cert} to a certificate and key signed by a CA the server trusts`, err);
    case 'cert-refused':
      return fail(target, `the server refused the client certificate (${d})`, `use a client certificate in ${S.cert} that is signed by a CA the server trusts (and not expired)`, err);
    case 'closed':
      return t?.clientCertPair
        ? fail(target, `the server closed the TLS connection right after the handshake: it does not accept the client certificate (${d})`, `use a client certificate in ${S.cert} signed by a CA the server trusts`, err)
        : t
        ? fail(target, `the server closed the TLS connection (${d})`, `if it requires mTLS, set ${S.cert}; check ${S.address}`, err)
        : fail(target, `the server at ${target.address} closed the connection: it is not a Temporal server speaking plain-text gRPC (${d})`, `point ${S.address} at the Temporal frontend's gRPC port, and set TEMPORAL_TLS=true if it needs TLS`, err);
    default:
      return fail(target, `cannot connect to Temporal: ${firstLine(err)} (${d})`, `check ${S.address} and the TLS settings (${S.tls}, ${S.ca}, ${S.cert})`, err);
  }
}

/**
 * Check the namespace exists right after connecting, so a typo fails now, naming TEMPORAL_NAMESPACE, instead of
 * at the first call. Also catches a server that is not Temporal (it answers UNIMPLEMENTED). A credential that may
 * not describe namespaces (PERMISSION_DENIED) is left for the calls it may make.
 */
export async function checkNamespace(describe: (req: { namespace: string }) => Promise<unknown>, target: ConnectTarget): Promise<void> {
  try {
    await describe({ namespace: target.namespace });
  } catch (err) {
    if (grpcCode(err) === 7) return;
    throw await connectError(err, target);
  }
}

/** Run a connect (and its namespace check), turning any failure into the KaonError of connectError. */
export async function withConnectErrors<T>(target: ConnectTarget, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw await connectError(err, target);
  }
}

/** grpc-js goes through an HTTP CONNECT proxy when these are set: then a direct probe proves nothing. */
function proxied(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['grpc_proxy', 'https_proxy', 'http_proxy', 'GRPC_PROXY', 'HTTPS_PROXY', 'HTTP_PROXY'].some((k) => env[k]);
}

/**
 * `open()` (a grpc-js connect, which reports any failure only at its deadline, as "Failed to connect before the
 * deadline"), raced with a probe of the same address: a refused port, an untrusted certificate or a TLS mismatch
 * fails in milliseconds instead of after the timeout. Any failure becomes the KaonError of connectError.
 */
export async function connectFast<C extends { close(): Promise<void> }>(target: ConnectTarget, open: () => Promise<C>): Promise<C> {
  const opening = open().then((c) => ({ c }), (err: unknown) => ({ err }));
  const probing = proxied() || !target.address ? new Promise<never>(() => undefined) : probeTransport(target);
  const first = await Promise.race([opening, probing.then((probe) => ({ probe }))]);
  if ('probe' in first && !first.probe.ok && first.probe.kind !== 'timeout' && first.probe.kind !== 'other') {
    void opening.then((o) => ('c' in o ? o.c.close() : undefined)).catch(() => undefined);
    throw await connectError(new Error(first.probe.detail), target, first.probe);
  }
  const opened = await opening;
  if ('err' in opened) throw await connectError(opened.err, target);
  return opened.c;
}
