// The README's retrain loop, a year of days in seconds on the time-skipping server: one execution per day.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { retrainDayImpl } from '../../examples/retrain-loop/steps.impl';
import { retrainForever } from '../../examples/retrain-loop/workflows';
import { KaonClient } from '../../src/client';
import { createArtifactStore } from '../../src/data/store';
import { SA } from '../../src/definition/internal/protocol';
import { ensureTestServer } from '../../src/runtime/temporal-cli';
import { createKaonWorker, type KaonWorker } from '../../src/runtime/worker';
import { ROOT } from '../support/temporal';

let env: TestWorkflowEnvironment;
let worker: KaonWorker;
let running: Promise<void>;
let dir: string;

before(async () => {
  env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: ensureTestServer() } } });
  await env.connection.operatorService.addSearchAttributes({ namespace: env.namespace ?? 'default', searchAttributes: Object.fromEntries(Object.values(SA).map((k) => [k, 2])) });
  dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-ts-'));
  worker = await createKaonWorker({ connection: env.nativeConnection, namespace: env.namespace ?? 'default', taskQueue: 'retrain-loop', workflowsPath: path.join(ROOT, 'examples/retrain-loop/workflows.ts'), activities: [retrainDayImpl], artifacts: createArtifactStore(dir, { localDir: dir }) });
  running = worker.run();
});

after(async () => {
  worker.shutdown();
  await running;
  await env.teardown();
  rmSync(dir, { recursive: true, force: true });
});

test('retrain-forever runs 365 daily iterations; its final state is the fold over all days', async () => {
  const run = await new KaonClient(env.client, 'retrain-loop', false).start(retrainForever, { days: 365 });
  const result = await run.result();
  let champion = 0;
  let promotions = 0;
  for (let day = 0; day < 365; day++) {
    const ndcg = 0.3 + 0.1 * Math.sin(day / 9) + day / 2000;
    if (ndcg > champion) {
      champion = ndcg;
      promotions++;
    }
  }
  assert.deepEqual(result, { day: 365, days: 365, champion, promotions });
  const state = await run.progress();
  assert.equal(state.loop?.execution, 365);
});
