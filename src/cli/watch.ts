// Following a run from the terminal: snapshots (live progress, or Temporal's status when no worker answers),
// live bars in a TTY, plain change lines elsewhere, and the final result.
import { escapeRunState } from './echo';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunHandle, RunStatusInfo } from '../client';
import { ErrorCode, KaonError } from '../definition/errors';
import type { RunState } from '../observe/run-state';
import { diffLines, formatClock, renderBars, renderPlain } from '../observe/terminal';
import { say, type CliIo } from './command';
import { displayStatus, isClosed, runUrl, type Target } from './temporal';
import { kaonClient } from './lazy';

export interface Snapshot {
  info: RunStatusInfo;
  /** Live run state; undefined when the progress query failed or was skipped (see queryError). */
  state?: RunState;
  queryError?: string;
  /** The run's task queue, looked up when the query failed (to say which workers are missing). */
  taskQueue?: string;
  /** The query was not attempted (queryTimeoutMs 0). */
  skipped?: boolean;
}

/** How long the progress query may take: it needs a worker, and without one it would wait. */
export const QUERY_TIMEOUT_MS = 5000;

export async function describeRun(run: RunHandle, namespace: string): Promise<RunStatusInfo> {
  try {
    return await run.status();
  } catch (err) {
    if ((err as { name?: string }).name === 'WorkflowNotFoundError') {
      throw new KaonError({ code: ErrorCode.notFound, what: `no run with id "${run.id}" in namespace ${namespace}`, fix: 'check the id; `kaon list` shows recent runs', cause: err });
    }
    throw err;
  }
}

function queryFailure(err: unknown, timeoutMs: number, timedOut: boolean): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  // At the deadline gRPC reports DEADLINE_EXCEEDED (4) or, for the sibling call, CANCELLED (1): the server
  // waited for a worker to answer the query and none did.
  const code = (e as { code?: unknown }).code;
  if (code === 4 || (timedOut && code === 1)) return `no worker answered within ${timeoutMs / 1000}s`;
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

/** Status plus live progress. The progress query needs a worker; without one it fails after the timeout. */
export async function snapshot(run: RunHandle, namespace: string, queryTimeoutMs = QUERY_TIMEOUT_MS): Promise<Snapshot> {
  const info = await describeRun(run, namespace);
  if (queryTimeoutMs <= 0) return { info, skipped: true };
  const deadline = Date.now() + queryTimeoutMs;
  try {
    const state = await run.client.connection.withDeadline(deadline, () => run.progress());
    return { info, state };
  } catch (err) {
    const timedOut = Date.now() >= deadline - 100;
    const taskQueue = await run.handle.describe().then((d) => d.taskQueue, () => undefined);
    return { info, queryError: queryFailure(err, queryTimeoutMs, timedOut), ...(taskQueue ? { taskQueue } : {}) };
  }
}

export function queryFallbackNote(snap: Snapshot): string {
  const queue = snap.taskQueue ? ` for task queue "${snap.taskQueue}"` : '';
  return `note: live step progress is unavailable (progress query: ${snap.queryError}); is a worker running${queue}? Showing Temporal's status only.`;
}

export interface WatchOptions {
  io: CliIo;
  namespace: string;
  intervalMs?: number;
  queryTimeoutMs?: number;
}

/** After a failed progress query, ask again only this often, so the watch keeps its pace without a worker. */
const QUERY_RETRY_MS = 10_000;

const HIDE_CURSOR = '\u001b[?25l';
const SHOW_CURSOR = '\u001b[?25h';

export function isTty(io: CliIo): boolean {
  return io.stdout.isTTY === true && io.env.TERM !== 'dumb';
}

/**
 * Follow a run until it closes. In a TTY: progress bars redrawn in place. Otherwise: one timestamped plain
 * line per change, never an escape code. Resolves with the last snapshot.
 */
export async function watchRun(run: RunHandle, opts: WatchOptions): Promise<Snapshot> {
  const { io } = opts;
  const out = io.stdout;
  const tty = isTty(io);
  const color = tty && !io.env.NO_COLOR;
  let drawn = 0;
  let prevPlain: string[] = [];
  let prevStatus = '';
  let warned = false;
  let lastFailure = 0;
  if (tty) out.write(HIDE_CURSOR);
  try {
    for (;;) {
      const skip = lastFailure > 0 && Date.now() - lastFailure < QUERY_RETRY_MS;
      let snap = await snapshot(run, opts.namespace, skip ? 0 : opts.queryTimeoutMs);
      // Closed while we skipped: ask once more for the final state (a worker may be back).
      if (skip && isClosed(snap.info)) snap = await snapshot(run, opts.namespace, opts.queryTimeoutMs);
      if (!snap.state && !skip) lastFailure = Date.now();
      const now = Date.now();
      if (snap.state) {
        if (tty) {
          // A pty without a size (script, some CI) reports 0 columns.
          // The bars carry Kaon's own colours; the keys in them are escaped first (echo.ts).
          const text = renderBars(escapeRunState(snap.state), now, (out.columns || 100) - 1, { color, maxRows: Math.max(5, (out.rows || 40) - 4) });
          // Move to the start of the block drawn last time, clear to the end of the screen, draw again.
          out.write(`${drawn > 0 ? `\u001b[${drawn}F\u001b[J` : ''}${text}\n`);
          drawn = text.split('\n').length;
        } else {
          const lines = renderPlain(escapeRunState(snap.state), now);
          for (const l of diffLines(prevPlain, lines)) say(out, `${formatClock(now)} ${l}`);
          prevPlain = lines;
        }
      } else {
        if (!warned && !snap.skipped) {
          say(io.stderr, queryFallbackNote(snap));
          warned = true;
        }
        const status = displayStatus(snap.info);
        if (status !== prevStatus) {
          say(out, `${formatClock(now)} ${snap.info.id} ${status}`);
          prevStatus = status;
          drawn = 0; // bars, if any come back, start below this line
        }
      }
      if (isClosed(snap.info)) return snap;
      await sleep(opts.intervalMs ?? (tty ? 250 : 500), undefined, io.signal ? { signal: io.signal } : {});
    }
  } finally {
    if (tty) out.write(SHOW_CURSOR);
  }
}

/** Print a result: a pipeline may offer a `table` string (printed with its scalar fields); otherwise JSON. */
export function formatResult(result: unknown): string {
  if (result !== null && typeof result === 'object' && !Array.isArray(result) && typeof (result as { table?: unknown }).table === 'string') {
    const r = result as Record<string, unknown>;
    const lines = [String(r.table)];
    for (const [k, v] of Object.entries(r)) {
      if (k !== 'table' && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) lines.push(`${k}: ${v}`);
    }
    return lines.join('\n');
  }
  return JSON.stringify(result, null, 2) ?? String(result);
}

export type Outcome = { ok: true; result: unknown } | { ok: false; status: string; error: string };

/** Wait for the run's result (aborted by io.signal), optionally watching its progress meanwhile. */
export async function awaitOutcome(run: RunHandle, opts: WatchOptions & { watch: boolean }): Promise<Outcome> {
  if (opts.watch) await watchRun(run, opts);
  try {
    const result = opts.io.signal
      ? await run.client.connection.withAbortSignal(opts.io.signal, () => run.result())
      : await run.result();
    return { ok: true, result };
  } catch (err) {
    opts.io.signal?.throwIfAborted();
    if (!(err instanceof kaonClient().RunFailedError)) throw err;
    const info = await describeRun(run, opts.namespace).catch(() => undefined);
    return { ok: false, status: info ? displayStatus(info) : 'failed', error: err.message };
  }
}

/** The end of `kaon run --wait` and `kaon demo`: the result or the failure, the run id and its Web UI link. */
export function reportOutcome(io: CliIo, run: RunHandle, target: Target, outcome: Outcome, json = false): number {
  const url = runUrl(target, run.id);
  if (json) {
    say(io.stdout, JSON.stringify({ id: run.id, ...(url ? { url } : {}), ...(outcome.ok ? { status: 'succeeded', result: outcome.result } : { status: outcome.status, error: outcome.error }) }, null, 2));
    return outcome.ok ? 0 : 1;
  }
  if (outcome.ok) {
    say(io.stdout);
    say(io.stdout, formatResult(outcome.result));
    say(io.stdout);
  } else {
    say(io.stderr, `run ${run.id} ${outcome.status}: ${outcome.error}`);
  }
  say(io.stdout, `run:    ${run.id}`);
  if (url) say(io.stdout, `Web UI: ${url}`);
  return outcome.ok ? 0 : 1;
}

