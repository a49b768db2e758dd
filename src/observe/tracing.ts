// OpenTelemetry tracing for Kaon processes (worker, client, CLI): one tracer provider per process exporting over
// OTLP/HTTP to $OTEL_EXPORTER_OTLP_ENDPOINT. Loaded only when tracing is configured (the client imports it lazily).
import { trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { onTracingFlush } from './otel-env';

export interface Tracing {
  readonly tracer: Tracer;
  readonly resource: Resource;
  /** Receives every span of the process (the worker's workflow span sink feeds it too). */
  readonly spanProcessor: SpanProcessor;
  /** Send the buffered spans now. */
  flush(): Promise<void>;
}

let shared: Tracing | undefined;

/**
 * The process's tracing, started on first use. The exporter reads the standard OTel variables itself
 * (OTEL_EXPORTER_OTLP_ENDPOINT, …_TRACES_ENDPOINT, …_HEADERS); OTEL_SERVICE_NAME names the service.
 */
export function startTracing(defaultServiceName: string, env: NodeJS.ProcessEnv = process.env): Tracing {
  if (shared) return shared;
  const resource = new Resource({ 'service.name': env.OTEL_SERVICE_NAME || defaultServiceName });
  const spanProcessor = new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: 1000 });
  const provider = new BasicTracerProvider({ resource });
  provider.addSpanProcessor(spanProcessor);
  // The interceptors carry the active context across awaits (client start → header): that needs AsyncLocalStorage.
  provider.register({
    contextManager: new AsyncLocalStorageContextManager().enable(),
    propagator: new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  });
  // Spans buffered at exit would be lost: flush them on the way out (a CLI run ends quickly).
  process.once('beforeExit', () => void provider.forceFlush().catch(() => undefined));
  onTracingFlush(() => provider.forceFlush());
  shared = { tracer: trace.getTracer('kaon'), resource, spanProcessor, flush: () => provider.forceFlush() };
  return shared;
}
