// Payload encryption against the real server: with a key, no param, output, heartbeat, summary, result or error
// text reaches Temporal in plaintext (checked in the raw protobuf bytes of history and describe), while Kaon's
// client, board, CLI and codec server read it all back. Key rotation, unknown keys and bad key files.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Client, type Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { connect, type KaonClient } from '../../src/client';
import { ENCRYPTED_ENCODING, ENCRYPTED_FAILURES_PATH, KEY_ID_METADATA, AesGcmCodec, kaonDataConverter, parseKeyFile, readKeyFile } from '../../src/data/codec';
import { KaonError } from '../../src/definition';
import { startBoard } from '../../src/observe/board/server';
import { bundlePipelines } from '../../src/runtime/bundle';
import type { KaonWorker } from '../../src/runtime/worker';
import { runCli } from '../../src/cli/main';
import { startCodecServer, uiCodecEndpoint } from '../../src/cli/commands/codec-server';
import { freePort, startDevServer } from '../../src/runtime/dev-server';
import * as activities from '../fixtures/security';
import { secret } from '../fixtures/security/workflows';
import { cliEnv, kaon as runKaon } from '../cli/cli-process';
import { ROOT, testEnv, type TestEnv } from '../support/temporal';

const WORKFLOWS = path.join(ROOT, 'test/fixtures/security/workflows.ts');
const key = () => randomBytes(32).toString('base64');
const K1 = key();
const K2 = key();

let dir: string;
let env: TestEnv;
let bundle: Awaited<ReturnType<typeof bundlePipelines>>;
let fileA: string; // k1
let fileB: string; // k2 (encrypts), k1
let fileC: string; // k2 only
let raw: Client; // no codec: sees what the server stores
let kaonA: KaonClient;
let worker: KaonWorker;
let running: Promise<void>;

function write(name: string, text: string): string {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
}

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-codec-'));
  fileA = write('a.keys', `# Kaon keys\nk1:${K1}\n`);
  fileB = write('b.keys', `k2:${K2}\nk1:${K1}\n`);
  fileC = write('c.keys', `k2:${K2}\n`);
  env = await testEnv('codec');
  raw = new Client({ connection: env.temporal.connection as Connection, namespace: env.temporal.options.namespace });
  kaonA = await clientWith(fileA);
  bundle = await bundlePipelines(WORKFLOWS, { failureConverterPath: ENCRYPTED_FAILURES_PATH });
  worker = await startWorker(fileA);
});

after(async () => {
  worker?.shutdown();
  await running;
  await env?.close();
  rmSync(dir, { recursive: true, force: true });
});

function clientWith(keyFile: string): Promise<KaonClient> {
  return connect({ connection: env.temporal.connection as Connection, taskQueue: env.taskQueue, dataConverter: kaonDataConverter({ keyFile }) });
}

async function startWorker(keyFile: string): Promise<KaonWorker> {
  const w = await env.worker({ workflowsPath: WORKFLOWS, workflowBundle: bundle, activities, workerOptions: { dataConverter: kaonDataConverter({ keyFile }) } });
  running = w.run();
  return w;
}

/** The run's full history as the server sends it, re-serialised to protobuf bytes. */
async function historyBytes(workflowId: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await raw.workflowService.getWorkflowExecutionHistory({ namespace: raw.options.namespace, execution: { workflowId }, ...(nextPageToken ? { nextPageToken } : {}) });
    parts.push(Buffer.from(temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse.encode(page).finish()));
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return Buffer.concat(parts);
}

async function describeBytes(workflowId: string): Promise<{ bytes: Buffer; res: temporal.api.workflowservice.v1.IDescribeWorkflowExecutionResponse }> {
  const res = await raw.workflowService.describeWorkflowExecution({ namespace: raw.options.namespace, execution: { workflowId } });
  return { bytes: Buffer.from(temporal.api.workflowservice.v1.DescribeWorkflowExecutionResponse.encode(res).finish()), res };
}

async function firstInputPayload(workflowId: string): Promise<temporal.api.common.v1.IPayload> {
  const page = await raw.workflowService.getWorkflowExecutionHistory({ namespace: raw.options.namespace, execution: { workflowId }, maximumPageSize: 1 });
  const p = page.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  assert.ok(p, 'the run has recorded params');
  return p;
}

const meta = (p: temporal.api.common.v1.IPayload, k: string) => Buffer.from(p.metadata?.[k] ?? new Uint8Array()).toString();

function errorText(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e instanceof Error; e = e.cause) parts.push(e.message);
  return parts.join(' | ');
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 45_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let okRun: string; // succeeded, encrypted with k1
let okMarker: string;
let failedRun: string;
let failedMarker: string;

test('with a key, no param, output, heartbeat, summary, result or error appears in plaintext on the server; Kaon reads them back', async () => {
  okMarker = `MARK-${randomUUID()}`;
  const gate = path.join(dir, 'gate');
  const run = await kaonA.start(secret, { marker: okMarker, gate });
  okRun = run.id;
  // The heartbeat, live: decoded through Kaon's client, ciphertext in the server's pending-activity state.
  const state = await until('the heartbeat progress', async () => {
    const s = await run.progress();
    return s.steps.find((x) => x.step === 'secSlow' && x.progress?.message === `heartbeat ${okMarker}`) ? s : undefined;
  });
  assert.equal(state.summary, `summary ${okMarker}`);
  const live = await describeBytes(run.id);
  assert.ok(live.res.pendingActivities?.some((p) => p.heartbeatDetails?.payloads?.length), 'sanity: the server holds the step heartbeat');
  assert.ok(!live.bytes.includes(okMarker), 'no marker in the raw describe response of the running run (heartbeat, memo, user metadata)');
  writeFileSync(gate, '');
  assert.deepEqual(await run.result(), { result: `result output ${okMarker}` });

  const bytes = await historyBytes(run.id);
  assert.ok(bytes.includes(ENCRYPTED_ENCODING), 'sanity: history holds encrypted payloads');
  assert.ok(!bytes.includes(okMarker), 'no marker anywhere in the raw history');
  assert.ok(!(await describeBytes(run.id)).bytes.includes(okMarker), 'no marker in the raw describe of the closed run');
  const input = await firstInputPayload(run.id);
  assert.equal(meta(input, 'encoding'), ENCRYPTED_ENCODING);
  assert.equal(meta(input, KEY_ID_METADATA), 'k1');
  // Without a codec the payloads cannot be read.
  await assert.rejects(raw.workflow.getHandle(run.id).result());
  // The Web UI's static details (they list the params) decode through the keyed client.
  assert.match((await kaonA.temporal.workflow.getHandle(run.id).describe().then((d) => d.staticDetails())) ?? '', new RegExp(okMarker));
  // A step's recorded input, read back from history.
  assert.deepEqual((await kaonA.stepCall(run.id, 'secEcho')).input, { text: okMarker });

  // A failing step with the marker in its error: the message and stack are encrypted too.
  failedMarker = `MARK-${randomUUID()}`;
  const failing = await kaonA.start(secret, { marker: failedMarker, fail: true });
  failedRun = failing.id;
  const err = await failing.result().then(() => undefined, (e: unknown) => e);
  assert.ok(err, 'the run failed');
  assert.match(errorText(err), new RegExp(`step error ${failedMarker}`), 'the error decodes through the keyed client');
  const fbytes = await historyBytes(failing.id);
  assert.ok(fbytes.includes('Encoded failure'), 'sanity: failures carry encoded attributes');
  assert.ok(!fbytes.includes(failedMarker), 'no marker in the failed run\'s history (failure messages and stack traces included)');
  assert.equal((await kaonA.stepCall(failing.id, 'secExplode')).failure?.includes(`step error ${failedMarker}`), true, 'the step failure reads back decoded');
});

test('schedules: the params of a schedule and of the runs it starts are encrypted on the server', async () => {
  const marker = `MARK-${randomUUID()}`;
  const id = `codec-${randomUUID().slice(0, 8)}`;
  await kaonA.schedules.create({ id, pipeline: secret, params: { marker }, every: '1 hour', paused: true });
  try {
    const d = await raw.workflowService.describeSchedule({ namespace: raw.options.namespace, scheduleId: id });
    assert.ok(!Buffer.from(temporal.api.workflowservice.v1.DescribeScheduleResponse.encode(d).finish()).includes(marker), 'no marker in the raw schedule');
    await kaonA.schedules.trigger(id);
    const wf = await until('the scheduled run', async () => (await kaonA.schedules.describe(id)).recent[0]?.runId);
    assert.deepEqual(await kaonA.run(wf).result(), { result: `result output ${marker}` });
    assert.ok(!(await historyBytes(wf)).includes(marker), 'no marker in the scheduled run\'s history');
  } finally {
    await kaonA.schedules.delete(id);
  }
});

test('control: the same check finds the marker when the client has no key (params stay plaintext)', async () => {
  const marker = `MARK-${randomUUID()}`;
  const plain = await connect({ connection: env.temporal.connection as Connection, taskQueue: env.taskQueue, dataConverter: kaonDataConverter({ env: {} }) });
  const run = await plain.start(secret, { marker });
  // The keyed worker refuses the plaintext run (test/security/fail-closed.test.ts); its params are in history all the same.
  await assert.rejects(kaonA.run(run.id).result(), /arrived in plaintext.*\[KAON_PLAINTEXT_REFUSED\]/);
  assert.ok((await historyBytes(run.id)).includes(marker), 'a plaintext param is visible in raw history: the detector works');
});

test("the board's HTTP API returns decoded params, results, step input/output and failures of encrypted runs", async () => {
  const board = await startBoard({ kaon: kaonA, artifacts: env.artifacts, token: 'codec-test-token-1234', assetsDir: path.join(ROOT, 'dist', 'board') });
  const plain = await connect({ connection: env.temporal.connection as Connection, taskQueue: env.taskQueue, dataConverter: kaonDataConverter({ env: {} }) });
  const blind = await startBoard({ kaon: plain, artifacts: env.artifacts, token: 'codec-test-token-1234', assetsDir: path.join(ROOT, 'dist', 'board') });
  try {
    const get = async (b: typeof board, p: string) => {
      const res = await fetch(`${b.url.replace(/\/$/, '')}${p}`, { headers: { authorization: 'Bearer codec-test-token-1234' } });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const r = await get(board, `/api/run?id=${encodeURIComponent(okRun)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.params, { marker: okMarker, gate: path.join(dir, 'gate') });
    assert.deepEqual(r.body.result, { result: `result output ${okMarker}` });
    const s = await get(board, `/api/step?id=${encodeURIComponent(okRun)}&key=secEcho`);
    assert.deepEqual(s.body.input, { text: okMarker });
    assert.deepEqual(s.body.output, { echoed: `output ${okMarker}` });
    const f = await get(board, `/api/step?id=${encodeURIComponent(failedRun)}&key=secExplode`);
    assert.match(String((f.body.failure as { message?: string } | undefined)?.message), new RegExp(`step error ${failedMarker}`));
    // A board without the key says which key it needs instead of showing ciphertext.
    const b = await get(blind, `/api/run?id=${encodeURIComponent(okRun)}`);
    assert.notEqual(b.status, 200);
    assert.match(JSON.stringify(b.body), /key \\?"k1\\?".*KAON_ENCRYPTION_KEY_FILE/);
  } finally {
    await board.close();
    await blind.close();
  }
});

test('CLI: kaon status shows the decoded run with the key; without it, no plaintext and an error naming the key', async () => {
  const base = { TEMPORAL_ADDRESS: env.address, TEMPORAL_NAMESPACE: 'default', KAON_TASK_QUEUE: env.taskQueue };
  const ok = await runKaon(['status', okRun, '--json'], { env: cliEnv({ ...base, KAON_ENCRYPTION_KEY_FILE: fileA }) });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`summary ${okMarker}`));
  const none = await runKaon(['status', okRun, '--json'], { env: cliEnv({ ...base, KAON_ENCRYPTION_KEY_FILE: undefined }) });
  assert.ok(!none.stdout.includes(okMarker) && !none.stderr.includes(okMarker));
  assert.match(none.stdout + none.stderr, /k1/);
  const bad = await runKaon(['status', okRun], { env: cliEnv({ ...base, KAON_ENCRYPTION_KEY_FILE: write('bad.keys', 'k1:notbase64!!\n') }) });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /bad\.keys.*line 1.*not valid base64.*To fix: .*\[KAON_CONFIG\]/);
});

test('codec server: decodes payloads of a real history, round-trips encode/decode, CORS for the UI origin only, 401 without the token', async () => {
  const server = await startCodecServer({ codec: new AesGcmCodec(readKeyFile(fileB)), token: 'codec-token-0123456789', corsOrigins: ['http://localhost:8233'] });
  try {
    const post = (p: string, body: unknown, headers: Record<string, string> = { authorization: 'Bearer codec-token-0123456789' }) =>
      fetch(`${server.url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    const wire = (p: temporal.api.common.v1.IPayload) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
    });
    const encrypted = wire(await firstInputPayload(okRun));
    const res = await post('/decode', { payloads: [encrypted] });
    assert.equal(res.status, 200);
    const [decoded] = ((await res.json()) as { payloads: { metadata: Record<string, string>; data: string }[] }).payloads;
    assert.equal(Buffer.from(decoded!.metadata.encoding!, 'base64').toString(), 'json/plain');
    assert.equal((JSON.parse(Buffer.from(decoded!.data, 'base64').toString()) as { marker: string }).marker, okMarker);

    const plain = { metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: Buffer.from('"round trip"').toString('base64') };
    const enc = (await (await post('/encode', { payloads: [plain] })).json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
    assert.equal(Buffer.from(enc.payloads[0]!.metadata[KEY_ID_METADATA]!, 'base64').toString(), 'k2', 'encodes with the first key');
    assert.ok(!Buffer.from(enc.payloads[0]!.data, 'base64').includes('round trip'));
    const back = (await (await post('/decode', enc)).json()) as { payloads: unknown[] };
    assert.deepEqual(back.payloads, [plain]);
    // The Web UI's endpoint carries the token in its path (the UI cannot add a header).
    const viaUi = await post(`${new URL(server.uiEndpoint).pathname}/decode`, { payloads: [encrypted] }, { origin: 'http://localhost:8233' });
    assert.equal(viaUi.status, 200);
    assert.equal(viaUi.headers.get('access-control-allow-origin'), 'http://localhost:8233');

    const pre = (origin: string) => fetch(`${server.url}/decode`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace,authorization' } });
    const good = await pre('http://localhost:8233');
    assert.equal(good.status, 204);
    assert.equal(good.headers.get('access-control-allow-origin'), 'http://localhost:8233');
    assert.match(good.headers.get('access-control-allow-headers') ?? '', /content-type.*x-namespace.*authorization/);
    assert.match(good.headers.get('access-control-allow-methods') ?? '', /POST/);
    const evil = await pre('http://evil.example');
    assert.equal(evil.headers.get('access-control-allow-origin'), null);

    assert.equal((await post('/decode', { payloads: [encrypted] }, {})).status, 401);
    assert.equal((await post('/decode', { payloads: [encrypted] }, { authorization: 'Bearer wrong-token-0123456789' })).status, 401);
    assert.equal((await post('/nope/decode', { payloads: [encrypted] }, {})).status, 401, 'a wrong path token is no token');
    const bad = await post('/decode', { payloads: [{ metadata: { encoding: '!!' } }] });
    assert.equal(bad.status, 400);
  } finally {
    await server.close();
  }
  // The same server without key k1 answers 422 naming it.
  const k2only = await startCodecServer({ codec: new AesGcmCodec(readKeyFile(fileC)), token: null, corsOrigins: [] });
  try {
    const p = await firstInputPayload(okRun);
    const res = await fetch(`${k2only.url}/decode`, { method: 'POST', body: JSON.stringify({ payloads: [{ metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])), data: Buffer.from(p.data!).toString('base64') }] }) });
    assert.equal(res.status, 422);
    assert.match(((await res.json()) as { error: string }).error, /key "k1".*To fix/);
  } finally {
    await k2only.close();
  }
});

test('kaon codec-server: refuses to start without a token, or with a bad port or origin; starts and serves with one', async () => {
  const out: string[] = [];
  const err: string[] = [];
  const io = (envv: NodeJS.ProcessEnv, signal?: AbortSignal) => ({ stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, cwd: ROOT, env: envv, ...(signal ? { signal } : {}) });
  const keyEnv = { KAON_ENCRYPTION_KEY_FILE: fileB };
  assert.equal(await runCli(['codec-server', '--port', '0'], io(keyEnv)), 2);
  assert.match(err.join(''), /no token.*To fix: pass --token <secret> or set KAON_CODEC_SERVER_TOKEN.*--no-auth/);
  assert.equal(await runCli(['codec-server', '--port', '70000', '--token', 'codec-token-0123456789'], io(keyEnv)), 2);
  assert.equal(await runCli(['codec-server', '--port', '0', '--token', 'codec-token-0123456789', '--cors-origin', 'http://x/path'], io(keyEnv)), 2);
  assert.equal(await runCli(['codec-server', '--port', '0', '--no-auth', '--host', '0.0.0.0'], io(keyEnv)), 2);
  assert.equal(await runCli(['codec-server', '--port', '0', '--token', 'codec-token-0123456789'], io({})), 2, 'no key file');
  assert.match(err.join(''), /no encryption key/);

  out.length = 0;
  const ac = new AbortController();
  const exited = runCli(['codec-server', '--port', '0'], io({ ...keyEnv, KAON_CODEC_SERVER_TOKEN: 'codec-token-0123456789' }, ac.signal));
  const url = await until('the codec server URL', () => Promise.resolve(/kaon codec-server: (http:\/\/127\.0\.0\.1:\d+) /.exec(out.join(''))?.[1]), 20_000);
  assert.match(out.join(''), /Web UI: KAON_CODEC_ENDPOINT=http:\/\/127\.0\.0\.1:\d+\/codec-token-0123456789 kaon dev/);
  assert.doesNotMatch(out.join(''), /--ui-codec-endpoint http/, 'no advice to put the token on a command line');
  const res = await fetch(`${url}/encode`, { method: 'POST', headers: { authorization: 'Bearer codec-token-0123456789' }, body: JSON.stringify({ payloads: [] }) });
  assert.equal(res.status, 200);
  assert.equal((await fetch(`${url}/encode`, { method: 'POST', body: '{"payloads":[]}' })).status, 401);
  ac.abort();
  assert.equal(await exited, 0);

  out.length = 0;
  err.length = 0;
  const ac2 = new AbortController();
  const open = runCli(['codec-server', '--port', '0', '--no-auth'], io(keyEnv, ac2.signal));
  await until('the no-auth server', () => Promise.resolve(/kaon codec-server: http/.exec(out.join('')) ?? undefined), 20_000);
  assert.match(err.join(''), /warning: --no-auth/);
  ac2.abort();
  assert.equal(await open, 0);
});

test('a dev server started with KAON_CODEC_ENDPOINT gives its Web UI the codec server, which answers the UI origin', async () => {
  const ui = await freePort();
  const origin = `http://127.0.0.1:${ui}`;
  const codec = await startCodecServer({ codec: new AesGcmCodec(readKeyFile(fileA)), token: 'codec-token-0123456789', corsOrigins: [origin] });
  const dev = await startDevServer({ port: 0, uiPort: ui, dbFile: null, ...uiCodecEndpoint({ KAON_CODEC_ENDPOINT: codec.uiEndpoint }) });
  try {
    const settings = (await (await fetch(`${dev.uiUrl}/api/v1/settings`)).json()) as { Codec: { Endpoint: string } };
    assert.equal(settings.Codec.Endpoint, codec.uiEndpoint);
    // No secret on a command line: the token is in no process's arguments (the dev server read it from a 0600 file,
    // since removed), though the server has it.
    const ps = execFileSync('ps', ['-eo', 'pid,args', '-ww'], { encoding: 'utf8' });
    const line = ps.split('\n').find((l) => l.trim().startsWith(`${dev.pid} `));
    assert.ok(line && /server start-dev .*--env-file \S+ --env kaon-dev/.test(line), `the dev server is in ps: ${line}`);
    assert.ok(!ps.includes('codec-token-0123456789'), 'the codec token is not in ps output');
    assert.ok(!existsSync(line.split('--env-file ')[1]!.split(' ')[0]!), 'the env file is gone once the server started');
    // What the UI does with it: a preflight, then POST <endpoint>/decode from its origin with X-Namespace.
    const pre = await fetch(`${settings.Codec.Endpoint}/decode`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' } });
    assert.equal(pre.headers.get('access-control-allow-origin'), origin);
    const p = await firstInputPayload(okRun);
    const res = await fetch(`${settings.Codec.Endpoint}/decode`, {
      method: 'POST',
      headers: { origin, 'content-type': 'application/json', 'x-namespace': 'default' },
      body: JSON.stringify({ payloads: [{ metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])), data: Buffer.from(p.data!).toString('base64') }] }),
    });
    assert.equal(res.status, 200);
    const out = (await res.json()) as { payloads: { data: string }[] };
    assert.match(Buffer.from(out.payloads[0]!.data, 'base64').toString(), new RegExp(okMarker));
  } finally {
    await dev.stop();
    await codec.close();
  }
  assert.throws(() => uiCodecEndpoint({ KAON_CODEC_ENDPOINT: 'ftp://x' }), /KAON_CODEC_ENDPOINT "ftp:\/\/x" is not an http\(s\) URL.*\[KAON_CONFIG\]/);
});

test('rotation: with "k2, k1" old runs decode and new runs use k2; with only k2 an old run fails naming k1', async () => {
  worker.shutdown();
  await running;
  worker = await startWorker(fileB);
  const kaonB = await clientWith(fileB);
  assert.deepEqual(await kaonB.run(okRun).result(), { result: `result output ${okMarker}` });
  const marker = `MARK-${randomUUID()}`;
  const run = await kaonB.start(secret, { marker });
  assert.deepEqual(await run.result(), { result: `result output ${marker}` });
  assert.equal(meta(await firstInputPayload(run.id), KEY_ID_METADATA), 'k2');
  assert.ok(!(await historyBytes(run.id)).includes(marker));
  // The run encrypted with k1 went through a worker that now encrypts with k2: both keys decrypt its history.
  assert.deepEqual((await kaonB.stepCall(okRun, 'secEcho')).input, { text: okMarker });

  // Resume reads the old run's params and step results from its k1 history, through the k2-encrypting worker.
  const resumed = await kaonB.resume(okRun);
  assert.deepEqual(await resumed.result(), { result: `result output ${okMarker}` });
  assert.deepEqual((await resumed.progress()).steps.map((x) => [x.key, x.status]), [['secEcho', 'cached'], ['secSlow', 'cached']]);
  assert.ok(!(await historyBytes(resumed.id)).includes(okMarker));

  const kaonC = await clientWith(fileC);
  assert.deepEqual(await kaonC.run(run.id).result(), { result: `result output ${marker}` }, 'k2 alone reads the k2 run');
  const err = await kaonC.run(okRun).result().then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof Error);
  assert.match(errorText(err), /encrypted with key "k1", which the encryption key file .*c\.keys \(KAON_ENCRYPTION_KEY_FILE\) does not have \(it has "k2"\).*To fix: add the line for key "k1" back/);
  await assert.rejects(kaonC.stepCall(okRun, 'secEcho'), /key "k1"/);
});

test('bad key files are KAON_CONFIG errors naming the file and the line', () => {
  const cases: [string, string, RegExp][] = [
    ['short', `k1:${randomBytes(16).toString('base64')}\n`, /line 1, has a key for "k1" of 16 bytes; AES-256 needs exactly 32/],
    ['base64', '\n# comment\nk1:@@@@\n', /line 3, has a key for "k1" that is not valid base64/],
    ['duplicate', `k1:${K1}\nk1:${K2}\n`, /line 2, repeats key id "k1" \(first on line 1\)/],
    ['nocolon', `${K1}\n`, /line 1, has no `keyId:` prefix/],
    ['badid', `k 1:${K1}\n`, /line 1, has key id "k 1", which is not valid/],
    ['empty', '# nothing\n', /has no keys/],
  ];
  for (const [name, text, re] of cases) {
    const file = write(`${name}.keys`, text);
    const e = (() => {
      try {
        readKeyFile(file);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    assert.ok(e instanceof KaonError, name);
    assert.equal(e.code, 'KAON_CONFIG', name);
    assert.ok(e.message.includes(file), `${name}: names the file`);
    assert.match(e.message, re, name);
    assert.match(e.message, /To fix: /, name);
  }
  assert.throws(() => readKeyFile(path.join(dir, 'missing.keys')), /missing\.keys \(KAON_ENCRYPTION_KEY_FILE\) cannot be read \(ENOENT\).*To fix/);
  if (process.getuid?.() !== 0) {
    const locked = write('locked.keys', `k1:${K1}\n`);
    chmodSync(locked, 0o000);
    assert.throws(() => readKeyFile(locked), /locked\.keys .*cannot be read \(EACCES\)/);
  }
  assert.throws(() => kaonDataConverter({ env: { KAON_ENCRYPTION_KEY_FILE: path.join(dir, 'missing.keys') } }), /cannot be read/);
  assert.equal(parseKeyFile(`k2:${K2}\r\nk1:${K1}\r\n`, 'mem').keys.map((k) => k.id).join(','), 'k2,k1', 'CRLF files parse');
  assert.equal(kaonDataConverter({ env: {} }).failureConverterPath, undefined, 'no key: the default failure converter');
});

test('a tampered payload or a reused key id fails authentication, never decrypts to garbage', async () => {
  const codec = new AesGcmCodec(readKeyFile(fileA));
  const [p] = await codec.encode([{ metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('"x"') }]);
  const flipped = Buffer.from(p!.data!);
  flipped[flipped.length - 20]! ^= 1;
  await assert.rejects(codec.decode([{ ...p!, data: flipped }]), /key "k1" cannot be decrypted: authentication failed/);
  const other = new AesGcmCodec(parseKeyFile(`k1:${K2}`, 'other'));
  await assert.rejects(other.decode([p!]), /authentication failed.*an id must never be reused/);
  const relabelled = { ...p!, metadata: { ...p!.metadata, [KEY_ID_METADATA]: Buffer.from('k2') } };
  await assert.rejects(new AesGcmCodec(readKeyFile(fileB)).decode([relabelled]), /authentication failed/, 'the key id is bound to the ciphertext');
});
