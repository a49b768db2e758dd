/**
 * Observation seam — how people see runs: the run state model, its Web UI markdown, terminal rendering.
 *
 * @example
 * const state = await run.progress();
 * process.stdout.write(renderMarkdown(state, Date.now()));   // Web UI details
 * process.stdout.write(renderBars(state, Date.now(), 80));     // a terminal
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
