// Both artifact-store backends behind one fixture, so every data test runs against a local folder and a real
// S3-compatible server (moto, provisioned by test/support/s3-server.ts).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createArtifactStore, type ArtifactStore, type ArtifactStoreOptions } from '../../src/data';
import { s3ClientFromEnv } from '../../src/data/s3-backend';
import { startS3Server, type S3Server } from '../support/s3-server';

export const ROOT = path.resolve(__dirname, '..', '..');
export const BUCKET = 'kaon-test';
export const producer = (over: Partial<{ pipeline: string; runId: string; step: string; attempt: number }> = {}) => ({
  pipeline: 'test-pipeline', runId: 'run-1', step: 'make', attempt: 1, ...over,
});

/** What a child process needs to open the same store (JSON-serialisable). */
export interface StoreConfig {
  url: string;
  localDir: string;
  s3?: { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } };
}

export function openStore(cfg: StoreConfig): ArtifactStore {
  const opts: ArtifactStoreOptions = { localDir: cfg.localDir };
  if (cfg.s3) opts.s3 = cfg.s3;
  return createArtifactStore(cfg.url, opts);
}

export interface StoreFixture {
  store: ArtifactStore;
  config: StoreConfig;
  /** Keys of stored blobs (`sha256/ab/<sha>`), bypassing the store. */
  blobs(): Promise<string[]>;
  /** Rewrite a blob's stored bytes behind the store's back. */
  tamper(sha256: string, change: (bytes: Buffer) => Buffer): Promise<void>;
}

export interface Backend {
  name: 'file' | 's3';
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A new, empty store: its own folder or S3 prefix. */
  fresh(): Promise<StoreFixture>;
  /** The raw S3 client (s3 backend only). */
  s3?(): S3Client;
}

function walk(dir: string, rel = ''): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name), `${rel}${e.name}/`) : [`${rel}${e.name}`]));
}

function fileBackend(): Backend {
  let base = '';
  return {
    name: 'file',
    async start() {
      base = mkdtempSync(path.join(os.tmpdir(), 'kaon-data-file-'));
    },
    async stop() {
      rmSync(base, { recursive: true, force: true });
    },
    async fresh() {
      const root = mkdtempSync(path.join(base, 'store-'));
      const config: StoreConfig = { url: `file://${root}`, localDir: mkdtempSync(path.join(base, 'local-')) };
      return {
        store: openStore(config),
        config,
        async blobs() {
          return walk(path.join(root, 'sha256')).map((k) => `sha256/${k}`);
        },
        async tamper(sha256, change) {
          const file = path.join(root, 'sha256', sha256.slice(0, 2), sha256);
          chmodSync(file, 0o644);
          writeFileSync(file, change(readFileSync(file)));
        },
      };
    },
  };
}

function s3Backend(): Backend {
  let server: S3Server | undefined;
  let client: S3Client | undefined;
  let base = '';
  return {
    name: 's3',
    async start() {
      server = await startS3Server();
      client = s3ClientFromEnv({ endpoint: server.endpoint, region: server.region, credentials: server.credentials });
      await client.send(new CreateBucketCommand({ Bucket: BUCKET })).catch((err: { name?: string }) => {
        if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
      });
      base = mkdtempSync(path.join(os.tmpdir(), 'kaon-data-s3-'));
    },
    async stop() {
      client?.destroy();
      await server?.stop();
      rmSync(base, { recursive: true, force: true });
    },
    s3: () => client!,
    async fresh() {
      const prefix = `t-${randomUUID().slice(0, 8)}`;
      const srv = server!;
      const config: StoreConfig = {
        url: `s3://${BUCKET}/${prefix}`,
        localDir: mkdtempSync(path.join(base, 'local-')),
        s3: { endpoint: srv.endpoint, region: srv.region, credentials: srv.credentials },
      };
      const c = client!;
      return {
        store: openStore(config),
        config,
        async blobs() {
          const res = await c.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${prefix}/sha256/` }));
          return (res.Contents ?? []).map((o) => o.Key!.slice(prefix.length + 1)).sort();
        },
        async tamper(sha256, change) {
          const Key = `${prefix}/sha256/${sha256.slice(0, 2)}/${sha256}`;
          const got = await c.send(new GetObjectCommand({ Bucket: BUCKET, Key }));
          const bytes = Buffer.from(await got.Body!.transformToByteArray());
          await c.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: change(bytes) }));
        },
      };
    },
  };
}

/** Both backends; set KAON_TEST_BACKENDS=file (or s3) to run one. */
export function backends(): Backend[] {
  const only = process.env.KAON_TEST_BACKENDS?.split(',').map((s) => s.trim());
  return [fileBackend(), s3Backend()].filter((b) => !only || only.includes(b.name));
}

export interface ChildRun {
  /** Resolves with the first stdout line matching `marker`. */
  waitFor(marker: RegExp): Promise<string>;
  kill(): Promise<void>;
  /** Resolves with the exit code and all stdout once the child exits by itself. */
  done(): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Run a TypeScript fixture in a child Node process (through tsx), with a JSON config as its argument. */
export function runFixture(name: string, config: unknown): ChildRun {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures', name), JSON.stringify(config)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  let stdout = '';
  let stderr = '';
  const waiters: { marker: RegExp; resolve: (line: string) => void }[] = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    for (const w of [...waiters]) {
      const line = stdout.split('\n').find((l) => w.marker.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    waitFor(marker) {
      return new Promise((resolve, reject) => {
        const line = stdout.split('\n').find((l) => marker.test(l));
        if (line !== undefined) return resolve(line);
        waiters.push({ marker, resolve });
        void exit.then((code) => reject(new Error(`fixture ${name} exited (${code}) before printing ${marker}:\n${stdout}\n${stderr}`)));
      });
    },
    async kill() {
      child.kill('SIGKILL');
      await exit;
    },
    async done() {
      const code = await exit;
      return { code, stdout, stderr };
    },
  };
}
