// Run state: a small, serialisable record of a run's steps. Pure; runs in the workflow sandbox and on clients.
import type { ArtifactRef } from '../definition/artifact-ref';

export type StepStatus = 'pending' | 'waiting' | 'running' | 'succeeded' | 'failed' | 'cached' | 'skipped' | 'cancelled';
export type RunStatus = 'running' | 'waiting' | 'paused' | 'succeeded' | 'failed' | 'cancelled';

export interface StepState {
  key: string;
  step: string;
  status: StepStatus;
  attempts: number;
  queue?: string;
  branch?: string;
  startedAt?: number;
  endedAt?: number;
  error?: string;
  /** Set when a cached or resumed output was reused instead of running the step. */
  reusedFrom?: { from: 'cache' | 'resume'; runId: string };
  /** Live progress, filled from heartbeats by the client; `url` is a page to watch the step on (a Spark step's Spark UI). */
  progress?: { fraction?: number; message?: string; url?: string };
  /** Filled by the client from pending-activity info: no worker polls the queue. */
  note?: string;
  /** A k.map sweep: one entry for all its items. */
  sweep?: SweepCounts;
  /** The k.foreach this step ran in (an index into RunState.foreach), so a board can draw the foreach as one node. */
  foreach?: number;
  /** Cards (markdown + images) the step published with ctx.card / kaon_step.card: card JSON artifacts. */
  cards?: ArtifactRef[];
  /** Metrics the step logged (ctx.metrics.log, kaon_step.log_metric), oldest first: at most the latest 1,000. */
  metrics?: Array<{ name: string; value: number; step?: number }>;
}

/** The last value of each metric of a step, in the order the names first appeared: `loss=0.12 (step 9)`. */
export function latestMetrics(metrics: readonly { name: string; value: number; step?: number }[]): { name: string; value: number; step?: number }[] {
  const last = new Map<string, { name: string; value: number; step?: number }>();
  for (const m of metrics) {
    last.delete(m.name);
    last.set(m.name, m);
  }
  const order = [...new Set(metrics.map((m) => m.name))];
  return order.map((n) => last.get(n)!);
}

/** A number as a metric reads best: 4 significant digits, integers as they are. */
export function formatMetric(v: number): string {
  return Number.isInteger(v) ? String(v) : Math.abs(v) >= 1e-3 && Math.abs(v) < 1e6 ? String(Number(v.toPrecision(4))) : v.toExponential(3);
}

/** One k.foreach of a run: how many items it has, so its progress is known before every item started. */
export interface ForeachState {
  /** Index in RunState.foreach. */
  id: number;
  total: number;
  /** The foreach it is nested in, if any. */
  parent?: number;
}

/** What a card artifact (media type CARD_MEDIA_TYPE) holds. Images are artifacts too; markdown names them by `name`. */
export interface CardDoc {
  kind: 'kaon.card';
  title: string;
  markdown: string;
  images: { name: string; ref: ArtifactRef }[];
}

export const CARD_MEDIA_TYPE = 'application/vnd.kaon.card+json';

export interface SweepCounts {
  total: number;
  running: number;
  succeeded: number;
  failed: number;
  /** Counted in succeeded too. */
  cached: number;
  /** Of cached: reused from the earlier run by a resume. */
  resumed?: number;
  notRun: number;
  /** Items per second. */
  rate: number;
}

export interface FailedItem {
  key: string;
  error: string;
}

/** A run that continues-as-new: a compact summary of its earlier executions (their detail is in their histories). */
export interface LoopSummary {
  /** This execution's number: 1 for the first. */
  execution: number;
  firstStartedAt: number;
  /** Wall time of the earlier executions together. */
  priorMs: number;
  /** The latest earlier executions. */
  last: { execution: number; runId: string; startedAt: number; endedAt: number; steps: number; failed: number }[];
}

/** An approval gate: waiting, then who decided, when and why. */
export interface GateState {
  gate: string;
  status: 'waiting' | 'approved' | 'rejected';
  requestedAt: number;
  /** When a waiting gate times out, and what it then decides. */
  timeoutAt?: number;
  onTimeout?: 'approve' | 'reject';
  details?: unknown;
  decidedAt?: number;
  by?: string;
  comment?: string;
  timedOut?: boolean;
}

export interface RunState {
  pipeline: string;
  /** A line the pipeline keeps current (k.summary): where a loop is, its champion… */
  summary?: string;
  loop?: LoopSummary;
  gates?: GateState[];
  /** Set while the run is paused: no new step starts. */
  paused?: { at: number; by?: string; note?: string };
  /** The latest value of each typed message the run received. */
  messages?: Record<string, unknown>;
  status: RunStatus;
  startedAt: number;
  endedAt?: number;
  steps: StepState[];
  /** The run's k.foreach calls, in start order (steps point at them with StepState.foreach). */
  foreach?: ForeachState[];
  failedItems: FailedItem[];
  error?: string;
}

/** `3000/10000 done · 12 failed · 40 cached · 350/s` */
export function sweepSummary(w: SweepCounts): string {
  const done = w.succeeded + w.failed;
  return [`${done}/${w.total || '?'} done`, w.running ? `${w.running} running` : '', w.failed ? `${w.failed} failed` : '', w.resumed ? `${w.resumed} reused` : '', w.cached - (w.resumed ?? 0) > 0 ? `${w.cached - (w.resumed ?? 0)} cached` : '', w.notRun ? `${w.notRun} not run` : '', w.rate ? `${w.rate.toFixed(0)}/s` : '']
    .filter(Boolean)
    .join(' · ');
}

/** How far a sweep is, 0..1 (items done or given up over the total). */
export function sweepFraction(w: SweepCounts): number | undefined {
  return w.total > 0 ? Math.min(1, (w.succeeded + w.failed + w.notRun) / w.total) : undefined;
}

export function isTerminal(s: StepStatus): boolean {
  return s === 'succeeded' || s === 'failed' || s === 'cached' || s === 'skipped' || s === 'cancelled';
}

export function countByStatus(state: RunState): Partial<Record<StepStatus, number>> {
  const counts: Partial<Record<StepStatus, number>> = {};
  for (const s of state.steps) counts[s.status] = (counts[s.status] ?? 0) + 1;
  return counts;
}

const ICON: Record<StepStatus, string> = {
  pending: '·', waiting: '⏸', running: '▶', succeeded: '✓', failed: '✗', cached: '↺', skipped: '–', cancelled: '⊘',
};

function seconds(s: StepState, now: number): string {
  if (s.startedAt === undefined) return '';
  const end = s.endedAt ?? now;
  return `${((end - s.startedAt) / 1000).toFixed(1)}s`;
}

const MAX_ROWS = 40;

/**
 * Markdown for the Temporal Web UI (setCurrentDetails). Bounded in size: a 25k-item foreach shows the
 * unfinished and failed steps first, then a count of the rest.
 */
export function renderMarkdown(state: RunState, now: number): string {
  const counts = countByStatus(state);
  const summary = Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ');
  const lines = [`**${state.pipeline}** — ${state.status}${summary ? ` (${summary})` : ''}`, ''];
  for (const g of state.gates ?? []) {
    if (g.status === 'waiting') lines.push(`⏸ **waiting for approval: ${g.gate}**${g.timeoutAt ? ` (until ${new Date(g.timeoutAt).toISOString()}, then ${g.onTimeout ?? 'reject'})` : ''} — \`kaon approve <run> ${g.gate}\` or \`kaon reject\``, '');
    else lines.push(`${g.status === 'approved' ? '✓' : '✗'} gate ${g.gate} ${g.status}${g.timedOut ? ' (timed out)' : ''}${g.by ? ` by ${g.by}` : ''}${g.comment ? `: ${g.comment}` : ''}`, '');
  }
  if (state.paused) lines.push(`⏸ **paused**${state.paused.by ? ` by ${state.paused.by}` : ''}${state.paused.note ? `: ${state.paused.note}` : ''} — no new step starts until \`kaon unpause\``, '');
  if (state.summary) lines.push(state.summary, '');
  if (state.loop) lines.push(`execution ${state.loop.execution} of a continuing run, ${((state.loop.priorMs + now - state.startedAt) / 1000).toFixed(0)}s in total since ${new Date(state.loop.firstStartedAt).toISOString()}`, '');
  if (state.error) lines.push(`> ${state.error.split('\n')[0]}`, '');
  const ordered = [
    ...state.steps.filter((s) => !isTerminal(s.status) || s.status === 'failed'),
    ...state.steps.filter((s) => isTerminal(s.status) && s.status !== 'failed'),
  ];
  lines.push('| step | status | attempts | time |', '|---|---|---|---|');
  for (const s of ordered.slice(0, MAX_ROWS)) {
    const reused = s.reusedFrom ? ` (${s.reusedFrom.from === 'resume' ? 'reused from' : 'cache of'} ${s.reusedFrom.runId.slice(0, 8)})` : '';
    const sweep = s.sweep ? ` — sweep: ${sweepSummary(s.sweep)}` : '';
    lines.push(`| \`${s.key}\` | ${ICON[s.status]} ${s.status}${reused}${sweep} | ${s.attempts} | ${seconds(s, now)} |`);
  }
  if (ordered.length > MAX_ROWS) lines.push(``, `…and ${ordered.length - MAX_ROWS} more steps.`);
  if (state.failedItems.length > 0) {
    lines.push('', `**Failed items (${state.failedItems.length})**`);
    for (const f of state.failedItems.slice(0, 20)) lines.push(`- \`${f.key}\`: ${f.error.split('\n')[0]}`);
  }
  return lines.join('\n');
}
