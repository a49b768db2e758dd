// Connections over a real TLS endpoint (test/support/tls-proxy.ts, in front of the dev server): TLS with the
// right CA, mTLS with a client certificate, an API key. The client, the worker and the CLI connect through
// Temporal's envconfig settings and run a pipeline end to end through the proxy. Every way a connection goes
// wrong (wrong CA, no client cert, bad key, TLS/plain-text mismatch, refused port, not a Temporal server, no such
// namespace) is one clear KaonError naming the setting and the fix, within seconds.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from '../../src/client';
import { KaonError } from '../../src/definition';
import { bundlePipelines } from '../../src/runtime/bundle';
import { freePort } from '../../src/runtime/dev-server';
import { createKaonWorker } from '../../src/runtime/worker';
import { createArtifactStore } from '../../src/data/store';
import { cliEnv, CliProcess, kaon } from '../cli/cli-process';
import { cliSlow } from '../fixtures/cli-project/pipelines';
import * as steps from '../fixtures/cli-project/steps';
import { ROOT, testServer } from '../support/temporal';
import { makeCerts, startTlsProxy, type TestCerts, type TlsProxy } from '../support/tls-proxy';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';

const WORKFLOWS = path.join(ROOT, 'test/fixtures/cli-project/pipelines.ts');
const FIXTURE_FLAGS = ['--workflows', 'test/fixtures/cli-project/pipelines.ts', '--activities', 'test/fixtures/cli-project/steps.ts'];
const API_KEY = `kaon-test-${randomUUID()}`;

let dev: string;
let certs: TestCerts;
let tlsProxy: TlsProxy;
let mtlsProxy: TlsProxy;
let keyProxy: TlsProxy;
let http1: http.Server;
let h2: http2.Http2Server;
let artifactsDir: string;
const addr = (s: { address(): unknown }) => `127.0.0.1:${(s.address() as AddressInfo).port}`;

/** The envconfig variables of each way of connecting (everything else TEMPORAL_* is unset). */
type Vars = Record<string, string>;
const modes = (): Record<'tls' | 'mtls' | 'apiKey', { proxy: TlsProxy; vars: Vars }> => ({
  tls: { proxy: tlsProxy, vars: { TEMPORAL_ADDRESS: tlsProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caPath } },
  mtls: {
    proxy: mtlsProxy,
    vars: { TEMPORAL_ADDRESS: mtlsProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caPath, TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCertPath, TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKeyPath },
  },
  apiKey: { proxy: keyProxy, vars: { TEMPORAL_ADDRESS: keyProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caPath, TEMPORAL_API_KEY: API_KEY } },
});

/** Run fn with exactly these TEMPORAL_* variables in process.env (envconfig reads them there). */
async function withEnv<R>(vars: Vars, fn: () => Promise<R>): Promise<R> {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('TEMPORAL_')) delete process.env[k];
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

function cli(vars: Vars, queue = 'tls-none'): NodeJS.ProcessEnv {
  const env = cliEnv({ KAON_TASK_QUEUE: queue, KAON_ARTIFACTS: artifactsDir });
  for (const k of Object.keys(env)) if (k.startsWith('TEMPORAL_')) delete env[k];
  return { ...env, ...vars };
}

before(async () => {
  dev = (await testServer()).address;
  certs = makeCerts();
  tlsProxy = await startTlsProxy(dev, certs, { kind: 'tls' });
  mtlsProxy = await startTlsProxy(dev, certs, { kind: 'mtls' });
  keyProxy = await startTlsProxy(dev, certs, { kind: 'api-key', key: API_KEY });
  http1 = http.createServer((_req, res) => res.end('hello'));
  h2 = http2.createServer();
  h2.on('stream', (s) => s.respond({ ':status': 404 }, { endStream: true }));
  await Promise.all([new Promise<void>((r) => http1.listen(0, '127.0.0.1', r)), new Promise<void>((r) => h2.listen(0, '127.0.0.1', r))]);
  artifactsDir = mkdtempSync(path.join(os.tmpdir(), 'kaon-tls-artifacts-'));
});

after(async () => {
  await Promise.all([tlsProxy?.close(), mtlsProxy?.close(), keyProxy?.close()]);
  http1?.close();
  h2?.close();
  certs?.remove();
  if (artifactsDir) rmSync(artifactsDir, { recursive: true, force: true });
});

describe('a pipeline end to end through the TLS endpoint', { timeout: 120_000 }, () => {
  let bundle: Awaited<ReturnType<typeof bundlePipelines>>;
  before(async () => {
    bundle = await bundlePipelines(WORKFLOWS);
  });

  for (const mode of ['tls', 'mtls', 'apiKey'] as const) {
    // Over mTLS the worker is `kaon worker` (the CLI); otherwise createKaonWorker in this process.
    const workerKind = mode === 'mtls' ? 'kaon worker' : 'createKaonWorker';
    test(`${mode}: the worker (${workerKind}), kaon/client and the CLI (run --wait, status) connect through envconfig`, async () => {
      const { proxy, vars } = modes()[mode];
      const queue = `tls-${mode}-${randomUUID().slice(0, 8)}`;
      const before = proxy.stats.forwarded;
      let stop: () => Promise<void>;
      if (mode === 'mtls') {
        const w = new CliProcess(['worker', ...FIXTURE_FLAGS], { env: cli(vars, queue) });
        stop = async () => {
          w.kill();
          await w.exited;
        };
        try {
          await w.waitFor(new RegExp(`connected to ${proxy.address.replace(/\./g, '\\.')} \\(namespace default\\)[^]*task queue`), 60_000);
        } catch (err) {
          await stop();
          throw err;
        }
      } else {
        const artifacts = createArtifactStore(artifactsDir, { localDir: artifactsDir });
        // No connection passed: the worker reads TEMPORAL_* like a user's deployment would.
        const worker = await withEnv(vars, () => createKaonWorker({ workflowsPath: WORKFLOWS, workflowBundle: bundle, activities: steps, taskQueue: queue, artifacts, shutdownGraceTime: '1s' }));
        const running = worker.run();
        stop = async () => {
          worker.shutdown();
          await running;
        };
      }
      try {
        const client = await withEnv(vars, () => connect({ taskQueue: queue }));
        try {
          const run = await client.start(cliSlow, { ms: 20 });
          assert.deepEqual(await run.result(), { waited: 20, attempt: 1 });
        } finally {
          await client.close();
        }
        const r = await kaon(['run', 'cli-slow', '--params', '{"ms":10}', '--wait', ...FIXTURE_FLAGS], { env: cli(vars, queue) });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /"waited": 10/);
        const id = /^started cli-slow run (\S+)/m.exec(r.stdout)?.[1];
        assert.ok(id, r.stdout);
        const st = await kaon(['status', id], { env: cli(vars, queue) });
        assert.equal(st.code, 0, st.stderr);
        assert.match(st.stdout, /succeeded/);
      } finally {
        await stop();
      }
      // The traffic really went through the TLS endpoint: polls, the runs, the CLI's calls.
      assert.ok(proxy.stats.forwarded - before > 10, `forwarded ${proxy.stats.forwarded - before} streams`);
      if (mode === 'apiKey') assert.equal(keyProxy.stats.unauthenticated, 0, 'every call carried the key');
    });
  }

  test('a temporal.toml profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE) with an API key and a CA', async () => {
    const toml = path.join(certs.dir, 'temporal.toml');
    writeFileSync(toml, `[profile.staging]\naddress = "${keyProxy.address}"\nnamespace = "default"\napi_key = "${API_KEY}"\n\n[profile.staging.tls]\nserver_ca_cert_path = "${certs.caPath}"\n`);
    const before = keyProxy.stats.forwarded;
    const client = await withEnv({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'staging' }, () => connect({ taskQueue: 'tls-profile' }));
    try {
      assert.deepEqual(await client.list({ pipeline: 'no-such-pipeline' }), []);
    } finally {
      await client.close();
    }
    assert.ok(keyProxy.stats.forwarded > before, 'the profile led to the API-key endpoint');
    assert.equal(keyProxy.stats.unauthenticated, 0);
  });
});

interface Row {
  name: string;
  vars: () => Vars;
  /** The subject and the fix the message must name. */
  message: RegExp;
}

const rows: Row[] = [
  {
    name: 'wrong CA (server certificate not trusted)',
    vars: () => ({ TEMPORAL_ADDRESS: tlsProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.otherCaPath }),
    message: /TLS certificate is not trusted: it is not signed by the CA in TEMPORAL_TLS_SERVER_CA_CERT_PATH.*To fix: set TEMPORAL_TLS_SERVER_CA_CERT_PATH/,
  },
  {
    name: 'TLS on with no CA (system roots) against a private CA',
    vars: () => ({ TEMPORAL_ADDRESS: tlsProxy.address, TEMPORAL_TLS: 'true' }),
    message: /TLS certificate is not trusted: no CA is configured.*To fix: set TEMPORAL_TLS_SERVER_CA_CERT_PATH/,
  },
  {
    name: 'TEMPORAL_TLS_SERVER_NAME that the certificate does not name',
    vars: () => ({ TEMPORAL_ADDRESS: tlsProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caPath, TEMPORAL_TLS_SERVER_NAME: 'temporal.wrong.example' }),
    message: /TLS certificate does not match the host name.*To fix: .*set TEMPORAL_TLS_SERVER_NAME/,
  },
  {
    name: 'mTLS required, no client certificate',
    vars: () => ({ TEMPORAL_ADDRESS: mtlsProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caPath }),
    message: /requires a client certificate \(mTLS\) and none is configured.*To fix: set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH/,
  },
  {
    name: 'mTLS with a client certificate from another CA',
    vars: () => ({ TEMPORAL_ADDRESS: mtlsProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caPath, TEMPORAL_TLS_CLIENT_CERT_PATH: certs.strangerCertPath, TEMPORAL_TLS_CLIENT_KEY_PATH: certs.strangerKeyPath }),
    message: /does not accept the client certificate.*To fix: use a client certificate in TEMPORAL_TLS_CLIENT_CERT_PATH/,
  },
  {
    name: 'API key required, none set',
    vars: () => ({ TEMPORAL_ADDRESS: keyProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caPath }),
    message: /requires authentication and no API key is set \(UNAUTHENTICATED\).*To fix: set TEMPORAL_API_KEY/,
  },
  {
    name: 'wrong API key',
    vars: () => ({ TEMPORAL_ADDRESS: keyProxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caPath, TEMPORAL_API_KEY: 'not-the-key' }),
    message: /refused the API key \(UNAUTHENTICATED\).*To fix: set TEMPORAL_API_KEY .* to a valid/,
  },
  {
    name: 'TLS against a plain-text server',
    vars: () => ({ TEMPORAL_ADDRESS: dev, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caPath }),
    message: /TLS is on but the server speaks plain text.*To fix: turn TLS off with TEMPORAL_TLS=false/,
  },
  {
    name: 'plain text against a TLS server',
    vars: () => ({ TEMPORAL_ADDRESS: tlsProxy.address }),
    message: /the server requires TLS and Kaon connected in plain text.*To fix: turn TLS on: set TEMPORAL_TLS=true, with TEMPORAL_TLS_SERVER_CA_CERT_PATH/,
  },
  {
    name: 'nothing listens at TEMPORAL_ADDRESS (ECONNREFUSED)',
    vars: () => ({ TEMPORAL_ADDRESS: refusedAddress }),
    message: /cannot reach Temporal at 127\.0\.0\.1:\d+ \(namespace default\): connection refused, nothing listens there\. To fix: start a local server with `kaon dev`.*TEMPORAL_ADDRESS/,
  },
  {
    name: 'TEMPORAL_ADDRESS is an HTTP/1 server',
    vars: () => ({ TEMPORAL_ADDRESS: addr(http1) }),
    message: /is not a Temporal server: it speaks HTTP\/1.*To fix: point TEMPORAL_ADDRESS .* at the Temporal frontend's gRPC port/,
  },
  {
    name: 'TEMPORAL_ADDRESS is an HTTP/2 server answering 404',
    vars: () => ({ TEMPORAL_ADDRESS: addr(h2) }),
    message: /speaks HTTP\/2 but is not a Temporal frontend \(UNIMPLEMENTED\).*To fix: point TEMPORAL_ADDRESS/,
  },
  {
    name: 'a namespace that does not exist',
    vars: () => ({ TEMPORAL_ADDRESS: dev, TEMPORAL_NAMESPACE: 'no-such-ns' }),
    message: /namespace "no-such-ns" does not exist on this Temporal server.*To fix: create it \(`temporal operator namespace create -n no-such-ns`.*or set TEMPORAL_NAMESPACE/,
  },
];
let refusedAddress: string;

function assertClear(err: unknown, row: Row): true {
  assert.ok(err instanceof KaonError, `a KaonError, not ${String(err)}`);
  assert.equal(err.code, 'KAON_CONFIG');
  assert.equal(err.retryable, false);
  assert.doesNotMatch(err.message, /\n/, 'one line');
  assert.match(err.message, row.message);
  return true;
}

describe('connection errors name the setting and the fix, fast', { timeout: 180_000 }, () => {
  before(async () => {
    refusedAddress = `127.0.0.1:${await freePort()}`;
  });

  for (const row of rows) {
    test(row.name, async () => {
      // kaon/client: a probe raced with grpc-js's connect names the cause (grpc-js alone says nothing for 5 s).
      let t0 = Date.now();
      await assert.rejects(withEnv(row.vars(), () => connect({ taskQueue: 'tls-none' })), (e) => assertClear(e, row));
      const clientMs = Date.now() - t0;
      assert.ok(clientMs < 4_000, `client: ${clientMs} ms`);
      // The worker's start: NativeConnection (Rust core) fails at once; so must Kaon's message.
      t0 = Date.now();
      await assert.rejects(withEnv(row.vars(), () => createKaonWorker({ workflowsPath: WORKFLOWS, activities: steps, taskQueue: 'tls-none', queues: ['default'] })), (e) => assertClear(e, row));
      const workerMs = Date.now() - t0;
      assert.ok(workerMs < 8_000, `worker: ${workerMs} ms`);
    });
  }

  test('the CLI (kaon status, kaon worker) prints the same one-line errors and exits 1', async () => {
    const picked = rows.filter((r) => /^wrong CA|no client certificate|none set|plain text against|HTTP\/1|namespace/.test(r.name));
    assert.equal(picked.length, 6);
    const results = await Promise.all(
      picked.flatMap((row) => [
        kaon(['status', 'some-run'], { env: cli(row.vars()), timeoutMs: 60_000 }).then((r) => ({ row, cmd: 'status', r })),
        kaon(['worker', ...FIXTURE_FLAGS], { env: cli(row.vars()), timeoutMs: 60_000 }).then((r) => ({ row, cmd: 'worker', r })),
      ]),
    );
    for (const { row, cmd, r } of results) {
      assert.equal(r.code, 1, `${cmd} / ${row.name}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `${cmd} / ${row.name}: one line: ${r.stderr}`);
      assert.match(lines[0]!, new RegExp(`^kaon ${cmd}: `));
      assert.match(lines[0]!, row.message, `${cmd} / ${row.name}`);
      assert.match(lines[0]!, /\[KAON_CONFIG\]$/);
    }
  });
});
