/**
 * Many sweep items in one step process: the process half of an ItemSession (runners.ts holds the step half: work
 * dirs, input artifacts, saved artifacts, heartbeats). The program is started like every step process (spawnGroup:
 * own process group, the orphan watcher, the allow-listed env the caller built) with one more pipe, fd
 * $KAON_ITEMS_FD (5), and runs items one after another until that pipe ends.
 *
 * Framing (one JSON object per line on each channel):
 *   runner → program, fd 5:  {"id":3,"key":"score[17]","attempt":1,"input":{…},"inputPaths":{"features":"/tmp/…"}}
 *   program → runner, fd 3:  the usual protocol lines (progress, output, artifact, log, card, metric, model), plus
 *     {"type":"items-ready"}                   the item handler is installed: the program reads items from now on
 *     {"type":"items-none","call":"inputs"}    a one-item script (it asked for its single input): run it per process
 *     {"type":"item-end","id":3,"status":0}    item 3 is done; status reads like an exit code: 0 ok, 65 bad input
 *                                              (not retried), anything else failed (retried); "error" says why
 *   and, just before item-end, the line MARK(3) on stdout and on stderr. The three pipes are not ordered with each
 *   other: the marks say every line the item printed has arrived, so each line is the item's own.
 * Only one item is in flight, so every line between an item's line on fd 5 and its item-end belongs to it. Lines
 * that arrive between items (a background thread) go to the session's log.
 *
 * A process that dies (a crash, os._exit, a signal, the item's timeout, a cancellation) fails the item in flight
 * exactly as runProcess would fail a one-item process (exit 65 not retried, other codes retried, the tail quoted);
 * the next item starts a new process. A program that exits 0 before `items-ready`, or says `items-none`, is a
 * one-item script: run() answers { kind: 'one-item' } and the caller runs that item (and the rest) per process.
 */
import type { Writable } from 'node:stream';
import { z } from 'zod';
import { ErrorCode, KaonError } from '../definition/errors';
import type { StepContext, StepLogger } from './implement';
import {
  EXIT_BAD_INPUT,
  formatTail,
  ITEMS_FD,
  LineSplitter,
  MAX_LOG_LINE,
  MAX_PROTOCOL_LINE,
  parseProtocolLine,
  PROTOCOL_EXPECTS,
  PROTOCOL_FD,
  ProtocolMessage,
  signalError,
  spawnGroup,
  Tail,
  terminateGroup,
  type ArtifactMessage,
  type CardMessage,
  type GroupProcess,
  type ModelMessage,
  type ProcessResult,
  type TailLine,
} from './process';

/** Many sweep items in one step process: opened once per batch call, items run one after another. */
export interface ItemSession {
  /**
   * Run one item. Resolves to its raw output (the caller validates it with the step's output schema), or rejects
   * exactly as the one-process-per-item executor would for that item: a KaonError with retryable=false for bad
   * input / exit 65 / misuse, a retryable error otherwise. If the process dies (crash, kill, timeout of the item),
   * this item rejects (retryable, with the exit code/signal and the stderr tail) and the session restarts a fresh
   * process for the next run() call transparently.
   */
  run(input: unknown, ctx: StepContext): Promise<unknown>;
  /** End the process (graceful, then killed after a grace period); idempotent. */
  close(): Promise<void>;
}

/** The line a program prints on stdout and stderr when item `id` is done (see the framing above). */
export function itemEndMark(id: number): string {
  return `\u001ekaon:item-end:${id}\u001e`;
}
const MARK = /\u001ekaon:item-end:(\d+)\u001e$/;

const ItemsReady = z.object({ type: z.literal('items-ready') });
const ItemsNone = z.object({ type: z.literal('items-none'), call: z.string().optional() });
const ItemEnd = z.object({ type: z.literal('item-end'), id: z.number().int(), status: z.number().int(), error: z.string().optional() });
const SessionMessage = z.discriminatedUnion('type', [...ProtocolMessage.options, ItemsReady, ItemsNone, ItemEnd]);

/** How long the stdout/stderr marks of an ended item are awaited (a script may have closed its fd 1). */
const MARK_WAIT_MS = 2000;

export interface ItemProcessOptions {
  /** Program and arguments (no shell), its complete environment (the caller's allow-listed one) and cwd. */
  argv: readonly string[];
  env: Readonly<Record<string, string>>;
  cwd: string;
  /** How a start failure names the program. */
  label: string;
  /** SIGTERM → SIGKILL grace, and how long close() waits for a clean exit. Default 5000 ms. */
  killGraceMs?: number;
  /** Each (re)start's process group (the live-step record). */
  onSpawn?: (pgid: number) => void;
  /** Lines and messages that arrive while no item runs. */
  log?: StepLogger;
}

/** What one item reports to, like runProcess's options. */
export interface ItemRunOptions {
  /** How the program is named in this item's errors, e.g. `Python step "score" (key score[17], score.py)`. */
  label: string;
  signal?: AbortSignal;
  /** Kill the process and fail the item (retryable) after this many ms. */
  timeoutMs?: number;
  log?: StepLogger;
  onLine?: (line: TailLine) => void;
  onProgress?: (fraction: number | undefined, message: string | undefined) => void;
  /** A throw (an invalid name or value) fails the item, not retried. */
  onMetric?: (name: string, value: number, step: number | undefined) => void;
}

export type ItemOutcome = { kind: 'done'; result: ProcessResult } | { kind: 'one-item'; why: string };

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The item in flight. */
interface Current {
  id: number;
  o: ItemRunOptions;
  started: number;
  tail: Tail;
  malformed: string[];
  unterminated?: string;
  rejected?: KaonError;
  output: unknown;
  hasOutput: boolean;
  artifacts: ArtifactMessage[];
  cards: CardMessage[];
  models: ModelMessage[];
  logBytes: number;
  logLines: number;
  end?: { status: number; error?: string };
  marks: Set<'stdout' | 'stderr'>;
  noHandler?: string;
  wake(): void;
}

interface Running {
  group: GroupProcess;
  items: Writable;
  ready: boolean;
  exit?: Exit;
  exited: Promise<Exit>;
  streamsClosed: Promise<unknown>;
  current?: Current;
  /** Told when the process exits (the item in flight's waiter). */
  onExit?: () => void;
}

/** One step program that runs items one after another, restarted after a death. Not for concurrent run() calls. */
export class ItemProcess {
  private proc: Running | undefined;
  private nextId = 0;
  private busy = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: ItemProcessOptions) {}

  /** Whether a process is running now (for tests and the bench). */
  get pgid(): number | undefined {
    return this.proc && !this.proc.exit ? this.proc.group.pgid : undefined;
  }

  /**
   * Run one item: `item` is sent as its line on fd 5 (with an `id`). Resolves with what the item wrote on exit-0
   * terms, or { kind: 'one-item' }; throws like runProcess otherwise.
   */
  async run(item: Record<string, unknown>, o: ItemRunOptions): Promise<ItemOutcome> {
    if (this.closing) throw new KaonError({ code: ErrorCode.processFailed, what: `${o.label}: the item session is closed`, fix: 'open a new session for more items (this is a bug in the caller)', retryable: true });
    if (this.busy) throw new KaonError({ code: ErrorCode.processFailed, what: `${o.label}: an item session runs one item at a time`, fix: 'await each run() before the next (this is a bug in the caller)', retryable: false });
    if (o.signal?.aborted) throw signalError(o.signal);
    this.busy = true;
    try {
      return await this.runOne(item, o);
    } finally {
      this.busy = false;
    }
  }

  private async runOne(item: Record<string, unknown>, o: ItemRunOptions): Promise<ItemOutcome> {
    const graceMs = this.opts.killGraceMs ?? 5000;
    // A process that died between items (a background thread's crash) is replaced; no item was in flight.
    if (this.proc?.exit) await this.reap(this.proc, undefined);
    const p = this.proc ?? (this.proc = await this.start());
    const id = ++this.nextId;
    let wake: (why: 'end' | 'exit' | 'abort' | 'timeout' | 'none') => void = () => undefined;
    const settled = new Promise<'end' | 'exit' | 'abort' | 'timeout' | 'none'>((resolve) => (wake = resolve));
    let markTimer: NodeJS.Timeout | undefined;
    const cur: Current = {
      id,
      o,
      started: Date.now(),
      tail: new Tail(),
      malformed: [],
      output: undefined,
      hasOutput: false,
      artifacts: [],
      cards: [],
      models: [],
      logBytes: 0,
      logLines: 0,
      marks: new Set(),
      wake: () => {
        if (cur.noHandler !== undefined) return wake('none');
        if (!cur.end) return;
        if (cur.marks.size === 2) return wake('end');
        markTimer ??= setTimeout(() => wake('end'), MARK_WAIT_MS);
      },
    };
    p.current = cur;
    p.onExit = () => wake('exit');
    const timer = o.timeoutMs !== undefined ? setTimeout(() => wake('timeout'), o.timeoutMs) : undefined;
    const onAbort = () => wake('abort');
    o.signal?.addEventListener('abort', onAbort, { once: true });
    p.items.write(`${JSON.stringify({ ...item, id })}\n`);

    let why = await settled;
    p.onExit = undefined;
    if (markTimer) clearTimeout(markTimer);
    if (timer) clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);

    let exit: Exit | undefined;
    if (why === 'abort' || why === 'timeout' || why === 'none') {
      exit = await this.reap(p, terminateGroup(p.group.pgid, why === 'none' ? Math.min(graceMs, 1000) : graceMs));
    } else if (why === 'exit') {
      exit = await this.reap(p, undefined);
      if (cur.end) why = 'end'; // it ended the item, then exited
    }
    p.current = undefined;

    if (why === 'abort' && o.signal) throw signalError(o.signal);
    const durationMs = Date.now() - cur.started;
    const lastLines = formatTail(cur.tail.get());
    const tailText = lastLines ? `; last output:\n${lastLines}` : '; it printed nothing';
    if (why === 'timeout') {
      throw new KaonError({
        code: ErrorCode.timeout,
        what: `${o.label} timed out after ${o.timeoutMs} ms on this item and was killed (the next item starts a new process)${tailText}`,
        fix: 'raise the step timeout, or make the item faster (report progress to see where it spends time)',
        retryable: true,
        details: { exitCode: null, signal: null, tail: cur.tail.get().map((l) => l.line), durationMs },
      });
    }
    if (why === 'none') return { kind: 'one-item', why: `it called ${cur.noHandler || 'a one-item function'} outside an item handler` };
    if (why === 'exit' && !p.ready && exit?.code === 0) return { kind: 'one-item', why: 'it exited 0 without installing an item handler' };

    // The item's "exit": its status when it ended, else the process's own exit.
    const ended = why === 'end' && cur.end !== undefined;
    const code = ended ? cur.end!.status : (exit?.code ?? null);
    const signal = ended ? null : (exit?.signal ?? null);
    const details = { exitCode: code, signal, tail: cur.tail.get().map((l) => l.line), durationMs };
    const restart = ended ? '' : ' (the next item starts a new process)';
    if (cur.unterminated !== undefined && !signal) cur.malformed.push(cur.unterminated);
    const malformedNote = cur.malformed.length ? `${cur.malformed.length} malformed protocol line(s) on fd ${PROTOCOL_FD}, the first: ${cur.malformed[0]}` : '';
    if (cur.rejected && (code === 0 || code === EXIT_BAD_INPUT)) throw cur.rejected;
    if (cur.malformed.length && !signal) {
      const how = code === 0 ? 'ended this item but wrote' : `${ended ? 'failed this item' : `exited with code ${code}`} and wrote`;
      throw new KaonError({
        code: ErrorCode.processFailed,
        what: `${o.label} ${how} ${malformedNote}. ${PROTOCOL_EXPECTS}${code === 0 ? '' : tailText}`,
        fix: `use the helpers (python/kaon_step.py, r/kaon_step.R) rather than writing to fd ${PROTOCOL_FD} yourself, or write exactly that format; this failure is not retried`,
        retryable: false,
        details: { ...details, malformed: cur.malformed },
      });
    }
    if (code === 0) {
      return {
        kind: 'done',
        result: { output: cur.output, hasOutput: cur.hasOutput, artifacts: cur.artifacts, cards: cur.cards, models: cur.models, tail: cur.tail.get(), durationMs, logBytes: cur.logBytes, logLines: cur.logLines },
      };
    }
    const extra = malformedNote ? `; it also wrote ${malformedNote}` : '';
    if (code === EXIT_BAD_INPUT) {
      throw new KaonError({
        code: ErrorCode.badInput,
        what: `${o.label} rejected its input (exit ${EXIT_BAD_INPUT})${extra}${tailText}`,
        fix: 'correct what the message above names (a field of the input, or a misused kaon_step call and its fix); this failure is not retried',
        retryable: false,
        details,
      });
    }
    const how = ended
      ? `failed on this item (${cur.end!.error ? cur.end!.error : `status ${code}`}; exit code ${code} in a one-item run)`
      : signal
        ? `was killed by ${signal} while running this item`
        : `exited with code ${code} while running this item`;
    throw new KaonError({
      code: ErrorCode.processFailed,
      what: `${o.label} ${how}${restart}${extra}${tailText}`,
      fix: signal === 'SIGKILL'
        ? 'SIGKILL from outside Kaon is often the out-of-memory killer: give the worker more memory or process the data in chunks'
        : `see the last lines above; exit ${EXIT_BAD_INPUT} marks bad input (not retried), any other failure is retried by the step's retry policy`,
      retryable: true,
      details,
    });
  }

  /** End the program: its items pipe closes (the helper's loop ends), then SIGTERM/SIGKILL after the grace. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const p = this.proc;
      if (!p) return;
      const graceMs = this.opts.killGraceMs ?? 5000;
      p.items.end();
      const quit = p.exit !== undefined || (await Promise.race([p.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), graceMs).unref())]));
      await this.reap(p, quit ? undefined : terminateGroup(p.group.pgid, graceMs));
    })();
    return this.closing;
  }

  /** Wait for the process to exit (after a kill in progress), clear its group, drain its pipes; forget it. */
  private async reap(p: Running, stopping: Promise<void> | undefined): Promise<Exit> {
    const exit = await p.exited;
    await p.group.reap(stopping, this.opts.killGraceMs ?? 5000, p.streamsClosed);
    if (this.proc === p) this.proc = undefined;
    return exit;
  }

  private async start(): Promise<Running> {
    const o = this.opts;
    const env = { ...o.env, KAON_PROTOCOL_FD: String(PROTOCOL_FD), KAON_ITEMS_FD: String(ITEMS_FD) };
    const group = await spawnGroup({ argv: o.argv, env, cwd: o.cwd, label: o.label, itemsFd: true });
    o.onSpawn?.(group.pgid);
    const { child } = group;
    const items = (child.stdio as unknown as (Writable | null)[])[ITEMS_FD]!;
    items.on('error', () => undefined); // EPIPE after a death: the exit decides
    const p: Running = { group, items, ready: false, exited: group.exited, streamsClosed: Promise.resolve() };
    void group.exited.then((e) => {
      p.exit = e;
      p.onExit?.();
    });
    const idle = o.log;

    const onStd = (stream: 'stdout' | 'stderr', raw: string, dropped: number) => {
      let line = raw;
      const m = MARK.exec(line);
      if (m) {
        line = line.slice(0, m.index);
        const cur = p.current;
        if (cur && Number(m[1]) === cur.id) {
          cur.marks.add(stream);
          if (line) emit(stream, line, dropped);
          cur.wake();
          return;
        }
        if (!line) return;
      }
      emit(stream, line, dropped);
    };
    const emit = (stream: 'stdout' | 'stderr', line: string, dropped: number) => {
      const text = dropped ? `${line}… [${dropped} more bytes of this line dropped]` : line;
      const cur = p.current;
      if (!cur) return void idle?.info(text, { stream });
      cur.logLines++;
      const entry = { stream, line: text };
      cur.tail.add(entry);
      cur.o.log?.info(text, { stream });
      cur.o.onLine?.(entry);
    };
    let protocolLines = 0;
    const onProtocolLine = (line: string, dropped: number, raw: { utf8: boolean; terminated: boolean }) => {
      protocolLines++;
      const parsed = parseProtocolLine(SessionMessage, line, dropped, raw, protocolLines);
      if (parsed.kind === 'empty') return;
      const cur = p.current;
      if (parsed.kind !== 'message') {
        if (!cur) return void idle?.warn(`between items, the step program wrote a malformed protocol line: ${parsed.why}`);
        if (parsed.kind === 'malformed') cur.malformed.push(parsed.why);
        else cur.unterminated = parsed.why;
        return;
      }
      const msg = parsed.msg;
      if (msg.type === 'items-ready') return void (p.ready = true);
      if (!cur) {
        if (msg.type === 'log') idle?.[msg.level === 'warning' ? 'warn' : msg.level](msg.message, { stream: 'protocol' });
        else if (msg.type !== 'progress') idle?.warn(`between items, the step program wrote a "${msg.type}" line, which belongs to no item and was ignored`);
        return;
      }
      switch (msg.type) {
        case 'items-none':
          cur.noHandler = msg.call ?? '';
          cur.wake();
          break;
        case 'item-end':
          if (msg.id !== cur.id) {
            cur.malformed.push(`line ${protocolLines}: the end of item ${msg.id}, while item ${cur.id} runs`);
            break;
          }
          cur.end = { status: msg.status, ...(msg.error !== undefined ? { error: msg.error } : {}) };
          cur.wake();
          break;
        case 'progress':
          cur.o.onProgress?.(msg.fraction ?? undefined, msg.message);
          break;
        case 'output':
          if (cur.hasOutput) cur.malformed.push(`line ${protocolLines}: ${line.slice(0, 200)} (a second output line; an item writes its output exactly once)`);
          cur.output = msg.value;
          cur.hasOutput = true;
          break;
        case 'artifact':
          cur.artifacts.push(msg);
          break;
        case 'card':
          cur.cards.push(msg);
          break;
        case 'model':
          cur.models.push(msg);
          break;
        case 'metric':
          try {
            cur.o.onMetric?.(msg.name, msg.value, msg.step ?? undefined);
          } catch (err) {
            cur.rejected ??= err instanceof KaonError ? err : new KaonError({ code: ErrorCode.badInput, what: String(err), fix: 'log finite numbers under valid names', retryable: false });
          }
          break;
        case 'log':
          cur.o.log?.[msg.level === 'warning' ? 'warn' : msg.level](msg.message, { stream: 'protocol' });
          break;
      }
    };
    const streams: [NodeJS.ReadableStream, LineSplitter, boolean][] = [
      [child.stdout!, new LineSplitter(MAX_LOG_LINE, (l, d) => onStd('stdout', l, d)), true],
      [child.stderr!, new LineSplitter(MAX_LOG_LINE, (l, d) => onStd('stderr', l, d)), true],
      [child.stdio[PROTOCOL_FD] as NodeJS.ReadableStream, new LineSplitter(MAX_PROTOCOL_LINE, onProtocolLine), false],
    ];
    p.streamsClosed = Promise.all(
      streams.map(
        ([stream, split, counted]) =>
          new Promise<void>((resolve) => {
            stream.on('data', (c: Buffer) => {
              if (counted && p.current) p.current.logBytes += c.length;
              split.push(c);
            });
            stream.on('error', () => undefined);
            stream.on('close', () => {
              split.end();
              resolve();
            });
          }),
      ),
    );
    return p;
  }
}
