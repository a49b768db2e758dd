// Cold run vs cache-hit rerun of the reference pipeline: wall time and steps actually executed.
// Part of `npm run bench:artifacts`. Fresh artifact store (cold cache), warm virtualenv, private dev server.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import * as activities from '../activities';
import { RECSYS_REQUIREMENTS } from '../activities/recommender';
import { connect } from '../src/client';
import { createArtifactStore } from '../src/data/store';
import { ensurePythonEnv } from '../src/execution/python-env';
import { createKaonWorker, startDevServer } from '../src/runtime';
import { retrainRecommender } from '../workflows/recommender';

Runtime.install({ logger: new DefaultLogger('WARN') });

async function main(): Promise<void> {
  await ensurePythonEnv(RECSYS_REQUIREMENTS, { say: (m) => console.log(m) });
  const server = await startDevServer({ port: 0, dbFile: null, headless: true });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-bench-cache-'));
  try {
    const artifacts = createArtifactStore(tmp, { localDir: tmp });
    const connection = await NativeConnection.connect({ address: server.address });
    const worker = await createKaonWorker({ workflowsPath: path.resolve(__dirname, '../workflows/index.ts'), activities, taskQueue: 'bench-cache', connection, artifacts });
    const kaon = await connect({ connection: await Connection.connect({ address: server.address }), taskQueue: 'bench-cache' });
    await worker.runUntil(async () => {
      const rows: { label: string; ms: number; executed: number; cached: number }[] = [];
      for (const label of ['cold run', 'cache-hit rerun']) {
        const t = process.hrtime.bigint();
        const run = await kaon.start(retrainRecommender, { registry: path.join(tmp, 'registry') });
        await run.result();
        const ms = Number(process.hrtime.bigint() - t) / 1e6;
        const steps = (await run.progress()).steps;
        rows.push({ label, ms, executed: steps.filter((s) => s.status === 'succeeded').length, cached: steps.filter((s) => s.status === 'cached').length });
      }
      console.log('\nretrain-recommender (4 countries), cache on');
      for (const r of rows) console.log(`${r.label.padEnd(16)} ${(r.ms / 1000).toFixed(2).padStart(6)} s   steps executed ${String(r.executed).padStart(2)}, reused from cache ${String(r.cached).padStart(2)}`);
      console.log(`rerun/cold wall time: ${(rows[1]!.ms / rows[0]!.ms).toFixed(3)} (${(rows[0]!.ms / rows[1]!.ms).toFixed(1)}x faster)`);
    });
    await kaon.close();
    await connection.close();
  } finally {
    await server.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

void main();
