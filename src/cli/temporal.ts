// Connecting the CLI to Temporal (envconfig, or an embedded dev server), Web UI links, status words.
// The SDK's client and worker load in a second or more: only commands that connect pay for them (kaon help stays fast).
import type { Connection } from '@temporalio/client';
import type { NativeConnection, NativeConnectionOptions } from '@temporalio/worker';
import type { KaonClient, RunStatusInfo } from '../client';
import { connectionConfig } from '../client/connection';
import { checkNamespace, connectFast, withConnectErrors } from '../client/connect-errors';
import { ErrorCode, KaonError } from '../definition/errors';
import { nativeConnectionConfig } from '../runtime/config';
import { usageError, type OptionValues } from './command';
import { portSetting } from './settings';
import { kaonClient, temporalClient, temporalWorker } from './lazy';

export const DEFAULT_DEV_PORT = 7233;

export interface Target {
  address: string;
  namespace: string;
  /** Web UI base URL, when known. */
  ui: string | undefined;
}

/** Dev server ports: --port / KAON_DEV_PORT (default 7233), --ui-port / KAON_DEV_UI_PORT (default port + 1000). */
export function devPorts(command: string, values: OptionValues, env: NodeJS.ProcessEnv): { port: number; uiPort: number } {
  const port = portSetting(values, 'port', env, 'KAON_DEV_PORT', DEFAULT_DEV_PORT);
  const uiPort = portSetting(values, 'ui-port', env, 'KAON_DEV_UI_PORT', port + 1000);
  if (uiPort > 65535) throw usageError(command, `the Web UI port ${uiPort} (--port + 1000) is over 65535`, 'pass --ui-port (or KAON_DEV_UI_PORT) explicitly, or a lower --port');
  return { port, uiPort };
}

/**
 * The Web UI for an address: KAON_UI_URL if set; for the local dev server address (127.0.0.1 or localhost on
 * KAON_DEV_PORT, default 7233) its UI port; otherwise unknown.
 */
export function uiBaseFor(address: string, env: NodeJS.ProcessEnv): string | undefined {
  if (env.KAON_UI_URL) return env.KAON_UI_URL.replace(/\/+$/, '');
  let port: number;
  let uiPort: number;
  try {
    ({ port, uiPort } = devPorts('', {}, env));
  } catch {
    return undefined;
  }
  return address === `127.0.0.1:${port}` || address === `localhost:${port}` ? `http://127.0.0.1:${uiPort}` : undefined;
}

/** `<ui>/namespaces/<ns>/workflows/<id>` */
export function runUrl(target: Target, id: string): string | undefined {
  return target.ui ? `${target.ui}/namespaces/${encodeURIComponent(target.namespace)}/workflows/${encodeURIComponent(id)}` : undefined;
}

function envTarget(env: NodeJS.ProcessEnv): Target & { options: ReturnType<typeof connectionConfig>['connectionOptions'] } {
  let cfg: ReturnType<typeof connectionConfig>;
  try {
    cfg = connectionConfig();
  } catch (err) {
    throw new KaonError({ code: ErrorCode.config, what: `the Temporal connection settings are invalid: ${(err as Error).message}`, fix: 'check TEMPORAL_* variables and the temporal.toml profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE)', cause: err });
  }
  const address = cfg.connectionOptions.address ?? '127.0.0.1:7233';
  return { address, namespace: cfg.namespace, ui: uiBaseFor(address, env), options: cfg.connectionOptions };
}

/** A Kaon client: to `address` if given (embedded dev server), else through envconfig. */
export async function connectClient(
  env: NodeJS.ProcessEnv,
  opts: { taskQueue?: string | undefined; address?: string; namespace?: string; ui?: string | undefined; who?: string } = {},
): Promise<{ kaon: KaonClient; target: Target; close: () => Promise<void> }> {
  const base = opts.address ? undefined : envTarget(env);
  const target: Target = opts.address
    ? { address: opts.address, namespace: opts.namespace ?? 'default', ui: opts.ui ?? uiBaseFor(opts.address, env) }
    : base!;
  const options = { ...(base?.options ?? {}), address: target.address };
  const c = await connectFast({ ...target, tls: options.tls, apiKey: options.apiKey }, () => temporalClient().Connection.connect({ ...options, connectTimeout: '5s' }));
  const connection: Connection = await closeOnThrow(c, () => checkNamespace((req) => c.workflowService.describeNamespace(req), target));
  const { connect, kaonDataConverter } = kaonClient();
  let kaon: KaonClient;
  try {
    // The command's environment names the key file (KAON_ENCRYPTION_KEY_FILE): a bad one fails before any call.
    // Without a key, the deployment's encryption mark (or KAON_ENCRYPTION in this environment) refuses every write.
    kaon = await connect({ connection, namespace: target.namespace, dataConverter: kaonDataConverter({ env }), env, who: opts.who ?? 'this kaon command', ...(opts.taskQueue ? { taskQueue: opts.taskQueue } : {}) });
  } catch (err) {
    await connection.close();
    throw err;
  }
  return { kaon, target, close: () => connection.close() };
}

/** Run fn with a connected Kaon client, closing the connection afterwards whatever happens. */
export async function withClient<R>(env: NodeJS.ProcessEnv, fn: (kaon: KaonClient) => Promise<R>): Promise<R> {
  const { kaon, close } = await connectClient(env);
  try {
    return await fn(kaon);
  } finally {
    await close();
  }
}

/** The worker's native connection: to `address` if given, else through envconfig. */
export async function connectWorker(server?: { address: string; namespace: string }): Promise<{ connection: NativeConnection; address: string; namespace: string }> {
  let options: NativeConnectionOptions;
  let namespace: string;
  if (server) {
    options = { address: server.address };
    namespace = server.namespace;
  } else {
    ({ options, namespace } = nativeConnectionConfig());
  }
  const addr = options.address ?? '127.0.0.1:7233';
  const target = { address: addr, namespace, tls: options.tls, apiKey: options.apiKey };
  const connection = await withConnectErrors(target, async () => {
    const c = await temporalWorker().NativeConnection.connect(options);
    return closeOnThrow(c, () => checkNamespace((req) => c.workflowService.describeNamespace(req), target));
  });
  return { connection, address: addr, namespace };
}

/** `c` once `check` passes; closed if it throws. */
async function closeOnThrow<C extends { close(): Promise<void> }>(c: C, check: () => Promise<void>): Promise<C> {
  try {
    await check();
  } catch (err) {
    await c.close();
    throw err;
  }
  return c;
}

/** Kaon's own status while it is meaningful, Temporal's otherwise (terminated, timed out). */
export function displayStatus(info: Pick<RunStatusInfo, 'temporal' | 'kaon'>): string {
  if (info.temporal === 'RUNNING') return info.kaon ?? 'running';
  if (info.kaon && info.kaon !== 'running' && info.kaon !== 'waiting') return info.kaon;
  const map: Partial<Record<string, string>> = { COMPLETED: 'succeeded', FAILED: 'failed', CANCELLED: 'cancelled', TIMED_OUT: 'timed out', TERMINATED: 'terminated', CONTINUED_AS_NEW: 'continued as new' };
  return map[info.temporal] ?? info.temporal.toLowerCase();
}

export function isClosed(info: Pick<RunStatusInfo, 'temporal'>): boolean {
  return info.temporal !== 'RUNNING' && info.temporal !== 'PAUSED' && info.temporal !== 'UNSPECIFIED';
}
