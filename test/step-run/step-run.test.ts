// `kaon step run` against a real run on the real server: a failed Python step reproduced from the run's history,
// fixed, rerun locally, then `kaon resume` reusing the rest; a TS step with artifact inputs and a corrupt blob;
// a changed contract; --input without any server; --output-json and exit codes. The worker is `kaon worker` in a
// temp project (package.json pointing at examples/debug-step) that holds the Python script, so tests can fix it.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Connection } from '@temporalio/client';
import { expectTypeOf } from 'expect-type';
import { connect, RunFailedError, type KaonClient } from '../../src/client';
import { KaonError, type ArtifactRef } from '../../src/definition';
import { createArtifactStore, type ArtifactStore } from '../../src/data/store';
import { normalise as changedNormalise } from '../fixtures/step-run/changed';
import { normalise, score } from '../../examples/debug-step/steps';
import { CliProcess, cliEnv, kaon, type CliResult } from '../cli/cli-process';
import { ROOT, testServer } from '../support/temporal';

const EXAMPLE = path.join(ROOT, 'examples/debug-step');
const CHANGED = path.join(ROOT, 'test/fixtures/step-run/changed.ts');
const SCRIPT = 'examples/debug-step/score.py';
const queue = `step-run-${randomUUID().slice(0, 8)}`;

let project: string;
let artifactsDir: string;
let store: ArtifactStore;
let address: string;
let connection: Connection;
let client: KaonClient;
let worker: CliProcess;
let failedRun = '';

interface StepRunJson {
  ok: boolean;
  step: string;
  key: string;
  attempt: number;
  runId: string;
  from?: { run: string; status: string; attempts: number; failure?: string };
  input: unknown;
  inputArtifacts: ArtifactRef[];
  output: Record<string, unknown> | null;
  artifacts: ArtifactRef[];
  error: { code: string; message: string; retryable: boolean; issues?: string[] } | null;
}

function env(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return cliEnv({ TEMPORAL_ADDRESS: address, KAON_TASK_QUEUE: queue, KAON_ARTIFACTS: `file://${artifactsDir}`, KAON_HOME: path.join(project, '.kaon'), ...extra });
}

function cli(args: string[], extra: Record<string, string | undefined> = {}): Promise<CliResult> {
  return kaon(args, { env: env(extra), cwd: project, timeoutMs: 90_000 });
}

function parseJson(r: CliResult): StepRunJson {
  try {
    return JSON.parse(r.stdout) as StepRunJson;
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

function blobFile(ref: ArtifactRef): string {
  return fileURLToPath(ref.uri);
}

describe('kaon step run', { timeout: 300_000 }, () => {
  before(async () => {
    address = (await testServer()).address;
    project = mkdtempSync(path.join(os.tmpdir(), 'kaon-step-run-'));
    artifactsDir = path.join(project, 'artifacts');
    mkdirSync(path.join(project, path.dirname(SCRIPT)), { recursive: true });
    copyFileSync(path.join(ROOT, SCRIPT), path.join(project, SCRIPT));
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({
      name: 'kaon-step-run-fixture',
      private: true,
      kaon: { workflows: path.join(EXAMPLE, 'workflows.ts'), activities: path.join(EXAMPLE, 'index.ts') },
    }));
    store = createArtifactStore(`file://${artifactsDir}`, { localDir: path.join(project, '.kaon') });
    connection = await Connection.connect({ address });
    client = await connect({ connection, taskQueue: queue });
    worker = new CliProcess(['worker'], { env: env(), cwd: project });
    await worker.waitFor(/^kaon worker: ready/m);

    const run = await client.start('country-scores', {});
    await assert.rejects(run.result(), (err: unknown) => err instanceof RunFailedError && /\[JP\] Python step "score" \(key score\[JP\], examples\/debug-step\/score.py\) exited with code 1/.test(err.message));
    failedRun = run.id;
  });

  after(async () => {
    worker?.kill();
    await connection?.close();
    if (project) rmSync(project, { recursive: true, force: true });
  });

  test('kaon.stepCall reads the failed call from history: step, input, attempts, failure', async () => {
    const call = await client.stepCall(failedRun, 'score[JP]');
    assert.equal(call.step, 'score');
    assert.equal(call.pipeline, 'country-scores');
    assert.equal(call.status, 'failed');
    assert.equal(call.attempts, 2, 'maximumAttempts 2: the last recorded attempt is the second');
    assert.match(call.failure ?? '', /ZeroDivisionError: division by zero/);
    // The recorded input is exactly what normalise[JP] returned (its artifact) plus the pipeline's params.
    const input = await client.stepInput(failedRun, 'score[JP]', score);
    expectTypeOf(input).toEqualTypeOf<{ data: ArtifactRef; country: string; threshold: number }>();
    assert.equal(input.country, 'JP');
    assert.equal(input.threshold, 0.4);
    assert.equal(input.data.producer.step, 'normalise[JP]');
    assert.equal(input.data.producer.runId, failedRun);
    await assert.rejects(client.stepCall(failedRun, 'score[FR]'), /has no step call with key "score\[FR\]" \(its step keys: .*score\[JP\].*\)\. To fix: use a key that `kaon status <run>` lists/);
  });

  test('a failed Python step: same input, same failure; fixed, it succeeds locally; kaon resume reuses every other step', async () => {
    const failed = await cli(['step', 'run', '--from', failedRun, '--key', 'score[JP]', '--output-json']);
    assert.equal(failed.code, 1, failed.stderr);
    const f = parseJson(failed);
    assert.equal(f.ok, false);
    assert.equal(f.step, 'score');
    assert.equal(f.attempt, 2, 'the attempt the run last saw');
    assert.deepEqual(f.from, { run: failedRun, status: 'failed', attempts: 2, failure: (await client.stepCall(failedRun, 'score[JP]')).failure });
    assert.deepEqual(f.input, await client.stepInput(failedRun, 'score[JP]'));
    assert.equal(f.output, null);
    assert.match(f.error?.message ?? '', /ZeroDivisionError: division by zero/);
    assert.match(f.error?.message ?? '', /mean = sum\(picked\) \/ len\(picked\)/, 'the traceback tail names the line');

    // The fix: no value above the threshold means a mean of 0.
    const script = path.join(project, SCRIPT);
    writeFileSync(script, readFileSync(script, 'utf8').replace('mean = sum(picked) / len(picked)', 'mean = sum(picked) / len(picked) if picked else 0.0'));

    const fixed = await cli(['step', 'run', '--from', failedRun, '--key', 'score[JP]', '--watch']);
    assert.equal(fixed.code, 0, fixed.stderr);
    const local = /^kaon step run: score \(key score\[JP\], attempt 2\) on this machine as (local-\S+)\ninput from run (\S+), where score\[JP\] failed after 2 attempts$/m.exec(fixed.stdout);
    assert.ok(local, fixed.stdout);
    assert.equal(local[2], failedRun);
    assert.match(fixed.stdout, /^input artifacts verified: normalised-JP\.txt \(sha256:[0-9a-f]{12}\)$/m);
    assert.match(fixed.stdout, /^\d\d:\d\d:\d\d score\[JP\] \| scoring JP \(attempt 2\)$/m, 'log lines, with the attempt the step saw');
    assert.match(fixed.stdout, /^\d\d:\d\d:\d\d score\[JP\] running 50% read 3 values$/m);
    assert.match(fixed.stdout, /^\d\d:\d\d:\d\d score\[JP\] running 100% scored$/m);
    assert.match(fixed.stdout, /^step score\[JP\] succeeded in \d+\.\ds$/m);
    assert.match(fixed.stdout, /"mean": 0,\n {2}"picked": 0,\n {2}"report": "<artifact score\.json sha256:[0-9a-f]{12}>"/);
    assert.match(fixed.stdout, new RegExp(`^next: kaon resume ${failedRun} `, 'm'));
    // Its artifact is in the workers' store, with lineage that says local.
    const made = await store.listByRun(local[1]!);
    assert.equal(made.length, 1);
    assert.equal(made[0]!.name, 'score.json');
    assert.deepEqual(made[0]!.producer, { pipeline: 'country-scores', runId: local[1], step: 'score[JP]', attempt: 2, local: true });
    assert.deepEqual(JSON.parse(readFileSync(blobFile(made[0]!), 'utf8')), { country: 'JP', mean: 0, picked: 0 });
    const lineage = await store.producedBy(made[0]!);
    assert.deepEqual(lineage.map((l) => l.inputs.map((i) => i.name)), [['normalised-JP.txt']]);

    // --attempt picks what the step sees; past the recorded attempts is a usage error.
    const first = await cli(['step', 'run', '--from', failedRun, '--key', 'score[JP]', '--attempt', '1', '--watch', '--output-json']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(parseJson(first).attempt, 1);
    assert.match(first.stderr, /^\d\d:\d\d:\d\d score\[JP\] \| scoring JP \(attempt 1\)$/m, 'with --output-json, watch lines go to stderr');
    const third = await cli(['step', 'run', '--from', failedRun, '--key', 'score[JP]', '--attempt', '3']);
    assert.equal(third.code, 2);
    assert.match(third.stderr, new RegExp(`--attempt 3: run ${failedRun} recorded 2 attempts of score\\[JP\\]\\. To fix: pass --attempt 1…2`));

    // Nothing of the local runs is recorded for resume: the resumed run recomputes score[JP] and summarise only.
    const resumed = await cli(['resume', failedRun, '--wait']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const id = new RegExp(`^resumed ${failedRun} as run (\\S+)$`, 'm').exec(resumed.stdout)?.[1];
    assert.ok(id, resumed.stdout);
    assert.match(resumed.stdout, /succeeded: 5 of 7 steps reused/);
    const state = await client.run(id).progress();
    const reused = state.steps.filter((s) => s.reusedFrom?.from === 'resume').map((s) => s.key).sort();
    assert.deepEqual(reused, ['normalise[JP]', 'normalise[US]', 'prepare[JP]', 'prepare[US]', 'score[US]']);
    const ran = state.steps.filter((s) => !s.reusedFrom).map((s) => `${s.key} ${s.status}`).sort();
    assert.deepEqual(ran, ['score[JP] succeeded', 'summarise succeeded']);
    assert.deepEqual(await client.run(id).result(), { best: 0.8666666666666667, reports: 2 });
  });

  test('a TS step with artifact inputs reruns from the run: same bytes out; a corrupt input blob is the store\'s error', async () => {
    const r = await cli(['step', 'run', '--from', failedRun, '--key', 'normalise[US]', '--output-json']);
    assert.equal(r.code, 0, r.stderr);
    const j = parseJson(r);
    const recorded = await client.stepInput(failedRun, 'normalise[US]', normalise);
    assert.deepEqual(j.inputArtifacts.map((a) => a.sha256), [recorded.data.sha256]);
    // What the run's normalise[US] produced is what score[US] got: the local run makes the same bytes.
    const inRun = await client.stepInput(failedRun, 'score[US]', score);
    const out = j.output as { data: ArtifactRef; max: number };
    assert.equal(out.data.sha256, inRun.data.sha256);
    assert.equal(out.max, 1.3);
    assert.equal(out.data.producer.local, true);
    assert.equal(out.data.producer.runId, j.runId);
    assert.match(j.runId, /^local-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/);
    assert.deepEqual(j.artifacts.map((a) => a.name), ['normalised-US.txt']);

    const blob = blobFile(recorded.data);
    const original = readFileSync(blob);
    chmodSync(blob, 0o644);
    writeFileSync(blob, 'not the bytes\n');
    try {
      const bad = await cli(['step', 'run', '--from', failedRun, '--key', 'normalise[US]']);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, new RegExp(`^kaon step: step normalise\\[US\\] failed: artifact "US\\.txt" ${recorded.data.uri.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is corrupt: its stored bytes hash to [0-9a-f]{12}… \\(14 bytes\\), but the ref says sha256 ${recorded.data.sha256.slice(0, 12)}… \\(${recorded.data.size} bytes\\)\\. To fix: delete the damaged blob .* and re-run step "prepare\\[US\\]" of pipeline "country-scores" \\(run ${failedRun}\\) to store it again \\[KAON_ARTIFACT_CORRUPT\\]$`, 'm'));
      assert.doesNotMatch(bad.stdout, /step normalise\[US\] succeeded/);
      assert.match(bad.stdout, /^input from run \S+, where normalise\[US\] succeeded in 1 attempt$/m);
    } finally {
      writeFileSync(blob, original);
    }
  });

  test('a changed contract is reported field by field (CLI and client)', async () => {
    const r = await cli(['step', 'run', '--from', failedRun, '--key', 'normalise[US]', '--activities', CHANGED]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^kaon step: the input of normalise\\[US\\] recorded in run ${failedRun} \\(checked against step "normalise" version 2 as it is now\\) is invalid: `, 'm'));
    assert.match(r.stderr, /To fix: the step's input schema changed since that run: make it accept the recorded input again/);
    const issues = r.stderr.split('\n').filter((l) => l.startsWith('  field '));
    assert.deepEqual(issues.map((l) => /^ {2}field "(\w+)"/.exec(l)?.[1]), ['source', 'scale', 'unit']);
    assert.match(issues[0]!, /received nothing \(undefined\)$/);
    assert.match(issues[1]!, /expected string, received number.*; received number 10$/);

    await assert.rejects(client.stepInput(failedRun, 'normalise[US]', changedNormalise), (err: unknown) => {
      assert.ok(err instanceof KaonError);
      assert.deepEqual((err.details as { issues: string[] }).issues.map((i) => /^field "(\w+)"/.exec(i)?.[1]), ['source', 'scale', 'unit']);
      return true;
    });
    await assert.rejects(client.stepInput(failedRun, 'normalise[US]', score), /step key "normalise\[US\]" of run .* is a call of step "normalise", not "score"/);
  });

  test('--input runs a step with no Temporal server; --output-json and exit codes follow the step', async () => {
    const noServer = { TEMPORAL_ADDRESS: '127.0.0.1:1' };
    const ok = await cli(['step', 'run', 'prepare', '--input', '{"country":"BR"}', '--output-json'], noServer);
    assert.equal(ok.code, 0, ok.stderr);
    const j = parseJson(ok);
    assert.equal(j.ok, true);
    assert.equal(j.error, null);
    assert.equal(j.key, 'prepare');
    assert.equal(j.attempt, 1);
    assert.equal((j.output as { rows: number }).rows, 2);
    assert.deepEqual(j.artifacts.map((a) => [a.name, a.producer.local, a.producer.pipeline]), [['BR.txt', true, 'local']]);
    assert.equal(readFileSync(blobFile(j.artifacts[0]!), 'utf8'), '4\n6\n');

    // An input file with the ref just made feeds the next step (@file), still with no server.
    const inputFile = path.join(project, 'normalise-input.json');
    writeFileSync(inputFile, JSON.stringify({ data: (j.output as { data: ArtifactRef }).data, scale: 2 }));
    const next = await cli(['step', 'run', 'normalise', '--input', `@${inputFile}`, '--output-json'], noServer);
    assert.equal(next.code, 0, next.stderr);
    assert.equal((parseJson(next).output as { max: number }).max, 3);

    const bad = await cli(['step', 'run', 'prepare', '--input', '{"country":3}', '--output-json'], noServer);
    assert.equal(bad.code, 1);
    const b = parseJson(bad);
    assert.equal(b.ok, false);
    assert.equal(b.output, null);
    assert.equal(b.error?.code, 'KAON_INVALID_INPUT');
    assert.deepEqual(b.error?.issues, ['field "country": Invalid input: expected string, received number; received number 3']);

    const unknown = await cli(['step', 'run', 'nope', '--input', '{}'], noServer);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^kaon step: no step named "nope" in .*index\.ts \(known: normalise, prepare, score, summarise\)\. To fix: /m);

    const misuse = await cli(['step', 'run', '--key', 'score[JP]'], noServer);
    assert.equal(misuse.code, 2);
    assert.equal(misuse.stderr, 'kaon step: --key is only for --from. To fix: pass --from <run> too, or drop --key [KAON_USAGE]\n');
    const misuseJson = await cli(['step', 'run', '--from', 'x', '--output-json'], noServer);
    assert.equal(misuseJson.code, 2);
    assert.equal(parseJson(misuseJson).error?.code, 'KAON_USAGE');

    // --from needs the server: unreachable is a clear error, exit 1.
    const down = await cli(['step', 'run', '--from', failedRun, '--key', 'score[JP]'], noServer);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /^kaon step: cannot reach Temporal at 127\.0\.0\.1:1 .*To fix: start a local server with `kaon dev`/m);
  });

  test('kaon step pause|unpause still take <run> <key>', async () => {
    const r = await cli(['step', 'pause', failedRun]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /kaon step pause needs a <run> and a <step key>/);
  });
});
