// Worker telemetry: the Prometheus endpoint (Kaon's registry + the Temporal SDK's runtime metrics on one port)
// and the Temporal OpenTelemetry interceptors for tracing.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { IllegalStateError } from '@temporalio/common';
import { DefaultLogger, Runtime, type Logger, type WorkerOptions } from '@temporalio/worker';
import { ErrorCode, KaonError } from '../definition/errors';
import { createKaonMetrics, MetricsRegistry, type KaonMetrics } from '../observe/metrics';
import { tracingConfigured } from '../observe/otel-env';
import { freePort } from './dev-server';

/**
 * `:9464` → 127.0.0.1:9464 (loopback unless a host is given: metrics can reveal step names and queue sizes);
 * `0.0.0.0:9464`, `[::]:9464`, `host:port` as written. Port 0 picks a free port.
 */
export function parseListenAddress(spec: string, where = '--metrics'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(spec.trim()) ?? /^()()(\d{1,5})$/.exec(spec.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new KaonError({ code: ErrorCode.config, what: `${where} ${JSON.stringify(spec)} is not a listen address`, where, fix: 'give [host]:port, e.g. :9464 (loopback), 0.0.0.0:9464 (all interfaces) or 127.0.0.1:9464' });
  }
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

export interface KaonMetricsServer {
  /** The sink to pass to createKaonWorker({ metrics }). */
  readonly metrics: KaonMetrics;
  readonly registry: MetricsRegistry;
  /** `http://host:port/metrics` */
  readonly url: string;
  /** Where the Temporal SDK's own exporter listens (loopback; scraped through `url`). */
  readonly sdkUrl: string;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  /** `[host]:port`, e.g. ':9464'. */
  listen: string;
  /** The SDK logger to install with the runtime. Default: DefaultLogger at INFO. */
  logger?: Logger;
}

/**
 * Install the Temporal runtime with its Prometheus exporter on a private loopback port, and serve Kaon's metrics
 * plus the SDK's on `listen` (GET /metrics). Call before any worker or NativeConnection exists in this process:
 * the runtime is installed once per process.
 */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<KaonMetricsServer> {
  const { host, port } = parseListenAddress(opts.listen);
  const sdkPort = await freePort();
  const sdkUrl = `http://127.0.0.1:${sdkPort}/metrics`;
  try {
    Runtime.install({ logger: opts.logger ?? new DefaultLogger('INFO'), telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${sdkPort}` } } } });
  } catch (err) {
    if (!(err instanceof IllegalStateError)) throw err;
    throw new KaonError({
      code: ErrorCode.config,
      what: `cannot serve the Temporal SDK's metrics: ${err.message} (the SDK runtime and its metrics exporter are installed once per process, before the first worker or connection)`,
      fix: 'start the metrics server (startMetricsServer / kaon worker --metrics) before connecting or creating any worker in this process',
    });
  }
  const registry = new MetricsRegistry();
  const metrics = createKaonMetrics(registry);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || (path !== '/metrics' && path !== '/')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('kaon: metrics are at GET /metrics\n');
      return;
    }
    void scrape(registry, sdkUrl).then((body) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new KaonError({ code: ErrorCode.config, what: `cannot listen for metrics on ${host}:${port}: ${err.code ?? err.message}`, where: '--metrics', fix: 'pick a free port (e.g. --metrics :9465), or stop what holds this one' })),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    metrics,
    registry,
    url: `http://${shown}:${bound}/metrics`,
    sdkUrl,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Kaon's families first, then the SDK's exposition as it is (it has its own HELP/TYPE lines, temporal_ names). */
async function scrape(registry: MetricsRegistry, sdkUrl: string): Promise<string> {
  const own = registry.render();
  try {
    const res = await fetch(sdkUrl, { signal: AbortSignal.timeout(5000) });
    const sdk = res.ok ? await res.text() : '';
    return `${own}${sdk && !sdk.endsWith('\n') ? `${sdk}\n` : sdk}`;
  } catch {
    // The SDK exporter starts with the first worker; until then Kaon's own families are the whole scrape.
    return own;
  }
}

/** The Temporal OpenTelemetry wiring of a worker: activity interceptors, the workflow span sink, the bundle's modules. */
export interface WorkerTracing {
  interceptors: NonNullable<WorkerOptions['interceptors']>;
  sinks: NonNullable<WorkerOptions['sinks']>;
  flush(): Promise<void>;
}

/** The workflow interceptor module the bundle needs for traces (a run's span and one per step). */
export function tracingWorkflowModules(): string[] {
  return [require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors')];
}

/** Tracing for a worker when OTEL_EXPORTER_OTLP_ENDPOINT is set (or forced), else undefined. */
export function workerTracing(enabled: boolean = tracingConfigured()): WorkerTracing | undefined {
  if (!enabled) return undefined;
  // Loaded only here: a worker without tracing never loads the OTel SDK.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { startTracing } = require('../observe/tracing') as typeof import('../observe/tracing');
  const otelWorker = require('@temporalio/interceptors-opentelemetry/lib/worker') as typeof import('@temporalio/interceptors-opentelemetry/lib/worker');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const t = startTracing('kaon-worker');
  return {
    interceptors: {
      activity: [(ctx) => ({ inbound: new otelWorker.OpenTelemetryActivityInboundInterceptor(ctx), outbound: new otelWorker.OpenTelemetryActivityOutboundInterceptor(ctx) })],
    },
    sinks: { exporter: otelWorker.makeWorkflowExporter(t.spanProcessor, t.resource) },
    flush: () => t.flush(),
  };
}
