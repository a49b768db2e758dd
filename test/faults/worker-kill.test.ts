// kill -9 of the worker at random points of a pipeline with artifacts and a foreach of Python steps, 10 times
// (KAON_FAULTS_WORKER_KILLS to change it; KAON_FAULTS_SEED replays a sequence). After every kill the worker is
// restarted; every run must complete with the undisturbed run's outputs, every artifact must verify, no temp or
// partial file may be visible in the store, and no step process may outlive its worker by more than 2 s.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { connect, type KaonClient } from '../../src/client';
import { createArtifactStore } from '../../src/data/store';
import { testServer } from '../support/temporal';
import type { CliProcess } from '../cli/cli-process';
import { faultsShards } from '../fixtures/faults/pipelines';
import { alive, checkStore, comparable, killHard, recordedPids, rng, sleep, startWorker, workerEnv } from './support';

const KILLS = Number(process.env.KAON_FAULTS_WORKER_KILLS ?? 10);
const SEED = Number(process.env.KAON_FAULTS_SEED ?? randomInt(2 ** 31));
const queue = `faults-kill-${randomUUID().slice(0, 8)}`;
const workers: CliProcess[] = [];
let connection: Connection;
let kaon: KaonClient;
let tmp: string;
let artifactsDir: string;
let env: NodeJS.ProcessEnv;

describe(`kill -9 of the worker at random points, ${KILLS} times`, { timeout: 1_200_000 }, () => {
  before(async () => {
    const { address } = await testServer();
    connection = await Connection.connect({ address });
    kaon = await connect({ connection, taskQueue: queue });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-faults-kill-'));
    artifactsDir = path.join(tmp, 'artifacts');
    env = workerEnv(address, queue, artifactsDir);
  });

  after(async () => {
    for (const w of workers) w.kill();
    await connection?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('every run completes with the undisturbed outputs, verified artifacts, no temp files and no orphans', async () => {
    console.log(`faults: worker kills seeded with KAON_FAULTS_SEED=${SEED}`);
    const random = rng(SEED);
    const store = createArtifactStore(artifactsDir, { localDir: tmp });
    let worker = await startWorker(env, workers);

    const pidDir = (name: string) => {
      const d = path.join(tmp, 'pids', name);
      mkdirSync(d, { recursive: true });
      return d;
    };
    const t0 = Date.now();
    const baseline = await kaon.start(faultsShards, { pidDir: pidDir('baseline') });
    const expected = comparable(await baseline.result());
    const undisturbedMs = Date.now() - t0;
    await checkStore(store, artifactsDir, baseline.id, await baseline.result());
    console.log(`faults: undisturbed run took ${undisturbedMs} ms`);

    let interrupted = 0;
    for (let round = 1; round <= KILLS; round++) {
      const pids = pidDir(`round-${round}`);
      const run = await kaon.start(faultsShards, { pidDir: pids });
      const started = Date.now();
      // A random point inside the run: from its first step to its last.
      const delay = Math.round(200 + random() * undisturbedMs * 0.9);
      await sleep(delay);
      const running = recordedPids(pids).filter(alive).length;
      interrupted += running;
      await killHard(worker);
      const killedAt = Date.now();
      await sleep(2000);
      const orphans = recordedPids(pids).filter(alive);
      assert.deepEqual(orphans, [], `round ${round}: step processes alive 2 s after kill -9 of their worker (pids ${orphans.join(', ')})`);
      worker = await startWorker(env, workers);
      const result = await run.result();
      assert.equal(comparable(result), expected, `round ${round}: the same outputs as the undisturbed run`);
      const checked = await checkStore(store, artifactsDir, run.id, result);
      console.log(`faults: round ${round}: killed the worker ${delay} ms into the run; done ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill (run ${((Date.now() - started) / 1000).toFixed(1)} s); ${checked.artifacts} artifact refs verified, ${checked.blobs} blobs in the store; ${recordedPids(pids).length} step processes, ${running} of them running at the kill, none alive 2 s later`);
    }
    // Shards run for most of a run, so ten random kills all missing them would mean the kills land elsewhere.
    if (KILLS >= 10) assert.ok(interrupted > 0, `some kill interrupted a running Python step (seed ${SEED})`);
  });
});
