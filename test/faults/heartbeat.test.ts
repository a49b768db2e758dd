// The default heartbeat (60 s) against real `kaon worker` processes: silent steps stay alive on the wrapper's own
// heartbeat, cancellation still reaches them, and a worker killed with kill -9 mid-step has the step retried on
// the other worker within about a minute (the heartbeat timeout), not after the 10-minute start-to-close.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { connect, type KaonClient } from '../../src/client';
import { testServer } from '../support/temporal';
import type { CliProcess } from '../cli/cli-process';
import { faultsSilent, faultsSlow } from '../fixtures/faults/pipelines';
import { alive, killHard, recordedPids, startWorker, until, workerEnv } from './support';

const queue = `faults-hb-${randomUUID().slice(0, 8)}`;
const workers: CliProcess[] = [];
let connection: Connection;
let kaon: KaonClient;
let tmp: string;
let env: NodeJS.ProcessEnv;

describe('default heartbeat and a worker killed mid-step', { timeout: 600_000 }, () => {
  before(async () => {
    const { address } = await testServer();
    connection = await Connection.connect({ address });
    kaon = await connect({ connection, taskQueue: queue });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-faults-hb-'));
    env = workerEnv(address, queue, path.join(tmp, 'artifacts'));
  });

  after(async () => {
    for (const w of workers) w.kill();
    await connection?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('silent TS and Python steps outlive a 3 s heartbeat timeout, and cancellation still reaches them', async () => {
    const w = await startWorker(env, workers);
    const pidDir = path.join(tmp, 'silent-pids');
    mkdirSync(pidDir);
    // 8 s without a word from the step: only the wrapper's own heartbeat keeps the attempt alive.
    const ok = await kaon.start(faultsSilent, { ms: 8000, pidDir });
    assert.deepEqual(await ok.result(), { ts: 1, py: 1 });

    const long = await kaon.start(faultsSilent, { ms: 120_000, pidDir });
    const desc = () => kaon.temporal.workflow.getHandle(long.id).describe();
    await until('both steps running', async () => (((await desc()).raw.pendingActivities ?? []).filter((a) => String(a.state) === 'PENDING_ACTIVITY_STATE_STARTED' || a.state === 2).length === 2 ? true : undefined));
    const t0 = Date.now();
    await long.cancel();
    await assert.rejects(long.result(), /cancel/i);
    const took = Date.now() - t0;
    assert.ok(took < 20_000, `the cancellation reached both silent steps in ${took} ms`);
    // The Python process ended with its cancelled step.
    await until('the silent Python process to end', () => (recordedPids(pidDir).every((p) => !alive(p)) ? true : undefined), 10_000);
    w.kill(); // the next test wants its own two workers alone on the queue
    await w.exited;
  });

  test('kill -9 of the worker running a step: the other worker retries it within ~60 s', async () => {
    const [a, b] = await Promise.all([startWorker(env, workers), startWorker(env, workers)]);
    const dir = path.join(tmp, 'slow');
    mkdirSync(dir);
    const run = await kaon.start(faultsSlow, { ms: 20_000, dir });
    const first = path.join(dir, 'attempt-1.json');
    await until('the first attempt to start', () => (existsSync(first) ? true : undefined), 60_000);
    // Which worker runs it: the pending activity's worker identity is `<pid>@<host>`.
    const identity = await until('a started pending activity', async () => {
      const pending = (await kaon.temporal.workflow.getHandle(run.id).describe()).raw.pendingActivities?.[0];
      return pending?.lastWorkerIdentity || undefined;
    });
    const pid = Number(identity.split('@')[0]);
    const victim = [a, b].find((w) => w.child.pid === pid);
    const survivor = [a, b].find((w) => w.child.pid !== pid)!;
    assert.ok(victim, `the step runs on one of the two workers (identity ${identity}; workers ${a.child.pid}, ${b.child.pid})`);
    assert.equal((JSON.parse(readFileSync(first, 'utf8')) as { pid: number }).pid, pid);

    const killedAt = Date.now();
    await killHard(victim);
    const result = await run.result();
    const second = JSON.parse(readFileSync(path.join(dir, 'attempt-2.json'), 'utf8')) as { pid: number; at: number };
    const retryAfter = second.at - killedAt;
    console.log(`faults: worker ${pid} killed; attempt 2 started on worker ${second.pid} after ${(retryAfter / 1000).toFixed(1)} s`);
    assert.deepEqual(result, { pid: survivor.child.pid, attempt: 2 });
    assert.ok(retryAfter < 90_000, `the retry started ${retryAfter} ms after the kill, within the 60 s heartbeat timeout plus margin`);

    // It was the default heartbeat timeout that noticed the lost worker, not the start-to-close timeout.
    const history = await kaon.temporal.workflow.getHandle(run.id).fetchHistory();
    const scheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes)!.activityTaskScheduledEventAttributes!;
    assert.equal(Number(scheduled.heartbeatTimeout!.seconds), 60, 'the step got the 60 s default heartbeat timeout');
    assert.equal(Number(scheduled.startToCloseTimeout!.seconds), 600);
    const started = history.events!.find((e) => e.activityTaskStartedEventAttributes)!.activityTaskStartedEventAttributes!;
    assert.equal(started.attempt, 2);
    assert.match(started.lastFailure?.message ?? '', /heartbeat/i, 'the first attempt ended by heartbeat timeout');
  });
});
