// Shared set-up of the pipeline benchmarks: a private in-memory dev server, a temp artifact store, a worker for
// this repository's pipelines, and a client — torn down afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import * as activities from '../activities';
import { connect, type KaonClient } from '../src/client';
import { createArtifactStore, type ArtifactStore } from '../src/data/store';
import { createKaonWorker, startDevServer, type KaonWorkerOptions } from '../src/runtime';

Runtime.install({ logger: new DefaultLogger('WARN') });

export interface BenchEnv {
  kaon: KaonClient;
  store: ArtifactStore;
  tmp: string;
}

export async function withBenchWorker<R>(
  taskQueue: string,
  opts: (store: ArtifactStore) => Partial<KaonWorkerOptions>,
  fn: (env: BenchEnv) => Promise<R>,
): Promise<R> {
  const server = await startDevServer({ port: 0, dbFile: null, headless: true });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-bench-'));
  try {
    const store = createArtifactStore(tmp, { localDir: tmp });
    const connection = await NativeConnection.connect({ address: server.address });
    const worker = await createKaonWorker({ workflowsPath: path.resolve(__dirname, '../workflows/index.ts'), activities, taskQueue, connection, artifacts: store, ...opts(store) });
    const client = await Connection.connect({ address: server.address });
    const kaon = await connect({ connection: client, taskQueue });
    try {
      return await worker.runUntil(() => fn({ kaon, store, tmp }));
    } finally {
      await client.close();
      await connection.close();
    }
  } finally {
    await server.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}
