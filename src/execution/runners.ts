/**
 * Executors for steps whose contract carries a `run` descriptor: `command(argv)` (any program — R, shell, binaries),
 * `python(script, { requirements, args })` and `spark({ app, … })` (spark-submit, see spark.ts). Each attempt gets a private work dir:
 *   $KAON_INPUT        the validated input as JSON
 *   $KAON_INPUT_PATHS  JSON map field path → local file of each artifact input ("features", "models[0]")
 *   $KAON_OUTPUT_DIR   files left here become artifacts of the step
 *   $KAON_PROTOCOL_FD  the protocol pipe (see process.ts), wrapped by python/kaon_step.py and r/kaon_step.R
 *   $KAON_R_HELPER     the path of r/kaon_step.R, for `source(Sys.getenv("KAON_R_HELPER"))`
 * Relative script paths and argv[0] with a slash resolve against the project root, which is also the default cwd.
 */
import { createHash } from 'node:crypto';
import { readdirSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ArtifactRef, Producer } from '../definition/artifact-ref';
import { isArtifactRef } from '../definition/artifact-ref';
import { toMs } from '../definition/duration';
import { ErrorCode, fieldPath, KaonError } from '../definition/errors';
import type { StepDef, StepRunner } from '../definition/step';
import type { RunnerExecutor } from './activities';
import type { StepContext, StepLogger } from './implement';
import { ItemProcess, type ItemSession } from './item-session';
import { runProcess, type ArtifactMessage, type ProcessResult, type TailLine } from './process';
import { PythonErrorScan } from './python-errors';
import { ensurePythonEnv, type PythonEnvOptions } from './python-env';
import { stepEnv } from './step-env';
import { recordLiveStep } from './sweep';
import { classifySparkFailure, driverHost, ensureSparkEnv, SparkErrorScan, sparkMaster, sparkSubmitArgs, SparkWatcher } from './spark';

/** The folder holding kaon_step.py (shipped with the package, next to src/); put on PYTHONPATH of every step process. */
export const KAON_PYTHON_HELPERS = path.resolve(__dirname, '..', '..', 'python');
/** The R helper (shipped next to src/), passed to every step process as $KAON_R_HELPER. */
export const KAON_R_HELPER = path.resolve(__dirname, '..', '..', 'r', 'kaon_step.R');

/** What an executor needs from the artifact store (src/data adapts its store to this). */
export interface ArtifactIO {
  /** Make the artifact a local file inside `dir` (download, copy, or a hard link to a read-only blob) and return its path. The step must treat it as read-only. */
  materialise(ref: ArtifactRef, dir: string): Promise<string>;
  /** Store a file the step produced; `inputs` are the step's input artifacts (lineage). */
  save(file: { path: string; name: string; mediaType?: string }, inputs: ArtifactRef[], producer: Producer): Promise<ArtifactRef>;
}

export interface RunnerDeps {
  /** Without it, steps with artifact inputs or outputs fail with a clear error. */
  artifacts?: ArtifactIO;
  /** Where python() environments are built and which interpreter they use. */
  pythonEnv?: Omit<PythonEnvOptions, 'signal'>;
  /** Receives the programs' stdout/stderr lines. Default: the step's logger (ctx.log). */
  log?: StepLogger;
  /**
   * Project root for relative paths (also the default cwd). Default: process.cwd(). The runtime's defaultExecutors
   * passes projectRoot() (the nearest package.json upwards from cwd).
   */
  root?: string;
  /** SIGTERM → SIGKILL grace on cancellation or timeout. Default 5000 ms. */
  killGraceMs?: number;
  /** Parent of the per-attempt work dirs. Default os.tmpdir(). */
  workDir?: string;
  /**
   * Where each live attempt's process group and work dir are recorded, so a restarted worker can sweep what a
   * killed one left (see sweep.ts). The runtime passes <KAON_HOME>/live-steps. Default: not recorded.
   */
  liveDir?: string;
  /** Keep work dirs after the attempt (debugging). Default $KAON_KEEP_WORKDIR === '1'. */
  keepWorkDir?: boolean;
  /** How often a changed log tail is re-heartbeated. Default 2000 ms. */
  tailHeartbeatMs?: number;
  /** How often a Spark step's REST API is polled for progress. Default 1000 ms. */
  sparkPollMs?: number;
}

type Kind = StepRunner['kind'];

/** Extra heartbeat fields a launcher reports while its program runs (e.g. the Spark UI link). */
export interface LaunchProgress {
  fraction?: number;
  message?: string;
  /** A page to watch the step on (the Spark UI); kept in the heartbeat and the run state. */
  url?: string;
}

/** How an executor starts its program; the hooks let a kind (Spark) observe and classify it. */
export interface Launch {
  argv: string[];
  env?: Record<string, string>;
  cwd: string;
  label: string;
  /** Read protocol lines from this file too (see RunProcessOptions.protocolFile); passed as $KAON_PROTOCOL_FILE. */
  protocolFile?: string;
  /** Sees every stdout/stderr line. */
  onLine?: (line: TailLine) => void;
  /** Starts watching the running program; `report` merges into the heartbeat. Returns the stop function. */
  watch?: (report: (p: LaunchProgress) => void) => () => void;
  /** Reclassifies a failure of the program (the error runProcess threw). */
  mapError?: (err: unknown) => unknown;
}

const MEDIA_TYPES: Record<string, string> = {
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.csv': 'text/csv',
  '.tsv': 'text/tab-separated-values',
  '.txt': 'text/plain',
  '.md': 'text/markdown',
  '.html': 'text/html',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.parquet': 'application/vnd.apache.parquet',
  '.npy': 'application/octet-stream',
  '.pkl': 'application/octet-stream',
};

function mediaTypeOf(file: string): string | undefined {
  return MEDIA_TYPES[path.extname(file).toLowerCase()];
}

/** Every ArtifactRef in a value, with its field path ("features", "models[0]", "a.b"). */
export function findArtifactRefs(value: unknown, at: PropertyKey[] = []): { field: string; ref: ArtifactRef }[] {
  if (isArtifactRef(value)) return [{ field: fieldPath(at), ref: value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => findArtifactRefs(v, [...at, i]));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => findArtifactRefs(v, [...at, k]));
  }
  return [];
}

function isPlaceholder(v: unknown): v is { $artifact: string } {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0] === '$artifact' && typeof (v as { $artifact: unknown }).$artifact === 'string';
}

function replacePlaceholders(value: unknown, refs: Map<string, ArtifactRef>, missing: string[]): unknown {
  if (isPlaceholder(value)) {
    const ref = refs.get(value.$artifact);
    if (!ref) missing.push(value.$artifact);
    return ref ?? value;
  }
  if (Array.isArray(value)) return value.map((v) => replacePlaceholders(v, refs, missing));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replacePlaceholders(v, refs, missing)]));
  }
  return value;
}

async function listFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(dir, r)));
    else if (e.isFile()) out.push(r);
  }
  return out.sort();
}

function hasEntries(dir: string): boolean {
  try {
    return readdirSync(dir).length > 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

function noStore(where: string, what: string): KaonError {
  return new KaonError({
    code: ErrorCode.config,
    what: `${what}, but this worker has no artifact store`,
    where,
    fix: 'create the executors with one: createRunnerExecutors({ artifacts }) (createKaonWorker does this when an artifact store is configured)',
    retryable: false,
  });
}

function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error('the step was cancelled');
  e.name = 'AbortError';
  return e;
}

/** Resolve `p` unless the signal aborts first (a shared build keeps going for the other steps waiting on it). */
function unlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** What a script that handles items looks like in its source (a call outside a comment). */
const ITEM_HANDLER = {
  python: /^[^#\n]*\brun_items\s*\(/m,
  r: /^[^#\n]*\bkaon_run_items\s*\(/m,
};

/** The R script of `command(['Rscript', …, 'score.R', …])`: its first argument naming a .R file; else undefined. */
function rScriptOf(argv: readonly string[]): string | undefined {
  if (!/^Rscript(\.exe)?$/.test(path.basename(argv[0] ?? ''))) return undefined;
  const args = argv.slice(1);
  const i = args.findIndex((a) => !a.startsWith('-'));
  // Rscript's own options come first (--vanilla); `-e expr` runs no script.
  return i >= 0 && /\.[Rr]$/.test(args[i]!) && !args.slice(0, i).includes('-e') ? args[i] : undefined;
}

/** Build the executors for `command()` ('process') and `python()` steps. Pass them to createKaonWorker. */
export function createRunnerExecutors(deps: RunnerDeps = {}): Record<Kind, RunnerExecutor> {
  const root = () => deps.root ?? process.cwd();

  /** Local files of the input's artifacts (one per blob), under `dir`, by field path. */
  async function materialiseInputs(inputRefs: { field: string; ref: ArtifactRef }[], dir: string): Promise<Record<string, string>> {
    const inputPaths: Record<string, string> = {};
    const bySha = new Map<string, string>();
    for (const [i, { field, ref }] of inputRefs.entries()) {
      let local = bySha.get(ref.sha256);
      if (!local) {
        const into = path.join(dir, String(i));
        await mkdir(into, { recursive: true });
        local = await deps.artifacts!.materialise(ref, into);
        bySha.set(ref.sha256, local);
      }
      inputPaths[field] = local;
    }
    return inputPaths;
  }

  /** The runner's variables of a step process (Kaon's protocol vars, the helpers' paths), allow-listed with the worker's. */
  function processEnv(def: StepDef, l: { env?: Record<string, string>; protocolFile?: string }, ctx: StepContext, vars: Record<string, string>): Record<string, string> {
    const helperPath = [KAON_PYTHON_HELPERS, l.env?.PYTHONPATH ?? process.env.PYTHONPATH].filter(Boolean).join(path.delimiter);
    // Only an allow-list of the worker's environment, never its TEMPORAL_API_KEY or AWS keys (see step-env.ts).
    return stepEnv({
      kind: def.run?.kind ?? 'process',
      runner: {
        ...l.env,
        PYTHONPATH: helperPath,
        PYTHONUNBUFFERED: '1',
        KAON_R_HELPER,
        ...vars,
        KAON_STEP: def.name,
        KAON_PIPELINE: ctx.pipeline,
        KAON_RUN_ID: ctx.runId,
        KAON_ATTEMPT: String(ctx.attempt),
        ...(l.protocolFile !== undefined ? { KAON_PROTOCOL_FILE: l.protocolFile } : {}),
      },
      secrets: ctx.secrets,
    });
  }

  /**
   * Heartbeat details of an attempt (or an item): the last progress plus the last few log lines (kept short: they
   * travel on every beat). A program's own progress wins over a launcher's (Spark stages), whose message is then
   * appended.
   */
  function heartbeats(ctx: StepContext, onLineToo?: (t: TailLine) => void) {
    let progress: { fraction?: number; message?: string } = {};
    let watched: LaunchProgress = {};
    const recent: string[] = [];
    let dirty = false;
    const beat = () => {
      dirty = false;
      const fraction = progress.fraction ?? watched.fraction;
      const message = [progress.message, watched.message].filter(Boolean).join(' · ');
      ctx.heartbeat({ ...(fraction !== undefined ? { fraction } : {}), ...(message ? { message } : {}), ...(watched.url ? { url: watched.url } : {}), tail: [...recent] });
    };
    const timer = setInterval(() => dirty && beat(), deps.tailHeartbeatMs ?? 2000);
    timer.unref();
    return {
      onLine: (t: TailLine) => {
        onLineToo?.(t);
        recent.push(t.line.length > 200 ? `${t.line.slice(0, 200)}…` : t.line);
        if (recent.length > 10) recent.shift();
        dirty = true;
      },
      onProgress: (fraction: number | undefined, message: string | undefined) => {
        progress = { ...(fraction !== undefined ? { fraction } : {}), ...(message ? { message } : {}) };
        beat();
      },
      watched: (p: LaunchProgress) => {
        watched = p;
        beat();
      },
      stop: () => clearInterval(timer),
    };
  }

  /** The attempt's own limit (a per-call timeout override included), else the definition's (local runs). */
  function timeLimit(def: StepDef, ctx: StepContext, where: string): { timeoutMs?: number } {
    // Killed a little before Temporal's timeout, so the failure carries the log tail and the attempt, not a bare timeout.
    if (ctx.timeoutMs !== undefined) return { timeoutMs: ctx.timeoutMs - Math.min(1000, ctx.timeoutMs / 10) };
    return def.options.timeout !== undefined ? { timeoutMs: toMs(def.options.timeout, where) } : {};
  }

  async function execute(def: StepDef, input: unknown, ctx: StepContext, launch: (work: string) => Promise<Launch>): Promise<unknown> {
    const where = `step "${def.name}" (key ${ctx.key})`;
    const inputRefs = findArtifactRefs(input);
    if (inputRefs.length && !deps.artifacts) {
      throw noStore(where, `the input has artifacts at ${inputRefs.map((r) => r.field).join(', ')}`);
    }
    const work = await mkdtemp(path.join(deps.workDir ?? os.tmpdir(), `kaon-${def.name.slice(0, 40)}-`));
    const live = recordLiveStep(deps.liveDir, work);
    let stopBeats: (() => void) | undefined;
    try {
      const inDir = path.join(work, 'inputs');
      const outDir = path.join(work, 'output');
      await mkdir(inDir);
      await mkdir(outDir);
      const inputFile = path.join(work, 'input.json');
      await writeFile(inputFile, JSON.stringify(input ?? null));
      const inputPaths = await materialiseInputs(inputRefs, inDir);

      const l = await launch(work);
      const log = deps.log ?? ctx.log;
      const env = processEnv(def, l, ctx, {
        KAON_INPUT: inputFile,
        KAON_INPUT_PATHS: JSON.stringify(inputPaths),
        KAON_OUTPUT_DIR: outDir,
        KAON_WORK_DIR: work,
        KAON_STEP_KEY: ctx.key,
      });
      const beats = heartbeats(ctx, l.onLine);
      stopBeats = beats.stop;
      const stopWatching = l.watch?.(beats.watched);
      const result = await runProcess({
        ...(l.protocolFile !== undefined ? { protocolFile: l.protocolFile } : {}),
        argv: l.argv,
        env,
        cwd: l.cwd,
        signal: ctx.signal,
        log,
        label: l.label,
        onSpawn: (pgid) => live.setGroup(pgid),
        onLine: beats.onLine,
        onMetric: (name, value, step) => ctx.metrics.log(name, value, step),
        onProgress: beats.onProgress,
        ...timeLimit(def, ctx, where),
        ...(deps.killGraceMs !== undefined ? { killGraceMs: deps.killGraceMs } : {}),
      })
        .catch((err: unknown) => {
          throw l.mapError ? l.mapError(err) : err;
        })
        .finally(() => stopWatching?.());
      return await finish(def, ctx, where, l, outDir, result, inputRefs);
    } finally {
      stopBeats?.();
      if (!(deps.keepWorkDir ?? process.env.KAON_KEEP_WORKDIR === '1')) await rm(work, { recursive: true, force: true });
      live.remove();
    }
  }

  /**
   * What a program that exited 0 (or an item that ended 0) leaves: its artifacts saved with ctx's producer, its
   * model registrations and cards, and its output with artifact placeholders replaced by refs.
   */
  async function finish(def: StepDef, ctx: StepContext, where: string, l: { label: string; cwd: string }, outDir: string, result: ProcessResult, inputRefs: { ref: ArtifactRef }[]): Promise<unknown> {
    // Card images are the card's own artifacts: not also saved as loose outputs of the step.
    const cardImages = new Set(result.cards.flatMap((c) => c.images.map((i) => real(path.resolve(l.cwd, i)))));
    const saved = await saveArtifacts(ctx, where, l.cwd, outDir, result.artifacts, inputRefs.map((r) => r.ref), cardImages);
    if (!result.hasOutput) {
      if (def.output.safeParse(undefined).success) return undefined;
      throw new KaonError({
        code: ErrorCode.invalidOutput,
        what: `${l.label} exited 0 without writing an output`,
        fix: 'end the script with kaon_step.output({...}) (Python) or write {"type":"output","value":...} as one line to fd $KAON_PROTOCOL_FD',
        retryable: false,
      });
    }
    const missing: string[] = [];
    for (const m of result.models) {
      const model = replacePlaceholders(m.artifact, saved, missing);
      if (!isArtifactRef(model)) {
        if (missing.length) continue; // reported below
        throw new KaonError({ code: ErrorCode.badInput, what: `${l.label} registered model "${m.name}" with ${JSON.stringify(m.artifact).slice(0, 200)}, not an artifact`, fix: 'pass an artifact ref from the input, or the value save_artifact() returned', retryable: false });
      }
      ctx.registerModel(m.name, model, { ...(m.description !== undefined ? { description: m.description } : {}), ...(m.tags ? { tags: m.tags } : {}) });
    }
    const output = replacePlaceholders(result.output, saved, missing);
    if (missing.length) {
      throw new KaonError({
        code: ErrorCode.invalidOutput,
        what: `the output of ${l.label} refers to artifacts ${missing.map((m) => JSON.stringify(m)).join(', ')} that the step did not save (saved: ${[...saved.keys()].join(', ') || 'none'})`,
        fix: 'put the value returned by save_artifact() in the output, or write the file into $KAON_OUTPUT_DIR and use {"$artifact": "<its relative path>"}',
        retryable: false,
      });
    }
    for (const c of result.cards) await ctx.card({ title: c.title, markdown: c.markdown, images: c.images.map((i) => path.resolve(l.cwd, i)) });
    return output;
  }

  async function saveArtifacts(
    ctx: StepContext,
    where: string,
    cwd: string,
    outDir: string,
    declared: ArtifactMessage[],
    inputs: ArtifactRef[],
    skip: ReadonlySet<string> = new Set(),
  ): Promise<Map<string, ArtifactRef>> {
    const files: { path: string; name: string; mediaType?: string }[] = [];
    const seen = new Set<string>();
    for (const a of declared) {
      const p = path.resolve(cwd, a.path);
      const st = await stat(p).catch(() => undefined);
      if (!st?.isFile()) {
        throw new KaonError({ code: ErrorCode.artifactMissing, what: `${where} saved artifact ${JSON.stringify(a.name ?? a.path)} at ${p}, but no file is there`, fix: 'keep the file in place until the script ends (do not write it to a temp dir that is deleted)', retryable: false });
      }
      const mediaType = a.mediaType ?? mediaTypeOf(p);
      files.push({ path: p, name: a.name ?? path.basename(p), ...(mediaType ? { mediaType } : {}) });
      seen.add(real(p));
    }
    // Most output dirs are empty, and a session's item may lack one (a script that is not the helper): one
    // synchronous readdir instead of a round trip through the thread pool per item.
    for (const rel of hasEntries(outDir) ? await listFiles(outDir) : []) {
      const p = path.join(outDir, rel);
      if (seen.has(real(p)) || skip.has(real(p))) continue;
      const mediaType = mediaTypeOf(p);
      files.push({ path: p, name: rel, ...(mediaType ? { mediaType } : {}) });
    }
    const refs = new Map<string, ArtifactRef>();
    if (files.length === 0) return refs;
    if (!deps.artifacts) throw noStore(where, `the step produced artifacts ${files.map((f) => JSON.stringify(f.name)).join(', ')}`);
    const names = new Set<string>();
    for (const f of files) {
      if (names.has(f.name)) {
        throw new KaonError({ code: ErrorCode.artifactName, what: `${where} produced two artifacts named ${JSON.stringify(f.name)}`, fix: 'give each save_artifact() a distinct name=', retryable: false });
      }
      names.add(f.name);
    }
    const producer: Producer = { pipeline: ctx.pipeline, runId: ctx.runId, step: ctx.key, attempt: ctx.attempt };
    const unique = [...new Map(inputs.map((r) => [r.sha256, r])).values()];
    for (const f of files) refs.set(f.name, await deps.artifacts.save(f, unique, producer));
    return refs;
  }

  /** How a command() step's program starts, and each call's or item's hooks. */
  function processLaunch(def: StepDef): { argv: string[]; cwd: string; env?: Record<string, string>; hooks: (ctx: StepContext) => Pick<Launch, 'label' | 'onLine' | 'mapError'> } {
    const run = def.run as Extract<StepRunner, { kind: 'process' }>;
    const base = root();
    const [program, ...args] = run.argv;
    if (!program) {
      throw new KaonError({ code: ErrorCode.invalidDefinition, what: `step "${def.name}" has an empty command`, fix: "give the program first: command(['Rscript', 'steps/train.R'])" });
    }
    // A bare name is looked up on PATH; anything with a slash is a file relative to the project root.
    const resolved = program.includes('/') ? path.resolve(base, program) : program;
    // command(['python3', 'train.py']) fails like python('train.py') when its script does not parse.
    const script = /^python[\d.]*$/.test(path.basename(program)) ? args.find((a) => a.endsWith('.py')) : undefined;
    return {
      argv: [resolved, ...args],
      ...(run.env ? { env: { ...run.env } } : {}),
      cwd: run.cwd ? path.resolve(base, run.cwd) : base,
      hooks: (c) => {
        const label = `step "${def.name}" (key ${c.key}, ${path.basename(program)})`;
        const scan = script !== undefined ? new PythonErrorScan() : undefined;
        return { label, ...(scan && script !== undefined ? { onLine: (t: TailLine) => scan.onLine(t), mapError: (err: unknown) => scan.classify(err, label, script, false) } : {}) };
      },
    };
  }

  const processExecutor: RunnerExecutor = (def, input, ctx) =>
    execute(def, input, ctx, async () => {
      const l = processLaunch(def);
      return { argv: l.argv, ...(l.env ? { env: l.env } : {}), cwd: l.cwd, ...l.hooks(ctx) };
    });

  /**
   * Many items in one process, for an R script that handles items (kaon_run_items in r/kaon_step.R), run as
   * command(['Rscript', 'score.R']). Any other command answers undefined: its items run one process each.
   */
  processExecutor.session = async (def, ctx) => {
    const run = def.run as Extract<StepRunner, { kind: 'process' }>;
    const script = rScriptOf(run.argv);
    if (script === undefined) return undefined;
    const base = root();
    const source = await readFile(path.resolve(run.cwd ? path.resolve(base, run.cwd) : base, script), 'utf8').catch(() => undefined);
    if (source === undefined || !ITEM_HANDLER.r.test(source)) return undefined;
    const l = processLaunch(def);
    return openSession(def, ctx, l, (input, c) => processExecutor(def, input, c));
  };

  /** How a python() step's program starts (its environment built or reused), and each call's or item's hooks. */
  async function pythonLaunch(def: StepDef, ctx: StepContext): Promise<{ argv: string[]; cwd: string; hooks: (ctx: StepContext) => Pick<Launch, 'label' | 'onLine' | 'mapError'> }> {
    const run = def.run as Extract<StepRunner, { kind: 'python' }>;
    const base = root();
    const script = path.resolve(base, run.script);
    const st = await stat(script).catch(() => undefined);
    if (!st?.isFile()) {
      throw new KaonError({
        code: ErrorCode.notFound,
        what: `the Python script of step "${def.name}" is not at ${script}`,
        fix: `python('${run.script}') is resolved against the project root (${base}); correct the path or start the worker from the project`,
        retryable: false,
      });
    }
    const requirements = run.requirements ?? [];
    if (requirements.length) ctx.heartbeat({ message: 'preparing the Python environment' });
    // pip's chatter goes to debug; the "building…" and "ready" messages to info.
    const pipLog: StepLogger = {
      debug: (m, meta) => ctx.log.debug(m, meta),
      info: (m, meta) => ctx.log.debug(m, meta),
      warn: (m, meta) => ctx.log.warn(m, meta),
      error: (m, meta) => ctx.log.error(m, meta),
    };
    const pythonExe = await unlessAborted(
      ensurePythonEnv(requirements, { say: (m) => ctx.log.info(m), log: pipLog, ...deps.pythonEnv }),
      ctx.signal,
    );
    return {
      argv: [pythonExe, script, ...(run.args ?? [])],
      cwd: base,
      hooks: (c) => {
        const label = `Python step "${def.name}" (key ${c.key}, ${run.script})`;
        const scan = new PythonErrorScan();
        return { label, onLine: (t) => scan.onLine(t), mapError: (err) => scan.classify(err, label, run.script) };
      },
    };
  }

  const pythonExecutor: RunnerExecutor = (def, input, ctx) =>
    execute(def, input, ctx, async () => {
      const l = await pythonLaunch(def, ctx);
      return { argv: l.argv, cwd: l.cwd, ...l.hooks(ctx) };
    });

  /**
   * Many items in one process, for a script that handles items (kaon_step.run_items). Any other script (no
   * run_items in its source) answers undefined: its items run one process each.
   */
  pythonExecutor.session = async (def, ctx) => {
    const run = def.run as Extract<StepRunner, { kind: 'python' }>;
    const source = await readFile(path.resolve(root(), run.script), 'utf8').catch(() => undefined);
    if (source === undefined || !ITEM_HANDLER.python.test(source)) return undefined;
    const l = await pythonLaunch(def, ctx);
    return openSession(def, ctx, l, (input, c) => pythonExecutor(def, input, c));
  };

  /**
   * The step half of an ItemSession: a work dir for the session (KAON_WORK_DIR, and the output dir, emptied after
   * each item), each item's input artifacts in a dir of its own, each item's heartbeats, artifacts and output
   * finished as execute() finishes a process's.
   */
  async function openSession(
    def: StepDef,
    sctx: StepContext,
    l: { argv: string[]; cwd: string; env?: Record<string, string>; hooks: (ctx: StepContext) => Pick<Launch, 'label' | 'onLine' | 'mapError'> },
    perProcess: (input: unknown, ctx: StepContext) => Promise<unknown>,
  ): Promise<ItemSession> {
    const work = await mkdtemp(path.join(deps.workDir ?? os.tmpdir(), `kaon-${def.name.slice(0, 40)}-`));
    const live = recordLiveStep(deps.liveDir, work);
    const keep = deps.keepWorkDir ?? process.env.KAON_KEEP_WORKDIR === '1';
    // One output dir for the session, emptied after each item (items run one at a time): a mkdir and rmdir per item
    // would cost about 1 ms, as much as the rest of a trivial item.
    const outDir = path.join(work, 'output');
    await mkdir(outDir);
    const proc = new ItemProcess({
      argv: l.argv,
      env: processEnv(def, l, sctx, { KAON_WORK_DIR: work, KAON_OUTPUT_DIR: outDir }),
      cwd: l.cwd,
      label: l.hooks(sctx).label,
      onSpawn: (pgid) => live.setGroup(pgid),
      log: deps.log ?? sctx.log,
      ...(deps.killGraceMs !== undefined ? { killGraceMs: deps.killGraceMs } : {}),
    });
    let oneItemScript = false;
    let n = 0;
    let closing: Promise<void> | undefined;
    return {
      async run(input, ctx) {
        if (oneItemScript) return perProcess(input, ctx);
        const where = `step "${def.name}" (key ${ctx.key})`;
        const inputRefs = findArtifactRefs(input);
        if (inputRefs.length && !deps.artifacts) throw noStore(where, `the input has artifacts at ${inputRefs.map((r) => r.field).join(', ')}`);
        const inDir = path.join(work, 'inputs', String(++n));
        const hooks = l.hooks(ctx);
        const beats = heartbeats(ctx, hooks.onLine);
        try {
          const inputPaths = await materialiseInputs(inputRefs, inDir);
          const outcome = await proc
            .run(
              { key: ctx.key, attempt: ctx.attempt, input: input ?? null, inputPaths },
              {
                label: hooks.label,
                signal: ctx.signal,
                log: deps.log ?? ctx.log,
                onLine: beats.onLine,
                onProgress: beats.onProgress,
                onMetric: (name, value, step) => ctx.metrics.log(name, value, step),
                ...timeLimit(def, ctx, where),
              },
            )
            .catch((err: unknown) => {
              throw hooks.mapError ? hooks.mapError(err) : err;
            });
          beats.stop();
          if (outcome.kind === 'one-item') {
            // Nothing of this item was kept from the probe: it runs now, in a process of its own, like the rest.
            oneItemScript = true;
            sctx.log.info(`step "${def.name}": ${hooks.label.replace(/ \(key [^,]*, /, ' (')} has no item handler (${outcome.why}): its items run one process each`);
            return await perProcess(input, ctx);
          }
          return await finish(def, ctx, where, { label: hooks.label, cwd: l.cwd }, outDir, outcome.result, inputRefs);
        } finally {
          beats.stop();
          // What an item left in the output dir was its own (saved above if it succeeded): never the next item's.
          if (hasEntries(outDir)) {
            await rm(outDir, { recursive: true, force: true });
            await mkdir(outDir);
          }
          if (inputRefs.length && !keep) await rm(inDir, { recursive: true, force: true });
        }
      },
      close() {
        closing ??= (async () => {
          try {
            await proc.close();
          } finally {
            if (!keep) await rm(work, { recursive: true, force: true });
            live.remove();
          }
        })();
        return closing;
      },
    };
  }

  const sparkExecutor: RunnerExecutor = (def, input, ctx) => {
    const run = def.run as Extract<StepRunner, { kind: 'spark' }>;
    return execute(def, input, ctx, async (work) => {
      const base = root();
      const app = typeof run.app === 'string' ? run.app : run.app.jar;
      const appPath = path.resolve(base, app);
      const st = await stat(appPath).catch(() => undefined);
      if (!st?.isFile()) {
        throw new KaonError({
          code: ErrorCode.notFound,
          what: `the Spark application of step "${def.name}" is not at ${appPath}`,
          fix: `spark({ app: '${app}' }) is resolved against the project root (${base}); correct the path or start the worker from the project`,
          retryable: false,
        });
      }
      ctx.heartbeat({ message: 'preparing the Spark environment' });
      const pipLog: StepLogger = { debug: (m, meta) => ctx.log.debug(m, meta), info: (m, meta) => ctx.log.debug(m, meta), warn: (m, meta) => ctx.log.warn(m, meta), error: (m, meta) => ctx.log.error(m, meta) };
      const env = await unlessAborted(ensureSparkEnv(run.requirements ?? [], { say: (m) => ctx.log.info(m), log: pipLog, ...deps.pythonEnv }), ctx.signal);
      const master = sparkMaster(run);
      const label = `Spark step "${def.name}" (key ${ctx.key}, ${path.basename(app)} on ${master})`;
      const watcher = new SparkWatcher(driverHost(master, run.conf), deps.sparkPollMs);
      const scan = new SparkErrorScan();
      return {
        argv: [env.sparkSubmit, ...sparkSubmitArgs(run, { master, name: `kaon ${ctx.pipeline} ${ctx.key}`, root: base })],
        env: {
          SPARK_HOME: env.sparkHome,
          PYSPARK_PYTHON: env.python,
          PYSPARK_DRIVER_PYTHON: env.python,
          ...(process.env.JAVA_HOME ? { JAVA_HOME: process.env.JAVA_HOME } : {}),
        },
        cwd: base,
        label,
        protocolFile: path.join(work, 'protocol.jsonl'),
        onLine: (t) => {
          watcher.onLine(t);
          scan.onLine(t);
        },
        watch: (report) => watcher.start(report),
        mapError: (err) => classifySparkFailure(err, scan, label),
      };
    });
  };

  processExecutor.fingerprint = async (def) => {
    const run = def.run as Extract<StepRunner, { kind: 'process' }>;
    const base = root();
    const cwd = run.cwd ? path.resolve(base, run.cwd) : base;
    // Any argv element naming a file (the program, a script, a config) counts by its content.
    const files = await Promise.all(run.argv.map((a, i) => (i === 0 && !a.includes('/') ? undefined : contentHash(path.resolve(cwd, a)))));
    return fingerprintOf({ kind: 'process', argv: run.argv, env: run.env ?? {}, cwd: run.cwd ?? '', files });
  };
  pythonExecutor.fingerprint = async (def) => {
    const run = def.run as Extract<StepRunner, { kind: 'python' }>;
    const script = await contentHash(path.resolve(root(), run.script));
    return fingerprintOf({ kind: 'python', script: run.script, content: script, requirements: run.requirements ?? [], args: run.args ?? [] });
  };
  sparkExecutor.fingerprint = async (def) => {
    const run = def.run as Extract<StepRunner, { kind: 'spark' }>;
    const base = root();
    const app = typeof run.app === 'string' ? run.app : run.app.jar;
    const files = await Promise.all([app, ...(run.pyFiles ?? [])].map((f) => contentHash(path.resolve(base, f))));
    return fingerprintOf({ kind: 'spark', app: run.app, files, conf: run.conf ?? {}, packages: run.packages ?? [], requirements: run.requirements ?? [], args: run.args ?? [] });
  };
  return { process: processExecutor, python: pythonExecutor, spark: sparkExecutor };
}

function fingerprintOf(what: unknown): string {
  return createHash('sha256').update(JSON.stringify(what)).digest('hex');
}

/** sha256 of a file's bytes, remembered by path, size and mtime (a step's script is read once, not per call). */
const hashes = new Map<string, { size: number; mtimeMs: number; sha256: string }>();
async function contentHash(file: string): Promise<string | undefined> {
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile()) return undefined;
  const known = hashes.get(file);
  if (known && known.size === st.size && known.mtimeMs === st.mtimeMs) return known.sha256;
  const sha256 = createHash('sha256').update(await readFile(file)).digest('hex');
  hashes.set(file, { size: st.size, mtimeMs: st.mtimeMs, sha256 });
  return sha256;
}
