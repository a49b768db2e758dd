/**
 * Observation seam — how people see runs: the run state model, its Web UI markdown, terminal rendering.
 *
 * @example
 * const state = await run.progress();
 * process.stdout.write(renderMarkdown(state, Date.now()));   // Web UI details
 * process.stdout.write(renderBars(state, Date.now(), 80));     // a terminal
 *
 * // Kaon's metrics: a registry, the sink steps report to, Prometheus text
 * const metrics = createKaonMetrics();
 * process.stdout.write(metrics.registry.render());
 */
export { renderMarkdown, countByStatus, isTerminal, latestMetrics, formatMetric, type RunState, type StepState, type StepStatus, type RunStatus, type FailedItem } from './run-state';
export {
  renderTable,
  renderBars,
  renderPlain,
  renderHeader,
  metricsSummary,
  diffLines,
  formatDuration,
  formatClock,
  stripAnsi,
  STATUS_ICON,
  type BarsOptions,
} from './terminal';
export {
  MetricsRegistry,
  createKaonMetrics,
  parsePrometheusText,
  STEP_DURATION_BUCKETS,
  type KaonMetrics,
  type StepOutcome,
  type Labels,
  type ParsedSample,
} from './metrics';
export { tracingConfigured } from './otel-env';
