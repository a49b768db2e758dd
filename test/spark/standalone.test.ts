// spark() steps on a standalone Spark cluster (master + worker on loopback, from the same pinned pyspark): the same
// step moves there through $KAON_SPARK_MASTER with no code change; cancelling mid-job leaves no JVM (driver or
// executor, checked by pid); a killed executor fails the attempt as retryable and the retry succeeds.
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultExecutors, type KaonWorker } from '../../src/runtime/worker';
import * as activities from './fixtures/activities';
import { sparkSum } from './fixtures/workflows';
import { testEnv, type TestEnv } from '../support/temporal';
import { findProcesses, isAlive, startStandaloneCluster, type StandaloneCluster } from './support/cluster';

const ROOT = path.resolve(__dirname, '..', '..');
const EXECUTOR = 'org.apache.spark.executor.CoarseGrainedExecutorBackend';
const DRIVER = 'org.apache.spark.deploy.SparkSubmit';
const JOB = 'test/spark/fixtures/jobs/count.py';
let env: TestEnv;
let cluster: StandaloneCluster;
let worker: KaonWorker;
let running: Promise<void>;
const clusterLog: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  cluster = await startStandaloneCluster(path.join(ROOT, '.kaon'), clusterLog);
  // The worker's environment moves every spark() step without a master of its own to the cluster.
  process.env.KAON_SPARK_MASTER = cluster.masterUrl;
  process.env.SPARK_LOCAL_IP = '127.0.0.1';
  env = await testEnv('spark-standalone');
  worker = await env.worker({
    workflowsPath: path.join(ROOT, 'test/spark/fixtures/workflows.ts'),
    activities,
    executors: defaultExecutors(env.artifacts, { sparkPollMs: 300 }),
  });
  running = worker.run();
});

after(async () => {
  worker?.shutdown();
  await running;
  await env?.close();
  await cluster?.stop();
  assert.equal(isAlive(cluster.masterPid) || isAlive(cluster.workerPid), false, 'the test cluster is stopped');
});

/** Waits until the run's Spark step has executors running tasks; returns their pids. */
async function executorsRunning(run: { progress(): Promise<{ steps: { key: string; progress?: { message?: string } }[] }> }): Promise<number[]> {
  for (let i = 0; i < 1200; i++) {
    const s = (await run.progress()).steps.find((x) => x.key === 'sum');
    // The slow job's stage (not the quick CSV schema inference before it) is active: its tasks are sleeping.
    const slow = /tasks \d+\/\d+ \(collect at count\.py:/.test(s?.progress?.message ?? '');
    const pids = findProcesses(EXECUTOR);
    if (slow && pids.length) return pids;
    await sleep(250);
  }
  throw new Error(`the Spark job never ran tasks on an executor; cluster log:\n${clusterLog.slice(-20).join('\n')}`);
}

describe('spark() steps on a standalone cluster', () => {
  test('the same step runs on spark:// by KAON_SPARK_MASTER, on the cluster\'s executors', { timeout: 600_000 }, async () => {
    const run = await env.kaon.start(sparkSum, { n: 200, partitions: 4, sleepMs: 100 });
    const out = (await run.result()) as { total: number; master: string; appId: string };
    assert.equal(out.total, 20_100);
    assert.equal(out.master, cluster.masterUrl);
    assert.match(out.appId, /^app-/, 'a standalone application id');
    assert.ok(clusterLog.some((l) => l.includes(`Launching executor app-`) || l.includes('Asked to launch executor')), 'the worker launched an executor');
  });

  test('cancelling mid-job stops the driver and its executors: no JVM outlives the step', { timeout: 600_000 }, async () => {
    const run = await env.kaon.start(sparkSum, { n: 200, partitions: 8, sleepMs: 60_000 });
    const executors = await executorsRunning(run);
    const drivers = findProcesses(DRIVER, JOB);
    assert.ok(drivers.length >= 1, 'the driver JVM is running');
    await run.cancel();
    await assert.rejects(run.result());
    const pids = [...drivers, ...executors];
    for (let i = 0; i < 240 && pids.some(isAlive); i++) await sleep(250);
    assert.deepEqual(pids.filter(isAlive), [], `no driver or executor JVM is left (drivers ${drivers.join(',')}, executors ${executors.join(',')})`);
    assert.deepEqual(findProcesses(EXECUTOR), [], 'no executor JVM at all');
    assert.equal((await run.progress()).status, 'cancelled');
  });

  test('a killed executor fails the attempt as retryable (lost executor) and the retry succeeds', { timeout: 600_000 }, async () => {
    const run = await env.kaon.start(sparkSum, { n: 200, partitions: 4, sleepMs: 8000, fragile: true });
    const [victim] = await executorsRunning(run);
    await sleep(1500); // the tasks are 8 s long: kill the executor in the middle of them
    process.kill(victim!, 'SIGKILL');
    // While the retry runs, Temporal holds the first attempt's failure on the pending activity.
    let lastFailure: string | undefined;
    for (let i = 0; i < 1200 && lastFailure === undefined; i++) {
      const d = await env.temporal.workflow.getHandle(run.id).describe();
      const pa = d.raw.pendingActivities?.find((a) => a.activityId === 'sum');
      if (pa && (pa.attempt ?? 1) >= 2) lastFailure = pa.lastFailure?.message ?? '';
      else if (d.status.name !== 'RUNNING') break;
      else await sleep(250);
    }
    assert.match(lastFailure ?? '(the step was not retried)', /lost an executor \(retried\).*ExecutorLostFailure/s);
    const out = (await run.result()) as { total: number };
    assert.equal(out.total, 20_100);
    const s = (await run.progress()).steps.find((x) => x.key === 'sum');
    assert.equal(s?.status, 'succeeded');
    assert.equal(s?.attempts, 2, 'one retry after the lost executor');
  });
});
