// Encryption fails closed, on a real server (issue #22):
// - once a namespace or task queue is marked encrypted (`kaon encryption require`), a client, the CLI, a board or a
//   worker without the key refuses to start, signal, update or serve there, before anything reaches history;
// - a worker with a key refuses a plaintext run, signal or update at once, non-retryably, and runs no code.
// Queue marks keep these tests off the shared server's default namespace; the namespace mark uses its own namespace.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { Client, WorkflowFailedError, WorkflowUpdateFailedError, type Connection } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { msToTs } from '@temporalio/common/lib/time';
import { connect, type KaonClient } from '../../src/client';
import { AesGcmCodec, ENCRYPTED_FAILURES_PATH, kaonDataConverter, readKeyFile } from '../../src/data/codec';
import { REFUSED_PLAINTEXT } from '../../src/definition/internal/plaintext';
import { DELIVER_SIGNAL, UPDATE_PAUSE } from '../../src/definition/internal/protocol';
import { bundlePipelines } from '../../src/runtime/bundle';
import type { KaonWorker } from '../../src/runtime/worker';
import * as activities from '../fixtures/security';
import { secret } from '../fixtures/security/workflows';
import { cliEnv, kaon as runKaon } from '../cli/cli-process';
import { ROOT, testEnv, type TestEnv } from '../support/temporal';

const WORKFLOWS = path.join(ROOT, 'test/fixtures/security/workflows.ts');

let dir: string;
let keyFile: string;
let env: TestEnv;
let raw: Client; // no codec at all: what a Temporal tool without Kaon's key writes
let keyed: KaonClient;
let bundle: Awaited<ReturnType<typeof bundlePipelines>>;
const workers: { w: KaonWorker; running: Promise<void> }[] = [];

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-fail-closed-'));
  keyFile = path.join(dir, 'keys');
  writeFileSync(keyFile, `k1:${randomBytes(32).toString('base64')}\n`);
  env = await testEnv('closed');
  const connection = env.temporal.connection as Connection;
  raw = new Client({ connection, namespace: 'default' });
  keyed = await connect({ connection, taskQueue: env.taskQueue, dataConverter: kaonDataConverter({ keyFile }), env: {} });
  bundle = await bundlePipelines(WORKFLOWS, { failureConverterPath: ENCRYPTED_FAILURES_PATH });
});

after(async () => {
  for (const { w } of workers) w.shutdown();
  await Promise.all(workers.map((x) => x.running));
  await env?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function keyedWorker(taskQueue: string): Promise<void> {
  const w = await env.worker({ taskQueue, workflowsPath: WORKFLOWS, workflowBundle: bundle, activities, workerOptions: { dataConverter: kaonDataConverter({ keyFile }) } });
  workers.push({ w, running: w.run() });
}

const cli = (args: string[], extra: Record<string, string | undefined> = {}) =>
  runKaon(args, { env: cliEnv({ TEMPORAL_ADDRESS: env.address, TEMPORAL_NAMESPACE: 'default', KAON_ENCRYPTION_KEY_FILE: undefined, KAON_ENCRYPTION: undefined, ...extra }) });

/** Whether the server has any execution with this workflow id: a refusal before the call leaves none. */
async function exists(workflowId: string, namespace = 'default'): Promise<boolean> {
  try {
    await raw.workflowService.describeWorkflowExecution({ namespace, execution: { workflowId } });
    return true;
  } catch (err) {
    if (/not found/i.test((err as Error).message)) return false;
    throw err;
  }
}

async function eventTypes(workflowId: string): Promise<string[]> {
  const h = await raw.workflow.getHandle(workflowId).fetchHistory();
  return (h.events ?? []).map((e) => Object.keys(e).find((k) => k.endsWith('EventAttributes')) ?? '?');
}

const REFUSED = /has no encryption key \(KAON_ENCRYPTION_KEY_FILE is not set\).*marked encrypted \((namespace data kaon\.encryption[^)]*|KAON_ENCRYPTION=required)\): it refused to .* before writing anything\. To fix: set KAON_ENCRYPTION_KEY_FILE .*\[KAON_ENCRYPTION_REQUIRED\]/;

test('a task queue marked with `kaon encryption require`: keyless client, CLI and worker are refused before anything reaches history; a keyed client runs', async () => {
  const q = `${env.taskQueue}-marked`;
  await keyedWorker(q);
  const mark = await cli(['encryption', 'require', '--task-queue', q]);
  assert.equal(mark.code, 0, mark.stderr);
  assert.match(mark.stdout, new RegExp(`task queue "${q}" of namespace "default" is marked encrypted \\(kaon\\.encryption\\.queue\\.${q}=required\\)`));
  try {
    const status = await cli(['encryption', 'status', '--json']);
    assert.equal(status.code, 0, status.stderr);
    const s = JSON.parse(status.stdout) as { all: string | null; queues: string[]; hasKey: boolean };
    assert.ok(s.queues.includes(q), status.stdout);
    assert.equal(s.hasKey, false);

    const plainQ = await connect({ connection: env.temporal.connection as Connection, taskQueue: q, dataConverter: kaonDataConverter({ env: {} }), env: {} });
    const keyedQ = await connect({ connection: env.temporal.connection as Connection, taskQueue: q, dataConverter: kaonDataConverter({ keyFile }), env: {} });
    const marker = `MARK-${randomUUID()}`;
    // Start: refused by the client, naming the setting; the server never heard of the run.
    const runKey = `refused-${randomUUID().slice(0, 8)}`;
    await assert.rejects(plainQ.start(secret, { marker }, { runKey }), (err: Error) => {
      assert.match(err.message, REFUSED);
      assert.match(err.message, new RegExp(`task queue "${q}", is marked encrypted \\(namespace data kaon\\.encryption\\.queue\\.${q}=required\\): it refused to start a run of sec-secret`));
      return true;
    });
    assert.equal(await exists(`sec-secret--${runKey}`), false, 'nothing reached the server');
    // Events (signal-with-start) and schedules: refused the same way.
    await assert.rejects(plainQ.emit('viewing-history', { marker }), REFUSED);
    await assert.rejects(plainQ.schedules.create({ id: `closed-${randomUUID().slice(0, 8)}`, pipeline: secret, params: { marker }, every: '1 day', paused: true }), REFUSED);
    assert.equal((await raw.workflowService.listWorkflowExecutions({ namespace: 'default', query: `TaskQueue = '${q}'` })).executions?.length ?? 0, 0);

    // A keyed client starts the same run; the keyless one cannot steer it (update, signal), and writes no event.
    const gate = path.join(dir, `gate-${randomUUID()}`);
    const run = await keyedQ.start(secret, { marker, gate }, { runKey });
    const before = await eventTypes(run.id);
    await assert.rejects(plainQ.run(run.id).pause(), REFUSED);
    await assert.rejects(plainQ.temporal.workflow.getHandle(run.id).signal(DELIVER_SIGNAL, { token: 'x', event: 'e', id: '1', payload: marker, at: 0 }), REFUSED);
    const paused = await cli(['pause', run.id], { KAON_TASK_QUEUE: q });
    assert.equal(paused.code, 1);
    assert.match(paused.stderr, /this kaon command has no encryption key.*it refused to update run .*\[KAON_ENCRYPTION_REQUIRED\]/);
    const afterEvents = await eventTypes(run.id);
    assert.ok(!afterEvents.some((e) => /Signaled|Update/.test(e)), `no signal or update reached history: ${afterEvents.join(', ')}`);
    assert.ok(afterEvents.length >= before.length);
    writeFileSync(gate, '');
    assert.deepEqual(await run.result(), { result: `result output ${marker}` });

    // A keyless worker would fail every task there: it refuses to start.
    await assert.rejects(env.worker({ taskQueue: q, workflowsPath: WORKFLOWS, workflowBundle: bundle, activities, workerOptions: { dataConverter: kaonDataConverter({ env: {} }) } }), (err: Error) => {
      assert.match(err.message, /the worker for task queue .* has no encryption key .*it refused to start before writing anything.*\[KAON_ENCRYPTION_REQUIRED\]/);
      return true;
    });
    // A step queue of the marked queue (`<queue>.python`) is covered too.
    await assert.rejects(plainQ.start(secret, { marker }, { taskQueue: `${q}.python` }), REFUSED);
    await plainQ.close();
    await keyedQ.close();
  } finally {
    const off = await cli(['encryption', 'off', '--task-queue', q]);
    assert.equal(off.code, 0, off.stderr);
  }
  // Unmarked: the keyless client may write again (and the keyed worker then refuses the plaintext, see below).
  const after = await connect({ connection: env.temporal.connection as Connection, taskQueue: q, dataConverter: kaonDataConverter({ env: {} }), env: {} });
  const run = await after.start(secret, { marker: 'after-off' });
  assert.equal(await exists(run.id), true);
  await assert.rejects(keyed.run(run.id).result(), /arrived in plaintext.*\[KAON_PLAINTEXT_REFUSED\]/);
  await after.close();
});

test('a namespace marked encrypted refuses every keyless start; KAON_ENCRYPTION=required does the same on one host', async () => {
  const ns = `kaon-enc-${randomUUID().slice(0, 8)}`;
  await raw.workflowService.registerNamespace({ namespace: ns, workflowExecutionRetentionPeriod: msToTs('1 day') });
  const mark = await cli(['encryption', 'require'], { TEMPORAL_NAMESPACE: ns });
  assert.equal(mark.code, 0, mark.stderr);
  assert.match(mark.stdout, new RegExp(`namespace "${ns}" is marked encrypted \\(kaon\\.encryption=required\\)`));
  const status = await cli(['encryption', 'status'], { TEMPORAL_NAMESPACE: ns });
  assert.match(status.stdout, new RegExp(`namespace "${ns}": encrypted \\(namespace data kaon\\.encryption=required\\)[^]*this host: no key`));
  const plainNs = await connect({ connection: env.temporal.connection as Connection, namespace: ns, taskQueue: env.taskQueue, dataConverter: kaonDataConverter({ env: {} }), env: {} });
  const runKey = `ns-${randomUUID().slice(0, 8)}`;
  await assert.rejects(plainNs.start(secret, { marker: 'x' }, { runKey }), (err: Error) => {
    assert.match(err.message, REFUSED);
    assert.match(err.message, new RegExp(`namespace "${ns}" is marked encrypted \\(namespace data kaon\\.encryption=required\\).*unmark it with \`kaon encryption off\``));
    return true;
  });
  assert.equal(await exists(`sec-secret--${runKey}`, ns), false);
  const keyedNs = await connect({ connection: env.temporal.connection as Connection, namespace: ns, taskQueue: env.taskQueue, dataConverter: kaonDataConverter({ keyFile }), env: {} });
  assert.equal(keyedNs.encryption?.hasKey, true);
  await plainNs.close();
  await keyedNs.close();

  // The host setting: the default namespace is not marked, but this client's environment requires encryption.
  const strict = await connect({ connection: env.temporal.connection as Connection, taskQueue: env.taskQueue, dataConverter: kaonDataConverter({ env: {} }), env: { KAON_ENCRYPTION: 'required' } });
  await assert.rejects(strict.start(secret, { marker: 'x' }, { runKey }), /marked encrypted \(KAON_ENCRYPTION=required\).*unset KAON_ENCRYPTION/);
  assert.equal(await exists(`sec-secret--${runKey}`), false);
  await assert.rejects(connect({ connection: env.temporal.connection as Connection, dataConverter: kaonDataConverter({ env: {} }), env: { KAON_ENCRYPTION: 'yes' } }), /KAON_ENCRYPTION="yes" is not a setting Kaon knows\. To fix: set KAON_ENCRYPTION=required.*\[KAON_CONFIG\]/);
});

test('a keyed worker refuses a plaintext run at once, non-retryably, and runs none of its code', async () => {
  const q = `${env.taskQueue}-plain`;
  await keyedWorker(q);
  const plainQ = await connect({ connection: env.temporal.connection as Connection, taskQueue: q, dataConverter: kaonDataConverter({ env: {} }), env: {} });
  const keyedQ = await connect({ connection: env.temporal.connection as Connection, taskQueue: q, dataConverter: kaonDataConverter({ keyFile }), env: {} });
  const marker = `MARK-${randomUUID()}`;
  const run = await plainQ.start(secret, { marker });
  const err = await keyedQ.temporal.workflow.getHandle(run.id).result().then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof WorkflowFailedError, String(err));
  const cause = err.cause;
  assert.ok(cause instanceof ApplicationFailure, String(cause));
  assert.equal(cause.type, 'KAON_PLAINTEXT_REFUSED');
  assert.equal(cause.nonRetryable, true);
  assert.match(cause.message, /the run's params arrived in plaintext \(encoding json\/plain\) at a worker that holds an encryption key.*ran no code\. To fix: .*KAON_ENCRYPTION_KEY_FILE.*kaon encryption require/);
  const events = await eventTypes(run.id);
  // One workflow task, completed by failing the run: no retried task, no step scheduled (no pipeline code ran).
  assert.equal(events.filter((e) => e === 'workflowTaskFailedEventAttributes').length, 0, events.join(', '));
  assert.equal(events.filter((e) => e === 'activityTaskScheduledEventAttributes').length, 0, events.join(', '));
  assert.equal(events.at(-1), 'workflowExecutionFailedEventAttributes');
  // The refusal itself is encrypted like any failure of a keyed worker: the marker is not echoed anywhere new.
  assert.ok(!cause.message.includes(marker));

  // A run started with the key, then steered in plaintext by a tool without the key (it writes plaintext; it reads
  // the refusal with the key only so that this test can check the refusal's text, which the keyed worker encrypts).
  const ring = readKeyFile(keyFile);
  const writesPlain = new Client({
    connection: env.temporal.connection as Connection,
    namespace: 'default',
    dataConverter: { payloadCodecs: [{ encode: async (p) => p, decode: (p) => new AesGcmCodec(ring).decode(p) }], failureConverterPath: ENCRYPTED_FAILURES_PATH },
  });
  const gate = path.join(dir, `gate-${randomUUID()}`);
  const ok = await keyedQ.start(secret, { marker, gate });
  await waitForEvent(ok.id, 'activityTaskCompletedEventAttributes'); // echo done: the run waits in its slow step
  // An update is rejected by its validator: it never enters history, and the run goes on.
  await assert.rejects(writesPlain.workflow.getHandle(ok.id).executeUpdate(UPDATE_PAUSE, { args: [{ paused: true }] }), (e: unknown) => {
    assert.ok(e instanceof WorkflowUpdateFailedError, String(e));
    assert.match(String((e.cause as Error).message), /update "kaon\.pause" arrived in plaintext.*\[KAON_PLAINTEXT_REFUSED\]/);
    return true;
  });
  assert.ok(!(await eventTypes(ok.id)).some((e) => /Update/.test(e)), 'a rejected update leaves no event');
  writeFileSync(gate, '');
  assert.deepEqual(await ok.result(), { result: `result output ${marker}` });

  // A signal is already in history when the worker sees it: its handler never runs, and the run fails at once.
  const gate2 = path.join(dir, `gate-${randomUUID()}`);
  const sig = await keyedQ.start(secret, { marker, gate: gate2 });
  await waitForEvent(sig.id, 'activityTaskCompletedEventAttributes');
  await writesPlain.workflow.getHandle(sig.id).signal(DELIVER_SIGNAL, { token: 'x', event: 'e', id: '1', payload: 'plain', at: 0 });
  await assert.rejects(keyedQ.temporal.workflow.getHandle(sig.id).result(), (e: unknown) => {
    assert.ok(e instanceof WorkflowFailedError);
    assert.equal((e.cause as ApplicationFailure).type, 'KAON_PLAINTEXT_REFUSED');
    assert.match((e.cause as Error).message, /signal "kaon\.deliver" arrived in plaintext/);
    return true;
  });
  writeFileSync(gate2, '');
  await plainQ.close();
  await keyedQ.close();
});

test("a worker's codec turns a plaintext payload into a marker without its data; readers keep plaintext as it is", async () => {
  const ring = readKeyFile(keyFile);
  const payload = { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from(JSON.stringify({ secret: 'MARK-codec' })) };
  const [marked] = await new AesGcmCodec(ring, { refusePlaintext: true }).decode([payload]);
  const text = Buffer.from(marked!.data!).toString();
  assert.deepEqual(JSON.parse(text), { [REFUSED_PLAINTEXT]: { encoding: 'json/plain' } });
  assert.ok(!text.includes('MARK-codec'));
  const [kept] = await new AesGcmCodec(ring).decode([payload]);
  assert.equal(Buffer.from(kept!.data!).toString(), JSON.stringify({ secret: 'MARK-codec' }));
  // Encrypted payloads still decode on a refusing codec.
  const [enc] = await new AesGcmCodec(ring).encode([payload]);
  const [back] = await new AesGcmCodec(ring, { refusePlaintext: true }).decode([enc!]);
  assert.equal(Buffer.from(back!.data!).toString(), JSON.stringify({ secret: 'MARK-codec' }));
});

async function waitForEvent(workflowId: string, type: string): Promise<void> {
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    if ((await eventTypes(workflowId)).includes(type)) return;
    await sleep(100);
  }
  throw new Error(`no ${type} in ${workflowId} within 30 s`);
}
