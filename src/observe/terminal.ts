// Terminal rendering of a run state: a static table, live progress bars (TTY) and plain change lines (logs,
// CI, pipes). Pure functions of (state, now): the CLI owns the clock, the cursor and the output stream.
import { countByStatus, formatMetric, isTerminal, latestMetrics, sweepFraction, sweepSummary, type RunState, type StepState, type StepStatus } from './run-state';

// Single-width glyphs only (no emoji presentation), so column maths holds in every terminal.
export const STATUS_ICON: Readonly<Record<StepStatus, string>> = {
  pending: '·', waiting: '◌', running: '▶', succeeded: '✓', failed: '✗', cached: '↺', skipped: '–', cancelled: '⊘',
};

const COLOR: Partial<Record<StepStatus, string>> = {
  succeeded: '32', cached: '36', failed: '31', cancelled: '33', running: '33', waiting: '35', pending: '2', skipped: '2',
};

export interface BarsOptions {
  /** Wrap icons and bars in ANSI colours. Default false. */
  color?: boolean;
  /** Step rows shown at most; the rest are summarised in one line. Default 30. */
  maxRows?: number;
}

/** 0.4s, 12.3s, 2m05s, 1h02m. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const totalS = Math.floor(s);
  if (totalS < 3600) return `${Math.floor(totalS / 60)}m${String(totalS % 60).padStart(2, '0')}s`;
  return `${Math.floor(totalS / 3600)}h${String(Math.floor((totalS % 3600) / 60)).padStart(2, '0')}m`;
}

/** HH:MM:SS in local time: the prefix of plain progress lines. */
export function formatClock(at: number | Date): string {
  const d = new Date(at);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

/** Strip ANSI escape sequences (for width maths and tests). */
export function stripAnsi(s: string): string {
  return s.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');
}

function truncate(s: string, width: number): string {
  if (width <= 0) return '';
  return s.length <= width ? s : `${s.slice(0, Math.max(0, width - 1))}…`;
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? '';
}

function stepElapsed(s: StepState, now: number): string {
  return s.startedAt === undefined ? '' : formatDuration((s.endedAt ?? now) - s.startedAt);
}

function runElapsed(state: RunState, now: number): string {
  return formatDuration((state.endedAt ?? now) - state.startedAt);
}

function percent(fraction: number): string {
  return `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;
}

function fractionOf(s: StepState): number | undefined {
  if (s.status === 'succeeded' || s.status === 'cached') return 1;
  if (s.sweep) return sweepFraction(s.sweep);
  return s.progress?.fraction;
}

/** What the step is doing or did, beyond its status: progress message, worker note, error, reuse. */
function detail(s: StepState): string {
  if (s.sweep && (s.status === 'running' || s.status === 'succeeded')) return sweepSummary(s.sweep);
  switch (s.status) {
    case 'running': {
      const f = s.progress?.fraction;
      return [f !== undefined ? percent(f) : '', s.progress?.message ?? '', s.note ?? ''].filter(Boolean).join(' ');
    }
    case 'waiting':
      return s.note ?? '';
    case 'failed':
      return s.error ? firstLine(s.error) : '';
    case 'cached':
      return s.reusedFrom ? `${s.reusedFrom.from === 'resume' ? 'reused from' : 'cache of'} ${s.reusedFrom.runId.slice(0, 8)}` : '';
    default:
      return '';
  }
}

/** `loss=0.1234 acc=0.91 (+3 more)`: the last value of the first few metrics a step logged. */
export function metricsSummary(s: StepState, max = 4): string {
  if (!s.metrics?.length) return '';
  const last = latestMetrics(s.metrics);
  const shown = last.slice(0, max).map((m) => `${m.name}=${formatMetric(m.value)}`).join(' ');
  return last.length > max ? `${shown} (+${last.length - max} more)` : shown;
}

/** `ml-demo running · 7 steps: 3 succeeded, 1 running, 3 pending · 12.3s` */
export function renderHeader(state: RunState, now: number): string {
  const counts = Object.entries(countByStatus(state)).map(([k, v]) => `${v} ${k}`).join(', ');
  const steps = `${state.steps.length} step${state.steps.length === 1 ? '' : 's'}${counts ? `: ${counts}` : ''}`;
  return `${state.pipeline} ${state.status} · ${steps} · ${runElapsed(state, now)}`;
}

const KEY_MAX = 48;

/**
 * A static table of the run's steps (for `kaon status`): header line, optional error line, then one row per
 * step with icon and status, attempts, elapsed time and detail. No ANSI codes.
 */
export function renderTable(state: RunState, now: number): string {
  const keyW = Math.min(KEY_MAX, Math.max(4, ...state.steps.map((s) => s.key.length)));
  const row = (cols: string[]) => {
    const [key, status, attempts, time, det] = cols as [string, string, string, string, string];
    return `${truncate(key, keyW).padEnd(keyW)}  ${status.padEnd(11)}  ${attempts.padEnd(8)}  ${time.padEnd(7)}  ${det}`.trimEnd();
  };
  const lines = [renderHeader(state, now)];
  if (state.summary) lines.push(state.summary);
  if (state.error) lines.push(`error: ${firstLine(state.error)}`);
  for (const g of state.gates ?? []) {
    if (g.status === 'waiting') {
      lines.push(`waiting for approval: ${g.gate}${g.timeoutAt ? ` (until ${new Date(g.timeoutAt).toISOString()}, then ${g.onTimeout ?? 'reject'})` : ''} — kaon approve|reject <run> ${g.gate}`);
      if (g.details !== undefined) lines.push(`  details: ${truncate(JSON.stringify(g.details), 400)}`);
    }
    else lines.push(`gate ${g.gate}: ${g.status}${g.timedOut ? ' (timed out)' : ''}${g.by ? ` by ${g.by}` : ''}${g.comment ? ` — ${g.comment}` : ''}`);
  }
  if (state.paused) lines.push(`paused${state.paused.by ? ` by ${state.paused.by}` : ''}${state.paused.note ? ` — ${state.paused.note}` : ''}: no new step starts until kaon unpause <run>`);
  lines.push('', row(['STEP', 'STATUS', 'ATTEMPTS', 'TIME', 'DETAIL']));
  for (const s of state.steps) {
    lines.push(row([s.key, `${STATUS_ICON[s.status]} ${s.status}`, String(s.attempts), stepElapsed(s, now), [detail(s), metricsSummary(s)].filter(Boolean).join(' · ')]));
  }
  if (state.steps.length === 0) lines.push('(no steps yet)');
  if (state.failedItems.length > 0) {
    lines.push('', `failed items (${state.failedItems.length}):`);
    for (const f of state.failedItems.slice(0, 20)) lines.push(`  ${f.key}: ${firstLine(f.error)}`);
    if (state.failedItems.length > 20) lines.push(`  …and ${state.failedItems.length - 20} more`);
  }
  return lines.join('\n');
}

interface Segment {
  text: string;
  color?: string | undefined;
}

/** Join segments, cut to `width` visible characters, colour after cutting so escapes never count or split. */
function fit(segments: Segment[], width: number, color: boolean): string {
  let left = width;
  let out = '';
  for (const seg of segments) {
    if (left <= 0) break;
    const text = seg.text.length > left ? truncate(seg.text, left) : seg.text;
    left -= text.length;
    out += color && seg.color && text ? `\u001b[${seg.color}m${text}\u001b[0m` : text;
  }
  return out.trimEnd();
}

function bar(s: StepState, now: number, width: number): { filled: string; empty: string } {
  const f = fractionOf(s);
  if (s.status === 'running' && f === undefined) {
    // Indeterminate: a short block sweeping across, driven by the caller's clock.
    const span = Math.min(3, width);
    const pos = Math.floor(now / 250) % Math.max(1, width - span + 1);
    return { filled: '', empty: `${'░'.repeat(pos)}${'▒'.repeat(span)}${'░'.repeat(width - span - pos)}` };
  }
  if (s.status === 'pending' || s.status === 'waiting' || (s.status === 'skipped' && f === undefined)) {
    return { filled: '', empty: ' '.repeat(width) };
  }
  const n = Math.round(Math.min(1, Math.max(0, f ?? 0)) * width);
  return { filled: '█'.repeat(n), empty: '░'.repeat(width - n) };
}

/** Which steps get a row when there are more than `maxRows`: unfinished and failed first, then the latest. */
function visibleSteps(steps: readonly StepState[], maxRows: number): { shown: StepState[]; hidden: StepState[] } {
  if (steps.length <= maxRows) return { shown: [...steps], hidden: [] };
  const keep = new Set<StepState>();
  for (const s of steps) if (keep.size < maxRows && (!isTerminal(s.status) || s.status === 'failed')) keep.add(s);
  for (let i = steps.length - 1; i >= 0 && keep.size < maxRows; i--) keep.add(steps[i]!);
  return { shown: steps.filter((s) => keep.has(s)), hidden: steps.filter((s) => !keep.has(s)) };
}

/**
 * Live progress bars, one line per step, each at most `width` characters:
 * `▶ trainModel[knn]  [████████░░░░░░░░░░░░]  40%  1.2s  epoch 4/10`.
 * The first line is the run header; retries show as `attempt N`.
 */
export function renderBars(state: RunState, now: number, width: number, opts: BarsOptions = {}): string {
  const color = opts.color ?? false;
  const w = Math.max(20, width);
  const { shown, hidden } = visibleSteps(state.steps, Math.max(1, opts.maxRows ?? 30));
  const keyW = Math.min(Math.max(8, ...shown.map((s) => s.key.length)), Math.max(8, Math.floor(w / 3)));
  const barW = Math.max(10, Math.min(30, w - keyW - 45)); // leaves ~25 columns for the message
  const lines = [fit([{ text: renderHeader(state, now) }], w, color)];
  if (state.error) lines.push(fit([{ text: `error: ${firstLine(state.error)}`, color: '31' }], w, color));
  for (const s of shown) {
    const b = bar(s, now, barW);
    const f = fractionOf(s);
    const pct = s.status === 'pending' || s.status === 'waiting' || f === undefined ? '' : percent(f);
    const note =
      s.status === 'running'
        ? [s.progress?.message, s.note].filter(Boolean).join(' ')
        : s.status === 'pending' || s.status === 'succeeded' ? '' : detail(s) || s.status;
    const extra = [s.attempts > 1 ? `attempt ${s.attempts}` : '', note].filter(Boolean).join('  ');
    lines.push(
      fit(
        [
          { text: `${STATUS_ICON[s.status]} `, color: COLOR[s.status] },
          { text: `${truncate(s.key, keyW).padEnd(keyW)} [` },
          { text: b.filled, color: COLOR[s.status] },
          { text: b.empty, color: '2' },
          { text: `] ${pct.padStart(4)} ${stepElapsed(s, now).padStart(7)}${extra ? `  ${extra}` : ''}` },
        ],
        w,
        color,
      ),
    );
  }
  if (hidden.length > 0) {
    const counts = new Map<StepStatus, number>();
    for (const s of hidden) counts.set(s.status, (counts.get(s.status) ?? 0) + 1);
    const what = [...counts].map(([k, v]) => `${v} ${k}`).join(', ');
    lines.push(fit([{ text: `… ${hidden.length} more step${hidden.length === 1 ? '' : 's'} (${what})`, color: '2' }], w, color));
  }
  return lines.join('\n');
}

/**
 * One plain line per step describing its state, stable while nothing changes (no ticking clock), so
 * `diffLines` of two snapshots yields exactly the changes: `train[US] running 40% epoch 4/10`.
 * The run's own line comes first while it runs and last once it has ended.
 */
export function renderPlain(state: RunState, now: number): string[] {
  const open = state.status === 'running' || state.status === 'waiting';
  const lines: string[] = [];
  if (open) lines.push(`${state.pipeline} ${state.status}`);
  for (const s of state.steps) {
    const tries = (n: number) => `${n} attempt${n === 1 ? '' : 's'}`;
    switch (s.status) {
      case 'running': {
        const d = detail(s);
        lines.push(`${s.key} running${d ? ` ${d}` : ''}${s.attempts > 1 ? ` (attempt ${s.attempts})` : ''}`);
        break;
      }
      case 'waiting':
        lines.push(s.note?.startsWith('waiting') ? `${s.key} ${s.note}` : `${s.key} waiting${s.note ? ` (${s.note})` : ''}`);
        break;
      case 'succeeded':
        lines.push(`${s.key} succeeded in ${stepElapsed(s, now) || '0.0s'}${s.attempts > 1 ? ` after ${tries(s.attempts)}` : ''}`);
        break;
      case 'failed':
        lines.push(`${s.key} failed after ${tries(s.attempts)}${s.error ? `: ${firstLine(s.error)}` : ''}`);
        break;
      case 'cached': {
        const d = detail(s);
        lines.push(`${s.key} cached${d ? ` (${d})` : ''}`);
        break;
      }
      default:
        lines.push(`${s.key} ${s.status}`);
    }
  }
  if (!open) lines.push(`${state.pipeline} ${state.status} in ${runElapsed(state, now)}${state.error ? `: ${firstLine(state.error)}` : ''}`);
  return lines;
}

/** The lines of `next` that were not in `prev`, in `next`'s order: what changed between two snapshots. */
export function diffLines(prev: readonly string[], next: readonly string[]): string[] {
  const seen = new Set(prev);
  return next.filter((l) => !seen.has(l));
}
