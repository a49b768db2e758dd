/**
 * Run a step's program as a child process: argv only (never a shell), its own process group, streamed logs with a
 * bounded tail, a JSON-lines protocol on fd 3, and failures classified for Temporal's retry policy.
 *
 * Exit code contract (what a step program promises Kaon):
 *   0                 success; the output is the last `{"type":"output"}` protocol line (if any).
 *   65 (EX_DATAERR)   bad input: the step's input can never succeed → non-retryable KaonError (badInput).
 *   any other code    failure → retryable KaonError (processFailed); Temporal retries per the step's policy.
 *   killed by signal  (not by Kaon) e.g. the OOM killer → retryable, like other failures.
 * Kaon's own decisions: timeout → retryable KaonError (timeout); cancellation → the AbortSignal's reason is
 * rethrown (in an activity it is Temporal's CancelledFailure); a program that cannot start (ENOENT, EACCES) →
 * non-retryable KaonError (processFailed). A program that writes a malformed protocol line (not UTF-8, not a JSON
 * object, an unknown type or bad field, a second output, over 1 MiB) fails non-retryably whatever its exit code,
 * unless it was killed by a signal (a kill can cut a line short): the reader never trusts the helper, since a
 * script may write the fd itself, and retrying the same bytes cannot help. The error quotes PROTOCOL_EXPECTS.
 *
 * Protocol (one UTF-8 JSON object per line on fd $KAON_PROTOCOL_FD, so user prints never collide with it):
 *   {"type":"progress","fraction":0.4,"message":"epoch 4/10"}
 *   {"type":"output","value":{...}}                       (at most once)
 *   {"type":"artifact","path":"model.pkl","name":"model","mediaType":"application/octet-stream"}
 *   {"type":"log","level":"info","message":"..."}
 *   {"type":"card","title":"Model card US","markdown":"...","images":["plot.png"]}   (stored when the step succeeds)
 *   {"type":"metric","name":"loss","value":0.12,"step":3}               (step optional)
 *   {"type":"model","name":"recommender-US","artifact":<an ArtifactRef or {"$artifact": name}>,"description":"…","tags":{…}}
 * A program that runs many items (a sweep's batch, kaon_step.run_items) adds a few lines: see item-session.ts.
 */
import { isUtf8 } from 'node:buffer';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ErrorCode, KaonError } from '../definition/errors';
import type { StepLogger } from './implement';

/** The exit code a step program uses to say "my input is bad; do not retry" (sysexits.h EX_DATAERR). */
export const EXIT_BAD_INPUT = 65;
/** The fd the child writes protocol lines to; also passed as $KAON_PROTOCOL_FD. */
export const PROTOCOL_FD = 3;

const ProgressMessage = z.object({
  type: z.literal('progress'),
  fraction: z.number().min(0).max(1).nullable().optional(),
  message: z.string().optional(),
});
const OutputMessage = z.object({ type: z.literal('output'), value: z.unknown() });
const ArtifactMessage = z.object({
  type: z.literal('artifact'),
  path: z.string().min(1),
  name: z.string().min(1).optional(),
  mediaType: z.string().min(1).optional(),
});
const LogMessage = z.object({
  type: z.literal('log'),
  level: z.enum(['debug', 'info', 'warn', 'warning', 'error']).default('info'),
  message: z.string(),
});
const CardMessage = z.object({
  type: z.literal('card'),
  title: z.string(),
  markdown: z.string(),
  images: z.array(z.string().min(1)).default([]),
});
const MetricMessage = z.object({ type: z.literal('metric'), name: z.string(), value: z.number(), step: z.number().int().nullable().optional() });
const ModelMessage = z.object({
  type: z.literal('model'),
  name: z.string(),
  artifact: z.unknown(),
  description: z.string().optional(),
  tags: z.record(z.string(), z.string()).optional(),
});
export const ProtocolMessage = z.discriminatedUnion('type', [ProgressMessage, OutputMessage, ArtifactMessage, LogMessage, CardMessage, MetricMessage, ModelMessage]);
export type CardMessage = z.infer<typeof CardMessage>;
export type ModelMessage = z.infer<typeof ModelMessage>;
export type ProtocolMessage = z.infer<typeof ProtocolMessage>;
export type ArtifactMessage = z.infer<typeof ArtifactMessage>;

export interface TailLine {
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface RunProcessOptions {
  /** Program and arguments, passed to execve as-is: no shell, no globbing, no `$VAR` expansion. */
  argv: readonly string[];
  /** The child's complete environment. Default: the worker's own. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the process group and fail with a retryable timeout after this many ms. */
  timeoutMs?: number;
  /** Abort → kill the process group, then rethrow `signal.reason`. */
  signal?: AbortSignal;
  /** SIGTERM → SIGKILL grace period for the process group. Default 5000 ms. */
  killGraceMs?: number;
  /** Receives each stdout/stderr line (info) and protocol `log` lines (their level). */
  log?: StepLogger;
  /** Called for each protocol metric line; a throw (an invalid name or value) fails the step, not retried. */
  onMetric?: (name: string, value: number, step: number | undefined) => void;
  /** Called for each protocol progress line. */
  onProgress?: (fraction: number | undefined, message: string | undefined) => void;
  /** Called after each stdout/stderr line is added to the tail (for heartbeats carrying the tail). */
  onLine?: (line: TailLine) => void;
  /** How the program is named in error messages, e.g. `step "train" (train[US])`. */
  label?: string;
  /** Bounds of the kept tail. Default 50 lines / 16 KiB. */
  tailLines?: number;
  tailBytes?: number;
  /**
   * Also read protocol lines appended to this file (for programs whose launcher closes fd 3, like a Spark driver
   * under spark-submit's JVM). Polled while the program runs and read to the end after it exits.
   */
  protocolFile?: string;
  /** Called with the process group id (the leader's pid) once the program runs (the sweep's record of it). */
  onSpawn?: (pgid: number) => void;
}

export interface ProcessResult {
  /** The value of the `output` protocol line; `hasOutput` tells "no line" from an explicit null. */
  output: unknown;
  hasOutput: boolean;
  artifacts: ArtifactMessage[];
  cards: CardMessage[];
  /** Model registrations asked for (`model` lines), resolved by the runner once artifacts are saved. */
  models: ModelMessage[];
  /** The last stdout/stderr lines, oldest first. */
  tail: TailLine[];
  durationMs: number;
  /** Bytes and lines seen on stdout + stderr (the logs themselves are never kept whole). */
  logBytes: number;
  logLines: number;
}

const MAX_PROTOCOL_LINE_KIB = 1024;
/** What the protocol fd accepts, quoted in every protocol error. */
export const PROTOCOL_EXPECTS =
  'The protocol is one UTF-8 JSON object per line, each with a "type": progress {fraction: 0..1 or null, message?}, ' +
  'output {value} (exactly once), artifact {path, name?, mediaType?}, log {level: debug|info|warn|error, message}, ' +
  'card {title, markdown, images?}, metric {name, value: a finite number, step?: an integer}, model {name, artifact, description?, tags?}; ' +
  `lines up to ${MAX_PROTOCOL_LINE_KIB} KiB`;

/** Longest stdout/stderr line kept; the rest of a longer line is counted and dropped. */
export const MAX_LOG_LINE = 8 * 1024;
/** Longest protocol line (an output value beyond 256 KiB is refused later anyway). */
export const MAX_PROTOCOL_LINE = MAX_PROTOCOL_LINE_KIB * 1024;
/** Lines of the tail quoted in failure messages. */
const MESSAGE_TAIL_LINES = 20;
const MESSAGE_TAIL_BYTES = 4 * 1024;

/** The fd of the watch pipe in the wrapper: the worker holds the other end, so EOF on it means the worker is gone. */
const WATCH_FD = 4;

/**
 * Runs the program in the wrapper's place (exec: same pid, so exit code and signal are the program's own) after
 * starting a watcher in the same process group. The watcher blocks reading fd 4, whose other end only the worker
 * holds; when the worker dies — kill -9 included, where no exit hook runs — the read returns EOF and the watcher
 * SIGKILLs the whole group, however silent the program is. The program does not inherit fd 4.
 */
const WRAPPER = `( exec 1>/dev/null 2>&1 3>&-; read -r _ <&${WATCH_FD}; kill -KILL 0 ) &
exec "$@" ${WATCH_FD}<&-`;

/** The fd a multi-item session writes item lines to ($KAON_ITEMS_FD; see item-session.ts). */
export const ITEMS_FD = 5;
/** WRAPPER for a session: the watcher does not hold the items pipe either. */
const ITEMS_WRAPPER = WRAPPER.replace('3>&-;', `3>&- ${ITEMS_FD}<&-;`);

/**
 * Resolve argv[0] the way execvp would (a bare name on the child's PATH, anything with a slash against cwd), so a
 * missing or non-executable program is reported as such, not as the wrapper's exit 127.
 */
function resolveProgram(program: string, env: NodeJS.ProcessEnv, cwd: string | undefined): { path: string } | { code: 'ENOENT' | 'EACCES' } {
  const candidates = program.includes('/') ? [path.resolve(cwd ?? process.cwd(), program)] : (env.PATH ?? '').split(path.delimiter).filter(Boolean).map((d) => path.join(path.resolve(cwd ?? process.cwd(), d), program));
  let denied = false;
  for (const c of candidates) {
    let isFile = false;
    try {
      isFile = statSync(c).isFile();
    } catch {
      continue;
    }
    if (!isFile) {
      denied = true;
      continue;
    }
    try {
      accessSync(c, fsConstants.X_OK);
      return { path: c };
    } catch {
      denied = true;
    }
  }
  return { code: denied ? 'EACCES' : 'ENOENT' };
}

/** Process groups still alive, killed if the worker itself exits, so no step outlives its worker. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function trackGroup(pid: number): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const g of liveGroups) killGroup(g, 'SIGKILL');
    });
  }
  liveGroups.add(pid);
}

function killGroup(pgid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

/**
 * Whether any live (non-zombie) process is left in the group. kill(-pgid, 0) alone also answers yes for zombies
 * an init process has not reaped yet (slow reapers are common in containers), so on Linux look at /proc.
 */
function groupAlive(pgid: number): boolean {
  if (!killGroup(pgid, 0 as unknown as NodeJS.Signals)) return false;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${e}/stat`, 'utf8');
    } catch {
      continue;
    }
    // "pid (comm) state ppid pgrp …" — comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') return true;
  }
  return false;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * SIGTERM the group, wait until it is empty or the grace period ends, then SIGKILL it. Resolves once the group is
 * gone (grandchildren that ignore SIGTERM included).
 */
export async function terminateGroup(pgid: number, graceMs = 5000): Promise<void> {
  if (!killGroup(pgid, 'SIGTERM')) return;
  const deadline = Date.now() + graceMs;
  // Most groups are gone within a few ms of SIGTERM (the wrapper's watcher always is): look early, then every 25 ms.
  for (let wait = 2; Date.now() < deadline; wait = Math.min(wait * 2, 25)) {
    await sleep(wait);
    if (!groupAlive(pgid)) return;
  }
  killGroup(pgid, 'SIGKILL');
  for (let i = 0; i < 200 && groupAlive(pgid); i++) await sleep(10);
}

/** Splits a byte stream into lines without ever holding more than `max` bytes of one line. */
export class LineSplitter {
  private parts: Buffer[] = [];
  private held = 0;
  private dropped = 0;

  constructor(
    private readonly max: number,
    private readonly emit: (line: string, droppedBytes: number, raw: { utf8: boolean; terminated: boolean }) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      this.keep(chunk.subarray(start, end));
      if (nl === -1) return;
      this.flush(true);
      start = nl + 1;
    }
  }

  end(): void {
    if (this.held > 0 || this.dropped > 0) this.flush(false);
  }

  private keep(bytes: Buffer): void {
    const room = this.max - this.held;
    if (bytes.length <= room) {
      if (bytes.length) this.parts.push(Buffer.from(bytes)); // copy: do not pin the whole chunk
      this.held += bytes.length;
    } else {
      if (room > 0) this.parts.push(Buffer.from(bytes.subarray(0, room)));
      this.held += Math.max(room, 0);
      this.dropped += bytes.length - Math.max(room, 0);
    }
  }

  private flush(terminated: boolean): void {
    const bytes = Buffer.concat(this.parts, this.held);
    // A line cut at `max` may end inside a multi-byte character: only a whole line is judged.
    const utf8 = this.dropped > 0 || isUtf8(bytes);
    let line = bytes.toString('utf8');
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const dropped = this.dropped;
    this.parts = [];
    this.held = 0;
    this.dropped = 0;
    this.emit(line, dropped, { utf8, terminated });
  }
}

/** The last N lines / B bytes of a stream of lines. */
export class Tail {
  private lines: TailLine[] = [];
  private bytes = 0;
  constructor(
    private readonly maxLines = 50,
    private readonly maxBytes = 16 * 1024,
  ) {}

  add(l: TailLine): void {
    const line = l.line.length > this.maxBytes ? `${l.line.slice(0, this.maxBytes)}…` : l.line;
    this.lines.push({ stream: l.stream, line });
    this.bytes += Buffer.byteLength(line);
    while (this.lines.length > this.maxLines || (this.bytes > this.maxBytes && this.lines.length > 1)) {
      this.bytes -= Buffer.byteLength(this.lines.shift()!.line);
    }
  }

  get(): TailLine[] {
    return [...this.lines];
  }

  /** Bytes held (for tests and metrics). */
  get size(): number {
    return this.bytes;
  }
}

/** The last lines of a tail as text for an error message. */
export function formatTail(tail: readonly TailLine[], maxLines = MESSAGE_TAIL_LINES, maxBytes = MESSAGE_TAIL_BYTES): string {
  const picked: string[] = [];
  let bytes = 0;
  for (let i = tail.length - 1; i >= 0 && picked.length < maxLines; i--) {
    const line = tail[i]!.line;
    bytes += Buffer.byteLength(line) + 1;
    if (bytes > maxBytes && picked.length > 0) break;
    picked.unshift(line);
  }
  return picked.join('\n');
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/** A protocol line as quoted in an error: cut short, control characters and undecodable bytes escaped. */
function excerpt(line: string, n: number): string {
  return truncate(line, n).replace(/[\u0000-\u001f\u007f-\u009f\ufffd]/g, (c) => (c === '\ufffd' ? '\\ufffd' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

export function signalError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error(typeof r === 'string' ? r : 'the step was cancelled');
  e.name = 'AbortError';
  return e;
}

function cannotStart(label: string, opts: { argv: readonly string[]; cwd?: string }, err: unknown): KaonError {
  const e = err as NodeJS.ErrnoException;
  const notFound = e.code === 'ENOENT';
  return new KaonError({
    code: ErrorCode.processFailed,
    what: `${label} could not start: ${notFound ? `${opts.argv[0]} was not found${opts.cwd ? ` (cwd ${opts.cwd})` : ''}` : e.message}`,
    fix: notFound
      ? 'check argv[0]: a bare name is looked up on PATH, a relative path is resolved against the project root; install the program on the worker'
      : 'check that argv[0] is an executable file (chmod +x) and the worker may run it',
    retryable: false,
    cause: err,
  });
}

/** One protocol line, judged: a message, nothing (a blank line), or why it is malformed. */
export type ParsedProtocolLine<M> =
  | { kind: 'empty' }
  | { kind: 'message'; msg: M }
  | { kind: 'malformed'; why: string }
  /** Not JSON and without a final newline: the last line of a program that died mid-write, judged with the exit. */
  | { kind: 'unterminated'; why: string };

/**
 * Check one protocol line (line `n` of the fd) against `schema`. The reader never trusts the helper: a script may
 * write the fd itself, so every line is checked here, and `why` quotes it.
 */
export function parseProtocolLine<M>(schema: z.ZodType<M>, line: string, dropped: number, raw: { utf8: boolean; terminated: boolean }, n: number): ParsedProtocolLine<M> {
  if (!line.trim() && !dropped) return { kind: 'empty' };
  const at = `line ${n}`;
  const ex = excerpt(line, 200);
  if (dropped) {
    return { kind: 'malformed', why: `${at} is over ${MAX_PROTOCOL_LINE_KIB} KiB: ${excerpt(line, 80)}…; data this large belongs in an artifact: save_artifact() or $KAON_OUTPUT_DIR` };
  }
  if (!raw.utf8) return { kind: 'malformed', why: `${at} is not UTF-8 text (binary data?): ${excerpt(line, 60)}` };
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (err) {
    const why = `not JSON: ${(err as Error).message}; NaN and Infinity are not JSON either`;
    if (!raw.terminated) return { kind: 'unterminated', why: `${at}: ${ex} (${why}; it does not end with a newline)` };
    return { kind: 'malformed', why: `${at}: ${ex} (${why})` };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { kind: 'malformed', why: `${at}: ${ex} (JSON, but not an object with a "type")` };
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { kind: 'malformed', why: `${at}: ${ex} (${issue ? `${issue.path.join('.') || 'type'}: ${issue.message}` : 'invalid'})` };
  }
  return { kind: 'message', msg: parsed.data };
}

/** A program started in its own process group by spawnGroup. */
export interface GroupProcess {
  child: ChildProcess;
  /** The process group id (the leader's pid). */
  pgid: number;
  /** The leader's exit. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * After the leader exited: wait for a kill in progress (`stopping`), else end what the leader left in its group
   * (background jobs, daemons); forget the group; close the watch pipe; wait (2 s at most) for the pipes to drain.
   */
  reap(stopping: Promise<void> | undefined, graceMs: number, streamsClosed: Promise<unknown>): Promise<void>;
}

/**
 * Start a program the way every step process starts: argv only (never a shell), its own process group, fds 0-2
 * and the protocol fd 3 (stdin ignored), the watcher of the wrapper (no step outlives its worker), and, with
 * `itemsFd`, one more pipe at fd ITEMS_FD that the worker writes to (see item-session.ts). A program that cannot
 * start (ENOENT, EACCES) is a non-retryable KaonError naming it.
 */
export async function spawnGroup(opts: { argv: readonly string[]; env: NodeJS.ProcessEnv; cwd?: string; label: string; itemsFd?: boolean }): Promise<GroupProcess> {
  const posix = process.platform !== 'win32';
  const program = posix ? resolveProgram(opts.argv[0]!, opts.env, opts.cwd) : { path: opts.argv[0]! };
  if (!('path' in program)) throw cannotStart(opts.label, opts, Object.assign(new Error(`spawn ${opts.argv[0]} ${program.code}`), { code: program.code }));
  const extra: 'pipe'[] = opts.itemsFd ? ['pipe'] : [];
  const child = posix
    ? spawn('/bin/sh', ['-c', opts.itemsFd ? ITEMS_WRAPPER : WRAPPER, 'kaon-step', program.path, ...opts.argv.slice(1)], {
        cwd: opts.cwd,
        env: opts.env,
        stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', ...extra],
        detached: true, // own process group: one kill reaches grandchildren too
        shell: false,
      })
    : spawn(opts.argv[0]!, opts.argv.slice(1), { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe', 'pipe', ...(opts.itemsFd ? ['ignore' as const, 'pipe' as const] : [])], detached: true, shell: false, windowsHide: true });
  // The worker's end of the watch pipe: never written, closed only when the worker dies or the program is done.
  const watch = posix ? (child.stdio[WATCH_FD] as (NodeJS.ReadableStream & { destroy(): void }) | undefined) : undefined;
  watch?.on('error', () => undefined);

  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  try {
    await spawned;
  } catch (err) {
    throw cannotStart(opts.label, opts, err);
  }
  const pgid = child.pid!;
  trackGroup(pgid);
  child.on('error', () => undefined); // e.g. a failed kill(); the exit event still decides
  return {
    child,
    pgid,
    exited,
    async reap(stopping, graceMs, streamsClosed) {
      // The leader is gone; whatever it left in its group (background jobs, daemons) goes too.
      // (terminateGroup returns at once for a group that is gone: no /proc scan before it.)
      await (stopping ?? terminateGroup(pgid, Math.min(graceMs, 1000)));
      liveGroups.delete(pgid);
      watch?.destroy();
      // A grandchild that escaped the group (setsid) could hold the pipes open; do not wait for it forever.
      const drained = await Promise.race([streamsClosed.then(() => true), sleep(2000).then(() => false)]);
      if (!drained) for (const s of child.stdio) s?.destroy();
    },
  };
}

/**
 * Run one program to completion. Resolves with its protocol output on exit 0; otherwise throws a KaonError
 * classified by the exit code contract above (or rethrows the abort reason on cancellation).
 */
export async function runProcess(opts: RunProcessOptions): Promise<ProcessResult> {
  const label = opts.label ?? `program ${JSON.stringify(opts.argv[0])}`;
  if (opts.argv.length === 0 || !opts.argv[0]) {
    throw new KaonError({ code: ErrorCode.invalidDefinition, what: `${label} has an empty argv`, fix: 'pass the program as the first element, e.g. command(["Rscript", "train.R"])' });
  }
  if (opts.signal?.aborted) throw signalError(opts.signal);
  const started = Date.now();
  const tail = new Tail(opts.tailLines, opts.tailBytes);
  const graceMs = opts.killGraceMs ?? 5000;
  const log = opts.log;
  const malformed: string[] = [];
  const artifacts: ArtifactMessage[] = [];
  const cards: CardMessage[] = [];
  const models: ModelMessage[] = [];
  let rejected: KaonError | undefined;
  let output: unknown;
  let hasOutput = false;
  let logBytes = 0;
  let logLines = 0;

  const childEnv = { ...(opts.env ?? process.env), KAON_PROTOCOL_FD: String(PROTOCOL_FD) };
  const group = await spawnGroup({ argv: opts.argv, env: childEnv, ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}), label });
  const { child, pgid, exited } = group;
  opts.onSpawn?.(pgid);

  const onStd = (stream: 'stdout' | 'stderr', line: string, dropped: number) => {
    logLines++;
    const text = dropped ? `${line}… [${dropped} more bytes of this line dropped]` : line;
    const entry = { stream, line: text };
    tail.add(entry);
    log?.info(text, { stream });
    opts.onLine?.(entry);
  };
  const stdout = new LineSplitter(MAX_LOG_LINE, (l, d) => onStd('stdout', l, d));
  const stderr = new LineSplitter(MAX_LOG_LINE, (l, d) => onStd('stderr', l, d));
  let protocolLines = 0;
  let unterminated: string | undefined;
  // The reader never trusts the helper: a script may write fd 3 itself, so every line is checked here.
  const onProtocolLine = (line: string, dropped: number, raw: { utf8: boolean; terminated: boolean }) => {
    protocolLines++;
    const parsed = parseProtocolLine(ProtocolMessage, line, dropped, raw, protocolLines);
    if (parsed.kind === 'empty') return;
    if (parsed.kind === 'malformed') return void malformed.push(parsed.why);
    if (parsed.kind === 'unterminated') return void (unterminated = parsed.why);
    const msg = parsed.msg;
    switch (msg.type) {
      case 'progress':
        opts.onProgress?.(msg.fraction ?? undefined, msg.message);
        break;
      case 'output':
        if (hasOutput) malformed.push(`line ${protocolLines}: ${excerpt(line, 200)} (a second output line; a step writes its output exactly once)`);
        output = msg.value;
        hasOutput = true;
        break;
      case 'artifact':
        artifacts.push(msg);
        break;
      case 'card':
        cards.push(msg);
        break;
      case 'metric':
        try {
          opts.onMetric?.(msg.name, msg.value, msg.step ?? undefined);
        } catch (err) {
          rejected ??= err instanceof KaonError ? err : new KaonError({ code: ErrorCode.badInput, what: String(err), fix: 'log finite numbers under valid names', retryable: false });
        }
        break;
      case 'model':
        models.push(msg);
        break;
      case 'log': {
        const level = msg.level === 'warning' ? 'warn' : msg.level;
        log?.[level](msg.message, { stream: 'protocol' });
        break;
      }
    }
  };
  const protocol = new LineSplitter(MAX_PROTOCOL_LINE, onProtocolLine);
  const fileProtocol = new LineSplitter(MAX_PROTOCOL_LINE, onProtocolLine);

  const streamsClosed = Promise.all(
    [
      [child.stdout!, stdout],
      [child.stderr!, stderr],
      [child.stdio[PROTOCOL_FD] as NodeJS.ReadableStream, protocol],
    ].map(
      ([s, splitter]) =>
        new Promise<void>((resolve) => {
          const stream = s as NodeJS.ReadableStream;
          const split = splitter as LineSplitter;
          stream.on('data', (c: Buffer) => {
            if (split !== protocol) logBytes += c.length;
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

  // The protocol file: read what was appended since the last poll (it appears when the program first writes).
  const file = opts.protocolFile;
  let fileFd: number | undefined;
  let filePos = 0;
  const fileBuf = Buffer.alloc(64 * 1024);
  const readProtocolFile = () => {
    if (file === undefined) return;
    try {
      fileFd ??= openSync(file, 'r');
    } catch {
      return; // not written yet
    }
    for (;;) {
      const n = readSync(fileFd, fileBuf, 0, fileBuf.length, filePos);
      if (n <= 0) return;
      filePos += n;
      fileProtocol.push(fileBuf.subarray(0, n));
    }
  };
  const filePoll = file !== undefined ? setInterval(readProtocolFile, 250) : undefined;

  let stoppedBy: 'timeout' | 'abort' | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (why: 'timeout' | 'abort') => {
    if (stoppedBy) return;
    stoppedBy = why;
    stopping = terminateGroup(pgid, graceMs);
  };
  const timer = opts.timeoutMs !== undefined ? setTimeout(() => stop('timeout'), opts.timeoutMs) : undefined;
  const onAbort = () => stop('abort');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();

  const exit = await exited;
  if (timer) clearTimeout(timer);
  opts.signal?.removeEventListener('abort', onAbort);
  await group.reap(stopping, graceMs, streamsClosed);
  if (filePoll) {
    clearInterval(filePoll);
    readProtocolFile();
    if (fileFd !== undefined) closeSync(fileFd);
    fileProtocol.end();
  }

  const durationMs = Date.now() - started;
  const lastLines = formatTail(tail.get());
  const tailText = lastLines ? `; last output:\n${lastLines}` : '; it printed nothing';
  const details = { exitCode: exit.code, signal: exit.signal, tail: tail.get().map((l) => l.line), durationMs };

  if (stoppedBy === 'abort' && opts.signal) throw signalError(opts.signal);
  if (stoppedBy === 'timeout') {
    throw new KaonError({
      code: ErrorCode.timeout,
      what: `${label} timed out after ${opts.timeoutMs} ms and was killed${tailText}`,
      fix: 'raise the step timeout, or make the program faster (report progress to see where it spends time)',
      retryable: true,
      details,
    });
  }
  // A program that exited on its own (not killed) stands by every line it wrote, its last one included.
  if (unterminated !== undefined && !exit.signal) malformed.push(unterminated);
  const malformedNote = malformed.length
    ? `${malformed.length} malformed protocol line(s) on fd ${PROTOCOL_FD}, the first: ${malformed[0]}`
    : '';
  // A metric the step logged is wrong (NaN, a bad name): the same code would log it again, so never retried.
  if (rejected && (exit.code === 0 || exit.code === EXIT_BAD_INPUT)) throw rejected;
  // Protocol misuse is a property of the program, not of the moment: not retried, whatever the exit code. Only a
  // program killed from outside (OOM) keeps its retry: its lines may have been cut by the kill.
  if (malformed.length && !exit.signal) {
    const exited = exit.code === 0 ? 'exited 0 but wrote' : `exited with code ${exit.code} and wrote`;
    throw new KaonError({
      code: ErrorCode.processFailed,
      what: `${label} ${exited} ${malformedNote}. ${PROTOCOL_EXPECTS}${exit.code === 0 ? '' : tailText}`,
      fix: `use the helpers (python/kaon_step.py, r/kaon_step.R) rather than writing to fd ${PROTOCOL_FD} yourself, or write exactly that format; this failure is not retried`,
      retryable: false,
      details: { ...details, malformed },
    });
  }
  if (exit.code === 0) return { output, hasOutput, artifacts, cards, models, tail: tail.get(), durationMs, logBytes, logLines };
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  const extra = malformedNote ? `; it also wrote ${malformedNote}` : '';
  if (exit.code === EXIT_BAD_INPUT) {
    throw new KaonError({
      code: ErrorCode.badInput,
      what: `${label} rejected its input (exit ${EXIT_BAD_INPUT})${extra}${tailText}`,
      fix: 'correct what the message above names (a field of the input, or a misused kaon_step call and its fix); this failure is not retried',
      retryable: false,
      details,
    });
  }
  throw new KaonError({
    code: ErrorCode.processFailed,
    what: `${label} ${how}${extra}${tailText}`,
    fix: exit.signal === 'SIGKILL'
      ? 'SIGKILL from outside Kaon is often the out-of-memory killer: give the worker more memory or process the data in chunks'
      : `see the last lines above; exit ${EXIT_BAD_INPUT} marks bad input (not retried), any other non-zero code is retried by the step's retry policy`,
    retryable: true,
    details,
  });
}
