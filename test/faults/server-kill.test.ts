// kill -9 of the Temporal dev server mid-run, 3 times (KAON_FAULTS_SERVER_KILLS to change it): the server is
// restarted on the same database file and port, and the run completes with the undisturbed run's outputs. The
// worker process is not restarted: its SDK keeps retrying its polls while the server is away and reconnects.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { connect, type KaonClient, type RunHandle } from '../../src/client';
import { createArtifactStore } from '../../src/data/store';
import { freePort, startDevServer, type DevServer } from '../../src/runtime/dev-server';
import { installTestRuntime } from '../support/temporal';
import type { CliProcess } from '../cli/cli-process';
import { faultsShards } from '../fixtures/faults/pipelines';
import { checkStore, comparable, rng, sleep, startWorker, workerEnv } from './support';

const KILLS = Number(process.env.KAON_FAULTS_SERVER_KILLS ?? 3);
const SEED = Number(process.env.KAON_FAULTS_SEED ?? randomInt(2 ** 31));
const queue = `faults-server-${randomUUID().slice(0, 8)}`;
const workers: CliProcess[] = [];
let server: DevServer;
let port: number;
let dbFile: string;
let connection: Connection;
let kaon: KaonClient;
let tmp: string;
let artifactsDir: string;

const start = (p: number) => startDevServer({ port: p, dbFile, headless: true, readyTimeoutMs: 120_000 });

/** The run's result, across the client's own connection errors while the server is down. */
async function resultOf(run: RunHandle, timeoutMs = 300_000): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await run.result();
    } catch (err) {
      const msg = String((err as Error).message);
      if (Date.now() > deadline || !/UNAVAILABLE|ECONNREFUSED|connect|deadline/i.test(msg)) throw err;
      await sleep(1000);
    }
  }
}

describe(`kill -9 of the Temporal dev server mid-run, ${KILLS} times`, { timeout: 1_200_000 }, () => {
  before(async () => {
    installTestRuntime();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-faults-server-'));
    dbFile = path.join(tmp, 'temporal.db');
    artifactsDir = path.join(tmp, 'artifacts');
    port = await freePort();
    server = await start(port);
    connection = await Connection.connect({ address: server.address });
    kaon = await connect({ connection, taskQueue: queue });
  });

  after(async () => {
    for (const w of workers) w.kill();
    await connection?.close();
    await server?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('the run completes with the undisturbed outputs after each restart on the same database file', async () => {
    console.log(`faults: server kills seeded with KAON_FAULTS_SEED=${SEED}`);
    const random = rng(SEED);
    const store = createArtifactStore(artifactsDir, { localDir: tmp });
    const worker = await startWorker(workerEnv(server.address, queue, artifactsDir), workers);
    const pidDir = (name: string) => {
      const d = path.join(tmp, 'pids', name);
      mkdirSync(d, { recursive: true });
      return d;
    };
    const t0 = Date.now();
    const baseline = await kaon.start(faultsShards, { pidDir: pidDir('baseline') });
    const baselineResult = await baseline.result();
    const undisturbedMs = Date.now() - t0;
    const expected = comparable(baselineResult);
    await checkStore(store, artifactsDir, baseline.id, baselineResult);
    console.log(`faults: undisturbed run took ${undisturbedMs} ms`);

    for (let round = 1; round <= KILLS; round++) {
      const run = await kaon.start(faultsShards, { pidDir: pidDir(`round-${round}`) });
      const delay = Math.round(500 + random() * undisturbedMs * 0.8);
      await sleep(delay);
      const pid = server.pid!;
      process.kill(pid, 'SIGKILL');
      const killedAt = Date.now();
      // Down for a moment, as after a crash; then up again on the same port and database file.
      await sleep(1000 + Math.round(random() * 2000));
      server = await start(port);
      assert.ok(server.owned && server.pid !== pid, `round ${round}: a new server process (not the killed ${pid})`);
      const restartedAt = Date.now();
      const result = await resultOf(run);
      assert.equal(comparable(result), expected, `round ${round}: the same outputs as the undisturbed run`);
      assert.ok(worker.running, `round ${round}: the worker process survived the server's absence`);
      const checked = await checkStore(store, artifactsDir, run.id, result);
      console.log(`faults: round ${round}: killed the server ${delay} ms into the run, back ${((restartedAt - killedAt) / 1000).toFixed(1)} s later; the run completed ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after the restart; ${checked.artifacts} artifact refs verified`);
    }
  });
});
