import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { ErrorCode, KaonError } from '../definition/errors';
import { SA } from '../definition/internal/protocol';
import { ensureTemporalCli, type Say } from './temporal-cli';
import { kaonHome } from './paths';

export interface DevServerOptions {
  /** gRPC port. Default 7233; 0 picks a free port. */
  port?: number;
  /** Web UI port. Default port + 1000; 0 picks a free port. */
  uiPort?: number;
  /** SQLite file for durable state. Default `.kaon/temporal.db`; null keeps state in memory. */
  dbFile?: string | null;
  headless?: boolean;
  namespace?: string;
  say?: Say;
  /** How long to wait for the server to answer. Default 60 s. */
  readyTimeoutMs?: number;
  /** The Web UI's codec server (`kaon codec-server` prints it): the UI then shows decrypted payloads. */
  uiCodecEndpoint?: string;
}

export interface DevServer {
  readonly address: string;
  readonly namespace: string;
  readonly uiUrl: string | undefined;
  readonly pid: number | undefined;
  /** Whether this process started it (false: an already running server was reused). */
  readonly owned: boolean;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Ready means: the frontend answers and Kaon's search attributes are registered. */
async function waitReady(address: string, namespace: string, deadline: number, child?: ChildProcess): Promise<void> {
  let last: unknown;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`temporal exited with code ${child.exitCode}`);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 2000 });
      try {
        const res = await conn.operatorService.listSearchAttributes({ namespace });
        if (res.customAttributes && SA.pipeline in res.customAttributes) return;
        last = new Error('Kaon search attributes are not registered yet');
      } finally {
        await conn.close();
      }
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw last instanceof Error ? last : new Error(String(last));
}

async function registerSearchAttributes(address: string, namespace: string): Promise<void> {
  const conn = await Connection.connect({ address });
  try {
    const res = await conn.operatorService.listSearchAttributes({ namespace });
    const missing = Object.values(SA).filter((k) => !(res.customAttributes && k in res.customAttributes));
    if (missing.length === 0) return;
    await conn.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((k) => [k, 2 /* KEYWORD */])),
    });
  } finally {
    await conn.close();
  }
}

/**
 * Start `temporal server start-dev` on loopback with Kaon's search attributes, or reuse one already
 * listening on the port. Resolves once the server answers.
 */
export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  const say = opts.say ?? (() => undefined);
  const namespace = opts.namespace ?? 'default';
  const port = opts.port === 0 ? await freePort() : (opts.port ?? 7233);
  const address = `127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  const uiPort = opts.headless ? undefined : opts.uiPort === 0 || (opts.port === 0 && opts.uiPort === undefined) ? await freePort() : (opts.uiPort ?? port + 1000);

  if (await portOpen(port)) {
    // Someone (another `kaon dev`) already serves this port: reuse it, and make sure our attributes exist.
    await registerSearchAttributes(address, namespace);
    await waitReady(address, namespace, deadline);
    say(`kaon: using the Temporal server already running at ${address}`);
    return { address, namespace, uiUrl: opts.headless ? undefined : `http://127.0.0.1:${uiPort}`, pid: undefined, owned: false, stop: async () => undefined };
  }

  const bin = ensureTemporalCli(say);
  const home = kaonHome();
  mkdirSync(home, { recursive: true });
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--namespace', namespace, '--log-level', 'error'];
  const dbFile = opts.dbFile === undefined ? path.join(home, 'temporal.db') : opts.dbFile;
  if (dbFile) args.push('--db-filename', dbFile);
  if (uiPort === undefined) args.push('--headless');
  else args.push('--ui-port', String(uiPort));
  // The codec endpoint carries the codec server's token in its path (the Web UI cannot send a header). A flag would
  // show it to every user of the machine in `ps`; the Temporal CLI also reads any flag from an env file (`--env-file`,
  // `--env`), so it goes there: a 0600 file, removed once the server has read it.
  let envFile: string | undefined;
  if (uiPort !== undefined && opts.uiCodecEndpoint) {
    envFile = path.join(home, `temporal-dev-${port}-${process.pid}.yaml`);
    writeFileSync(envFile, `# Written by Kaon for its dev server; removed once it started.\nenv:\n  kaon-dev:\n    ui-codec-endpoint: ${JSON.stringify(opts.uiCodecEndpoint)}\n`, { mode: 0o600 });
    args.push('--env-file', envFile, '--env', 'kaon-dev');
  }
  for (const key of Object.values(SA)) args.push('--search-attribute', `${key}=Keyword`);
  // The dev server polls its transfer queue at 20/s by default, which alone puts a 50 ms floor under every
  // sequential step (measured by npm run bench); a single-machine server can afford far more.
  args.push('--dynamic-config-value', 'history.transferProcessorMaxPollRPS=1000', '--dynamic-config-value', 'history.timerProcessorMaxPollRPS=1000');
  // Every step and child of a run carries the run's fairness key: a big sweep then shares the workers round-robin
  // with other runs instead of queueing them behind its backlog.
  args.push('--dynamic-config-value', 'matching.enableFairness=true');

  const logFile = path.join(home, `temporal-${port}.log`);
  const out = openSync(logFile, 'a');
  const child = spawn(bin, args, { stdio: ['ignore', out, out], detached: false });
  const kill = () => { if (child.exitCode === null) child.kill('SIGKILL'); };
  process.once('exit', kill);
  try {
    await waitReady(address, namespace, deadline, child);
  } catch (err) {
    kill();
    if (envFile) rmSync(envFile, { force: true });
    throw new KaonError({
      code: ErrorCode.temporalCli,
      what: `the Temporal dev server did not become ready at ${address}: ${(err as Error).message}`,
      fix: `see its log at ${logFile}; if the port is taken, pass another port (KAON_DEV_PORT) or stop the other process`,
      cause: err,
    });
  }
  if (envFile) rmSync(envFile, { force: true });
  const uiUrl = uiPort === undefined ? undefined : `http://127.0.0.1:${uiPort}`;
  return {
    address,
    namespace,
    uiUrl,
    pid: child.pid,
    owned: true,
    stop: async () => {
      process.removeListener('exit', kill);
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}
