// The 'process' and 'python' runner executors, called directly with a fake StepContext (no Temporal).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { ArtifactRef, type Producer } from '../../src/definition/artifact-ref';
import { ErrorCode, KaonError } from '../../src/definition/errors';
import { command, defineStep, python } from '../../src/definition/step';
import { createRunnerExecutors, type ArtifactIO } from '../../src/execution';
import { fakeContext } from './fake-context';

const ROOT = path.resolve(__dirname, '..', '..');
const Any = z.any();

async function kaonRejection(p: Promise<unknown>): Promise<KaonError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof KaonError, `expected a KaonError, got ${String(err)}`);
    return err;
  }
  return assert.fail('expected the promise to reject');
}

/** A tiny content-addressed store in a temp dir that records every call. */
function fakeStore(dir: string) {
  const saved: { name: string; mediaType?: string; content: string; inputs: string[]; producer: Producer }[] = [];
  const materialised: string[] = [];
  const refFor = (content: Buffer, name: string, mediaType: string, producer: Producer): ArtifactRef => {
    const sha256 = createHash('sha256').update(content).digest('hex');
    writeFileSync(path.join(dir, sha256), content);
    return { kind: 'kaon.artifact', uri: `file://${dir}/${sha256}`, sha256, size: content.length, mediaType, name, producer };
  };
  const io: ArtifactIO = {
    async materialise(ref, into) {
      materialised.push(ref.name ?? ref.sha256);
      const p = path.join(into, ref.name ?? 'data');
      copyFileSync(path.join(dir, ref.sha256), p);
      return p;
    },
    async save(file, inputs, producer) {
      const content = readFileSync(file.path);
      saved.push({ name: file.name, ...(file.mediaType ? { mediaType: file.mediaType } : {}), content: content.toString(), inputs: inputs.map((r) => r.name ?? r.sha256), producer });
      return refFor(content, file.name, file.mediaType ?? 'application/octet-stream', producer);
    },
  };
  const put = (content: string, name: string) => refFor(Buffer.from(content), name, 'text/plain', { pipeline: 'p', runId: 'r0', step: 'ingest', attempt: 1 });
  return { io, saved, materialised, put };
}

describe('runner executors', () => {
  let tmp: string;
  let storeDir: string;
  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-runners-test-'));
    storeDir = path.join(tmp, 'store');
    mkdirSync(storeDir);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test('python: argv with spaces, quotes, $HOME and ; reaches sys.argv intact; prints do not collide with output', async () => {
    const args = ['two words', `it's "quoted"`, '$HOME', 'a; echo pwned', '*'];
    const def = defineStep({ name: 'echoArgv', version: 1, input: z.object({ n: z.number() }), output: Any, run: python('test/fixtures/scripts/echo_argv.py', { args }) });
    const ctx = fakeContext();
    const out = await createRunnerExecutors({ root: ROOT }).python(def, { n: 3 }, ctx);
    assert.deepEqual(out, { argv: args, input: { n: 3 } });
    assert.ok(ctx.logs.some((l) => l.message === '{"type":"output","value":"this is a print, not the protocol"}'));
  });

  test('python: progress heartbeats carry fraction, message and the last log lines', async () => {
    const def = defineStep({ name: 'train', version: 1, input: z.object({ epochs: z.number() }), output: Any, run: python('test/fixtures/scripts/train.py') });
    const ctx = fakeContext('train[US]');
    const out = await createRunnerExecutors({ root: ROOT }).python(def, { epochs: 4 }, ctx);
    assert.deepEqual(out, { epochs: 4, loss: 0.25 });
    const beats = ctx.heartbeats as { fraction?: number; message?: string; tail?: string[] }[];
    assert.deepEqual(beats.map((b) => b.fraction), [0.25, 0.5, 0.75, 1]);
    assert.equal(beats.at(-1)!.message, 'epoch 4/4');
    // Prints (stdout) and progress (fd 3) travel on different pipes, so a heartbeat's tail holds the prints read
    // so far: always a prefix of the full output, and every print reaches the log.
    const lines = ['epoch 1 loss=1.000', 'epoch 2 loss=0.500', 'epoch 3 loss=0.333', 'epoch 4 loss=0.250'];
    const tail = beats.at(-1)!.tail ?? [];
    assert.deepEqual(tail, lines.slice(0, tail.length));
    for (const line of lines) assert.ok(ctx.logs.some((l) => l.message === line), line);
    assert.ok(ctx.logs.some((l) => l.message === 'training done' && l.meta?.stream === 'protocol'));
  });

  test('python: artifact inputs are materialised by field path; saved files and output-dir files become ArtifactRefs', async () => {
    const store = fakeStore(storeDir);
    const features = store.put('f1,f2\n', 'features.csv');
    const model0 = store.put('old model\n', 'm0.bin');
    const def = defineStep({
      name: 'withArtifacts',
      version: 1,
      input: z.object({ features: ArtifactRef, models: z.array(ArtifactRef) }),
      output: Any,
      run: python('test/fixtures/scripts/artifacts.py'),
    });
    const ctx = fakeContext('withArtifacts[a]');
    const out = (await createRunnerExecutors({ root: ROOT, artifacts: store.io }).python(def, { features, models: [model0, model0] }, ctx)) as Record<string, unknown>;
    assert.deepEqual(out.paths, ['features', 'models[0]', 'models[1]']);
    assert.deepEqual(store.materialised, ['features.csv', 'm0.bin'], 'the same blob is materialised once');
    const model = ArtifactRef.parse(out.model);
    const summary = ArtifactRef.parse(out.summary);
    assert.equal(model.name, 'model.bin');
    assert.equal(summary.name, 'summary.json');
    assert.equal(summary.mediaType, 'application/json');
    assert.deepEqual(model.producer, { pipeline: 'test-pipeline', runId: 'run-1', step: 'withArtifacts[a]', attempt: 1 });
    const byName = Object.fromEntries(store.saved.map((s) => [s.name, s]));
    assert.equal(byName['model.bin']!.content, 'model trained on f1,f2');
    assert.deepEqual(JSON.parse(byName['summary.json']!.content), { features: 'f1,f2', model0: 'old model' });
    assert.deepEqual(byName['model.bin']!.inputs, ['features.csv', 'm0.bin'], 'lineage: the input artifacts');
    assert.equal(readFileSync(path.join(storeDir, model.sha256), 'utf8'), 'model trained on f1,f2');
  });

  test('artifact inputs without an ArtifactIO fail clearly, before anything runs', async () => {
    const store = fakeStore(storeDir);
    const def = defineStep({ name: 'needsStore', version: 1, input: z.object({ features: ArtifactRef }), output: Any, run: python('test/fixtures/scripts/artifacts.py') });
    const err = await kaonRejection(createRunnerExecutors({ root: ROOT }).python(def, { features: store.put('x', 'x.csv') }, fakeContext()));
    assert.equal(err.code, ErrorCode.config);
    assert.equal(err.retryable, false);
    assert.match(err.message, /the input has artifacts at features, but this worker has no artifact store/);
  });

  test('artifact outputs without an ArtifactIO fail clearly', async () => {
    const def = defineStep({ name: 'shellNoStore', version: 1, input: z.object({ n: z.number() }), output: Any, run: command(['test/fixtures/scripts/shell-step.sh', 'x']) });
    const err = await kaonRejection(createRunnerExecutors({ root: ROOT }).process(def, { n: 1 }, fakeContext()));
    assert.match(err.message, /the step produced artifacts "report.txt", but this worker has no artifact store/);
  });

  test('python: a malformed protocol line is a clear non-retryable error naming the line', async () => {
    const def = defineStep({ name: 'malformed', version: 1, input: z.object({}), output: Any, run: python('test/fixtures/scripts/malformed.py') });
    const err = await kaonRejection(createRunnerExecutors({ root: ROOT }).python(def, {}, fakeContext()));
    assert.equal(err.code, ErrorCode.processFailed);
    assert.equal(err.retryable, false);
    assert.match(err.message, /Python step "malformed" .* exited 0 but wrote 1 malformed protocol line\(s\) on fd 3, the first: line 1: \{"type":"output", value: 1\} \(not JSON/);
  });

  test('python: a crash is retryable and the message ends with the traceback', async () => {
    const def = defineStep({ name: 'crash', version: 1, input: z.object({}), output: Any, run: python('test/fixtures/scripts/crash.py') });
    const err = await kaonRejection(createRunnerExecutors({ root: ROOT }).python(def, {}, fakeContext()));
    assert.equal(err.code, ErrorCode.processFailed);
    assert.equal(err.retryable, true);
    assert.match(err.message, /exited with code 1/);
    assert.match(err.message, /Traceback \(most recent call last\):/);
    assert.match(err.message, /in normalise\n\s+return sum\(rows\) \/ len\(rows\)/);
    assert.match(err.message, /ZeroDivisionError: division by zero/);
  });

  test('python: bad_input() exits 65 → non-retryable badInput with the script\'s message', async () => {
    const def = defineStep({ name: 'badInput', version: 1, input: z.object({ rows: z.number() }), output: Any, run: python('test/fixtures/scripts/bad_input.py') });
    const ex = createRunnerExecutors({ root: ROOT });
    assert.deepEqual(await ex.python(def, { rows: 2 }, fakeContext()), { rows: 2 });
    const err = await kaonRejection(ex.python(def, { rows: -3 }, fakeContext()));
    assert.equal(err.code, ErrorCode.badInput);
    assert.equal(err.retryable, false);
    assert.match(err.message, /bad input: field 'rows' must be >= 0, got -3/);
  });

  test('python: a missing script is a clear non-retryable error', async () => {
    const def = defineStep({ name: 'missing', version: 1, input: z.object({}), output: Any, run: python('activities/python/nope.py') });
    const err = await kaonRejection(createRunnerExecutors({ root: ROOT }).python(def, {}, fakeContext()));
    assert.equal(err.code, ErrorCode.notFound);
    assert.match(err.message, /is not at .*activities\/python\/nope\.py/);
  });

  test('a script that never calls output() fails clearly', async () => {
    const def = defineStep({ name: 'noOutput', version: 1, input: z.object({}), output: z.object({ y: z.number() }), run: command(['sh', '-c', 'echo hi']) });
    const err = await kaonRejection(createRunnerExecutors({ root: ROOT }).process(def, {}, fakeContext()));
    assert.equal(err.code, ErrorCode.invalidOutput);
    assert.match(err.message, /exited 0 without writing an output/);
  });

  test('process: a shell-script step (how R or shell steps plug in) with progress, a warn log and an artifact', async () => {
    const store = fakeStore(storeDir);
    const def = defineStep({
      name: 'shellStep',
      version: 1,
      input: z.object({ n: z.number(), label: z.string() }),
      output: Any,
      run: command(['test/fixtures/scripts/shell-step.sh', 'first arg', 'second'], { cwd: 'test' }),
    });
    const ctx = fakeContext('shellStep');
    const out = (await createRunnerExecutors({ root: ROOT, artifacts: store.io }).process(def, { n: 2, label: 'a "b"' }, ctx)) as Record<string, unknown>;
    assert.deepEqual(out.input, { n: 2, label: 'a "b"' });
    assert.equal(out.args, 2);
    assert.equal(out.first, 'first arg');
    const report = ArtifactRef.parse(out.report);
    assert.equal(report.name, 'report.txt');
    assert.equal(report.mediaType, 'text/plain');
    assert.equal(store.saved[0]!.content, 'report for first arg\n');
    assert.ok(ctx.logs.some((l) => l.message === `shell step got 2 args, cwd ${path.join(ROOT, 'test')}`));
    assert.ok(ctx.logs.some((l) => l.level === 'warn' && l.message === 'careful: first arg'));
    assert.deepEqual((ctx.heartbeats[0] as { fraction: number }).fraction, 0.5);
  });

  test('the work dir is removed after the attempt, success or failure', async () => {
    const work = path.join(tmp, 'work');
    mkdirSync(work);
    const ex = createRunnerExecutors({ root: ROOT, workDir: work });
    const ok = defineStep({ name: 'ok', version: 1, input: z.object({ x: z.number() }), output: Any, run: python('test/fixtures/scripts/square.py') });
    const bad = defineStep({ name: 'bad', version: 1, input: z.object({}), output: Any, run: python('test/fixtures/scripts/crash.py') });
    assert.deepEqual(await ex.python(ok, { x: 3 }, fakeContext()), { y: 9, argv: [] });
    await kaonRejection(ex.python(bad, {}, fakeContext()));
    assert.deepEqual(readdirSync(work), []);
  });

  test('cancellation through ctx.signal rethrows the reason and kills the step', async () => {
    const def = defineStep({ name: 'sleepy', version: 1, input: z.object({}), output: Any, run: command(['test/fixtures/scripts/sleep.sh', '30']) });
    const ctx = fakeContext();
    const running = createRunnerExecutors({ root: ROOT }).process(def, {}, ctx);
    while (!ctx.logs.some((l) => l.message.startsWith('sleeper '))) await new Promise((r) => setTimeout(r, 20));
    const pid = Number(ctx.logs.find((l) => l.message.startsWith('sleeper '))!.message.split(' ')[1]);
    const reason = new Error('CancelledFailure stand-in');
    ctx.controller.abort(reason);
    await assert.rejects(running, (e) => e === reason);
    assert.throws(() => process.kill(pid, 0), /ESRCH/);
  });

  test('output placeholders that name no saved artifact fail clearly', async () => {
    const def = defineStep({
      name: 'danglingRef',
      version: 1,
      input: z.object({}),
      output: Any,
      run: command(['sh', '-c', `echo '{"type":"output","value":{"m":{"$artifact":"model.pkl"}}}' >&3`]),
    });
    const err = await kaonRejection(createRunnerExecutors({ root: ROOT, artifacts: fakeStore(storeDir).io }).process(def, {}, fakeContext()));
    assert.equal(err.code, ErrorCode.invalidOutput);
    assert.match(err.message, /refers to artifacts "model.pkl" that the step did not save \(saved: none\)/);
  });

  test('kaon_step.py outside Kaon: clear error for inputs(), protocol lines fall back to stderr', async () => {
    const env = { PATH: process.env.PATH, PYTHONPATH: path.join(ROOT, 'python') };
    const res = spawnSync('python3', ['-c', 'import kaon_step as k\nk.progress(0.5, "x")\ntry:\n  k.inputs()\nexcept RuntimeError as e:\n  print(e)'], { env, encoding: 'utf8' });
    assert.equal(res.status, 0);
    assert.match(res.stdout, /KAON_INPUT is not set/);
    assert.equal(res.stderr, 'kaon: {"type":"progress","fraction":0.5,"message":"x"}\n');
    assert.ok(existsSync(path.join(ROOT, 'python', 'kaon_step.py')));
  });
});
