// A real MLflow tracking server for tests: mlflow from PyPI (pinned) in a virtualenv Kaon provisions under
// .kaon/venvs like any Python step env, a SQLite backend and an artifact folder in a temp dir, on loopback.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensurePythonEnv } from '../../src/execution/python-env';
import { ROOT } from './temporal';

/** The MLflow release the tests (and the README's instructions) use. */
export const MLFLOW_VERSION = '3.17.2';

export interface MlflowServer {
  url: string;
  dir: string;
  /** The server's output so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export async function startMlflowServer(opts: { startTimeoutMs?: number } = {}): Promise<MlflowServer> {
  const python = await ensurePythonEnv([`mlflow==${MLFLOW_VERSION}`], { home: path.join(ROOT, '.kaon'), say: (m) => process.stderr.write(`${m}\n`) });
  const mlflow = path.join(path.dirname(python), 'mlflow');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-mlflow-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const out: string[] = [];
  const child: ChildProcess = spawn(
    mlflow,
    ['server', '--backend-store-uri', `sqlite:///${path.join(dir, 'mlflow.db')}`, '--artifacts-destination', path.join(dir, 'artifacts'), '--host', '127.0.0.1', '--port', String(port), '--workers', '1'],
    { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MLFLOW_TRACKING_URI: '' } },
  );
  const keep = (b: Buffer) => {
    out.push(b.toString('utf8'));
    if (out.length > 400) out.shift();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited = false;
  child.once('exit', () => (exited = true));
  const stop = async () => {
    if (!exited && child.pid) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      for (let i = 0; i < 100 && !exited; i++) await new Promise((r) => setTimeout(r, 50));
    }
    // mlflow's job consumers (huey) outlive a SIGTERM of the server: end the whole group.
    if (child.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (opts.startTimeoutMs ?? 180_000);
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`mlflow server exited before it was ready:\n${out.join('').slice(-4000)}`);
    }
    const ok = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    // Ready once it has answered a query too: the first one after start is slow (the store warms up).
    if (ok && (await fetch(`${url}/api/2.0/mlflow/runs/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"experiment_ids":["0"]}', signal: AbortSignal.timeout(60_000) }).then((r) => r.ok, () => false))) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`mlflow server did not answer on ${url} within ${opts.startTimeoutMs ?? 180_000} ms:\n${out.join('').slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { url, dir, log: () => out.join(''), stop };
}
