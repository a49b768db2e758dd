/**
 * Observation seam — how people see runs: the run state model, its Web UI markdown, terminal rendering.
 *
 * @example
 * const state = await run.progress();
 * process.stdout.write(renderMarkdown(state, Date.now()));
 */
export { renderMarkdown, countByStatus, isTerminal, type RunState, type StepState, type StepStatus, type RunStatus, type FailedItem } from './run-state';
