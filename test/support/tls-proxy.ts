// A real TLS endpoint in front of the plain-text dev server, like a Temporal frontend with TLS configured
// (server `tls.frontend` with `requireClientAuth` + `clientCaFiles` for mTLS) or Temporal Cloud with API keys
// (`authorization: Bearer <key>` on every call). Certificates are made at test time with the machine's openssl.
//
// Each gRPC stream (headers, data, trailers) is forwarded to the dev server over one plain-text HTTP/2 session.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface TestCerts {
  dir: string;
  /** The CA that signed the server and client certificates. */
  caPath: string;
  /** Another CA, which signed nothing here: trusting it instead of caPath is the "wrong CA". */
  otherCaPath: string;
  serverCertPath: string;
  serverKeyPath: string;
  clientCertPath: string;
  clientKeyPath: string;
  /** A client certificate signed by the other CA: the mTLS server must refuse it. */
  strangerCertPath: string;
  strangerKeyPath: string;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, a server certificate for 127.0.0.1/localhost and client certificates, in a temp folder. */
export function makeCerts(): TestCerts {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-tls-'));
  const days = ['-days', '2'];
  const ca = (name: string) => openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, ...days, '-subj', `/CN=Kaon test ${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const leaf = (name: string, signer: string, ext: string) => {
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
    writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.pem`, '-CAkey', `${signer}.key`, '-CAcreateserial', '-out', `${name}.pem`, ...days, '-extfile', `${name}.ext`], dir);
  };
  ca('ca');
  ca('other-ca');
  leaf('server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  leaf('client', 'ca', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  leaf('stranger', 'other-ca', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  const p = (f: string) => path.join(dir, f);
  return {
    dir,
    caPath: p('ca.pem'),
    otherCaPath: p('other-ca.pem'),
    serverCertPath: p('server.pem'),
    serverKeyPath: p('server.key'),
    clientCertPath: p('client.pem'),
    clientKeyPath: p('client.key'),
    strangerCertPath: p('stranger.pem'),
    strangerKeyPath: p('stranger.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export type ProxyMode = { kind: 'tls' } | { kind: 'mtls' } | { kind: 'api-key'; key: string };

export interface TlsProxy {
  /** host:port of the TLS endpoint. */
  address: string;
  /** Streams forwarded, and streams refused for a missing or wrong API key. */
  stats: { forwarded: number; unauthenticated: number };
  close(): Promise<void>;
}

// Hop-by-hop and pseudo headers are per connection; everything else (content-type, te, grpc-*, metadata) goes on.
const DROP = new Set([':scheme', ':authority', ':status', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'http2-settings', 'proxy-connection']);

function forwardable(h: http2.IncomingHttpHeaders | http2.OutgoingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (!DROP.has(k) && v !== undefined) out[k] = v;
  return out;
}

/** Start the TLS endpoint on 127.0.0.1 (a free port), forwarding to the plain-text `target` (host:port). */
export async function startTlsProxy(target: string, certs: TestCerts, mode: ProxyMode): Promise<TlsProxy> {
  const stats = { forwarded: 0, unauthenticated: 0 };
  let upstream: http2.ClientHttp2Session | undefined;
  const session = () => {
    if (!upstream || upstream.closed || upstream.destroyed) {
      upstream = http2.connect(`http://${target}`);
      upstream.on('error', () => undefined); // each stream reports its own failure
    }
    return upstream;
  };
  const server = http2.createSecureServer({
    key: readFileSync(certs.serverKeyPath),
    cert: readFileSync(certs.serverCertPath),
    ALPNProtocols: ['h2'],
    allowHTTP1: false,
    ...(mode.kind === 'mtls' ? { ca: readFileSync(certs.caPath), requestCert: true, rejectUnauthorized: true } : {}),
  });
  server.on('tlsClientError', () => undefined); // a refused handshake is what some tests want
  server.on('sessionError', () => undefined);
  server.on('stream', (down, headers) => {
    down.on('error', () => undefined);
    if (mode.kind === 'api-key' && headers.authorization !== `Bearer ${mode.key}`) {
      stats.unauthenticated++;
      // A trailers-only response, as a gRPC server sends for a call it refuses before running it.
      down.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': 'Request unauthenticated: missing or invalid API key' }, { endStream: true });
      return;
    }
    stats.forwarded++;
    let up: http2.ClientHttp2Stream;
    try {
      up = session().request(forwardable(headers));
    } catch {
      down.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    let trailers: http2.OutgoingHttpHeaders = {};
    up.on('response', (h) => {
      if (down.destroyed) return;
      if (h['grpc-status'] !== undefined) {
        down.respond(forwardable(h), { endStream: true }); // trailers-only
        up.resume();
        return;
      }
      down.respond(forwardable(h), { waitForTrailers: true });
      up.pipe(down);
    });
    up.on('trailers', (t) => (trailers = forwardable(t)));
    down.on('wantTrailers', () => down.sendTrailers(trailers));
    up.on('error', () => {
      if (!down.destroyed) down.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
    up.on('close', () => {
      if (!down.destroyed && !down.headersSent) down.close(up.rstCode || http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
    down.on('close', () => {
      if (!up.destroyed) up.close(http2.constants.NGHTTP2_CANCEL);
    });
    down.pipe(up);
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    stats,
    close: async () => {
      for (const s of sessions) s.destroy();
      upstream?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
