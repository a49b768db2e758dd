// Whether OpenTelemetry tracing is configured, by the standard OTel variables. Kept apart from ./tracing so
// a thin client can ask without loading the OTel SDK.

/** True when an OTLP endpoint is set and OTEL_SDK_DISABLED is not "true". */
export function tracingConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === 'true') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}
