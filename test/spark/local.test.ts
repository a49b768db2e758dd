// spark() steps on local[2] inside a real pipeline on the real Temporal dev server: spark-submit from Kaon's pinned
// pyspark, the kaon_step protocol in the driver, artifacts with lineage, REST-API progress, analysis errors.
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RunFailedError } from '../../src/client';
import { ErrorCode } from '../../src/definition/errors';
import { KaonError } from '../../src/definition/errors';
import { checkJava, classifySparkFailure, parseJavaVersion, progressMessage, SparkErrorScan, summariseJobs } from '../../src/execution/spark';
import { defaultExecutors, type KaonWorker } from '../../src/runtime/worker';
import * as activities from './fixtures/activities';
import { sparkSum } from './fixtures/workflows';
import { testEnv, type TestEnv } from '../support/temporal';

const ROOT = path.resolve(__dirname, '..', '..');
let env: TestEnv;
let worker: KaonWorker;
let running: Promise<void>;

before(async () => {
  env = await testEnv('spark-local');
  worker = await env.worker({
    workflowsPath: path.join(ROOT, 'test/spark/fixtures/workflows.ts'),
    activities,
    executors: defaultExecutors(env.artifacts, { sparkPollMs: 300 }),
  });
  running = worker.run();
});

after(async () => {
  worker.shutdown();
  await running;
  await env.close();
});

describe('spark() steps on local[2]', () => {
  test('a Spark step reads an artifact, writes one with lineage, and reports stage progress that rises', { timeout: 600_000 }, async () => {
    const run = await env.kaon.start(sparkSum, { n: 1000, partitions: 12, sleepMs: 700 });
    const seen: { fraction?: number; message?: string; url?: string }[] = [];
    const done = run.result();
    let finished = false;
    void done.finally(() => (finished = true)).catch(() => undefined);
    while (!finished) {
      const s = (await run.progress()).steps.find((x) => x.key === 'sum');
      if (s?.status === 'running' && s.progress) seen.push(s.progress);
      await new Promise((r) => setTimeout(r, 250));
    }
    const out = (await done) as { total: number; check: number; appId: string; master: string; summary: { uri: string; sha256: string } };
    assert.equal(out.total, 500_500);
    assert.equal(out.check, 500_500);
    assert.equal(out.master, 'local[2]');
    assert.match(out.appId, /^local-/);

    const summary = (await env.artifacts.getBytes(out.summary as never)).toString('utf8');
    assert.equal(summary, 'total,partitions\n500500,12\n');
    const [record] = await env.artifacts.producedBy(out.summary as never);
    assert.ok(record, 'the summary has a lineage record');
    assert.equal(record.inputs.length, 1, JSON.stringify(record));
    assert.equal(record.inputs[0]!.name, 'numbers.csv');

    const staged = seen.filter((p) => /stage \d+\/\d+, tasks \d+\/\d+/.test(p.message ?? ''));
    assert.ok(staged.length >= 3, `stage progress was seen: ${JSON.stringify(seen.slice(-5))}`);
    assert.ok(staged.every((p) => /^http:\/\/127\.0\.0\.1:\d+$/.test(p.url ?? '')), `the Spark UI link is in the run state: ${staged[0]?.url}`);
    const fractions = staged.map((p) => p.fraction ?? 0);
    for (let i = 1; i < fractions.length; i++) assert.ok(fractions[i]! >= fractions[i - 1]!, `progress never goes back: ${fractions.join(', ')}`);
    assert.ok(fractions.at(-1)! > fractions[0]!, `progress rose during the job: ${fractions.join(', ')}`);
    const tasksDone = staged.map((p) => Number(/tasks (\d+)\//.exec(p.message!)![1]));
    assert.ok(new Set(tasksDone).size >= 2, `tasks completed while we watched: ${tasksDone.join(', ')}`);
  });

  test('an analysis error (a missing column) fails once, not retried, quoting the Spark exception and the driver log', { timeout: 600_000 }, async () => {
    const run = await env.kaon.start(sparkSum, { n: 10, partitions: 2, sleepMs: 0, column: 'no_such_column' });
    await assert.rejects(run.result(), (err: unknown) => {
      assert.ok(err instanceof RunFailedError, String(err));
      assert.match(err.message, /Spark analysis error \(bad input, not retried\)/);
      assert.match(err.message, /AnalysisException.*no_such_column/);
      assert.match(err.message, /driver log, last lines.*:\n.*Traceback/s);
      assert.match(err.message, /KAON_BAD_INPUT/);
      return true;
    });
    const s = (await run.progress()).steps.find((x) => x.key === 'sum');
    assert.equal(s?.status, 'failed');
    assert.equal(s?.attempts, 1, 'not retried despite maximumAttempts: 3');
  });
});

describe('spark() helpers', () => {
  test('Java versions are read from the banner, and a missing Java is a clear config error', async () => {
    assert.equal(parseJavaVersion('openjdk version "17.0.15" 2025-04-15'), 17);
    assert.equal(parseJavaVersion('java version "1.8.0_392"'), 8);
    assert.equal(parseJavaVersion('openjdk version "21" 2023-09-19'), 21);
    await assert.rejects(checkJava({ JAVA_HOME: '/nonexistent-jdk' }), (err: unknown) => {
      assert.equal((err as { code?: string }).code, ErrorCode.config);
      assert.match(String(err), /Spark steps need Java 17 or newer.*JAVA_HOME=\/nonexistent-jdk/);
      assert.match(String(err), /To fix: install a Java 17\+ runtime/);
      return true;
    });
    assert.ok((await checkJava()).version >= 17, 'this machine has Java 17+');
  });

  test('jobs from the REST API become "stage i/n, tasks d/t"', () => {
    const p = summariseJobs(
      [
        { stageIds: [0, 1], numTasks: 20, numCompletedIndices: 20, numCompletedStages: 2 },
        { stageIds: [2, 3, 4], numTasks: 30, numCompletedIndices: 5, numCompletedStages: 0, numSkippedStages: 1, numSkippedTasks: 10, numActiveStages: 1 },
      ],
      [{ status: 'ACTIVE', name: 'collect at /srv/app/jobs/als.py:40' }],
    );
    assert.equal(progressMessage(p), 'stage 4/5, tasks 35/50 (collect at als.py:40)');
  });

  test('a lost executor is classified retryable with a message short enough for Temporal to keep', () => {
    const log = [
      '26/12/02 01:34:01 INFO DAGScheduler: Submitting 4 missing tasks',
      '26/12/02 01:34:08 ERROR TaskSchedulerImpl: Lost executor 0 on 127.0.0.1: Command exited with code 137',
      `26/12/02 01:34:08 INFO TaskSchedulerImpl: Killing all running tasks in stage 0: Stage cancelled: Job aborted due to stage failure: Task 0 in stage 0.0 failed 1 times, most recent failure: Lost task 0.0 in stage 0.0 (TID 0) (127.0.0.1 executor 0): ExecutorLostFailure (executor 0 exited caused by one of the running tasks) Reason: Command exited with code 137 ${'x'.repeat(3000)}`,
      'py4j.protocol.Py4JJavaError: An error occurred while calling o45.collect.',
      ...Array.from({ length: 40 }, (_, i) => `\tat org.apache.spark.Frame${i}.run(Frame.scala:${i})`),
    ];
    const scan = new SparkErrorScan();
    for (const line of log) scan.onLine({ stream: 'stderr', line });
    const failed = new KaonError({ code: ErrorCode.processFailed, what: 'x exited with code 1', fix: 'f', retryable: true, details: { exitCode: 1, signal: null, tail: log } });
    const err = classifySparkFailure(failed, scan, 'Spark step "s" (key s)') as KaonError;
    assert.equal(err.retryable, true);
    assert.match(err.message, /lost an executor \(retried\): .*Job aborted due to stage failure: .*ExecutorLostFailure/);
    assert.match(err.message, /Py4JJavaError/, 'the driver log\'s last lines');
    assert.doesNotMatch(err.message, /Frame\d/, 'stack frames left out');
    assert.ok(Buffer.byteLength(err.message) < 1600, `short: ${Buffer.byteLength(err.message)} bytes`);
  });
});
