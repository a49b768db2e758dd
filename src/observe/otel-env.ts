// Whether OpenTelemetry tracing is configured, by the standard OTel variables. Kept apart from ./tracing so
// a thin client can ask without loading the OTel SDK.

/** True when an OTLP endpoint is set and OTEL_SDK_DISABLED is not "true". */
export function tracingConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === 'true') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

let flusher: (() => Promise<void>) | undefined;

/** Called by ./tracing once a tracer provider runs in this process. */
export function onTracingFlush(fn: () => Promise<void>): void {
  flusher = fn;
}

/** Send buffered spans before a process exits on purpose (the CLI's process.exit skips 'beforeExit'). Bounded wait. */
export async function flushTracing(timeoutMs = 5000): Promise<void> {
  if (!flusher) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([flusher().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
}
