// Shared test environment: one real Temporal dev server for the whole test run (started by test/run.ts),
// or a private one when a test file runs alone.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { connect, type KaonClient } from '../../src/client';
import { createArtifactStore, type ArtifactStore } from '../../src/data/store';
import { startDevServer, type DevServer } from '../../src/runtime/dev-server';
import { createKaonWorker, type KaonWorker, type KaonWorkerOptions } from '../../src/runtime/worker';

// The SDK logs every worker state change at INFO; tests want warnings only. Installed on first use, so a test
// file may install its own runtime first (the metrics test installs one with the SDK's Prometheus exporter).
let runtimeReady = false;
export function installTestRuntime(): void {
  if (runtimeReady) return;
  runtimeReady = true;
  try {
    Runtime.install({ logger: new DefaultLogger((process.env.KAON_TEST_LOG_LEVEL as 'WARN' | undefined) ?? 'WARN') });
  } catch {
    // This test file installed its own runtime before its first connection.
  }
}

export const ROOT = path.resolve(__dirname, '..', '..');

let server: Promise<{ address: string; stop?: () => Promise<void> }> | undefined;

export function testServer(): Promise<{ address: string; stop?: () => Promise<void> }> {
  installTestRuntime();
  server ??= process.env.KAON_TEST_TEMPORAL_ADDRESS
    ? Promise.resolve({ address: process.env.KAON_TEST_TEMPORAL_ADDRESS })
    : startDevServer({ port: 0, dbFile: null, headless: true, say: (m) => process.stderr.write(`${m}\n`) }).then((s: DevServer) => ({ address: s.address, stop: () => s.stop() }));
  return server;
}

export interface TestEnv {
  address: string;
  taskQueue: string;
  kaon: KaonClient;
  temporal: Client;
  nativeConnection: NativeConnection;
  /** A private artifact store (temp folder) shared by this env's workers. */
  artifacts: ArtifactStore;
  artifactsDir: string;
  worker(opts: Omit<KaonWorkerOptions, 'connection' | 'taskQueue'> & { taskQueue?: string }): Promise<KaonWorker>;
  close(): Promise<void>;
}

/** A client, a worker factory and a unique task queue on the shared server. Call close() in after(). */
export async function testEnv(prefix = 'test'): Promise<TestEnv> {
  const srv = await testServer();
  const taskQueue = `${prefix}-${randomUUID().slice(0, 8)}`;
  const connection = await Connection.connect({ address: srv.address });
  const nativeConnection = await NativeConnection.connect({ address: srv.address });
  const kaon = await connect({ connection, taskQueue });
  const artifactsDir = mkdtempSync(path.join(os.tmpdir(), 'kaon-test-artifacts-'));
  const artifacts = createArtifactStore(artifactsDir, { localDir: artifactsDir });
  return {
    address: srv.address,
    taskQueue,
    kaon,
    temporal: kaon.temporal,
    nativeConnection,
    artifacts,
    artifactsDir,
    worker: (opts) => createKaonWorker({ taskQueue, artifacts, ...opts, connection: nativeConnection, shutdownGraceTime: opts.shutdownGraceTime ?? '2s' }),
    close: async () => {
      rmSync(artifactsDir, { recursive: true, force: true });
      await connection.close();
      await nativeConnection.close();
      await srv.stop?.();
    },
  };
}

/** A test env with one worker running for the whole test file: call in before(), and stop() in after(). */
export async function runningWorker(
  prefix: string,
  opts: Omit<KaonWorkerOptions, 'connection' | 'taskQueue'>,
): Promise<{ env: TestEnv; worker: KaonWorker; stop(): Promise<void> }> {
  const env = await testEnv(prefix);
  const worker = await env.worker(opts);
  const running = worker.run();
  return {
    env,
    worker,
    stop: async () => {
      worker.shutdown();
      await running;
      await env.close();
    },
  };
}
