/**
 * Spark steps (`spark({ app, master, conf, packages, pyFiles, requirements })`): `spark-submit` in client mode from
 * a pinned pyspark that Kaon installs into a cached environment (python-env.ts), so the driver is a child of the
 * step's process group and speaks the kaon_step protocol like a python() step.
 *
 *   master      run.master ?? $KAON_SPARK_MASTER ?? 'local[2]'; a URL (spark://, k8s://, yarn) moves the step to a cluster.
 *   progress    the driver's REST API (/api/v1/applications/<id>/jobs and /stages) → "stage 3/7, tasks 120/200".
 *   protocol    spark-submit's JVM starts the Python driver with only fds 0-2, so kaon_step writes to
 *               $KAON_PROTOCOL_FILE instead of fd 3 (read by runProcess while the driver runs).
 *   failures    analysis errors (missing column, bad SQL) are bad input, not retried; lost executors are retried;
 *               the message quotes the Spark exception and the driver log's last lines.
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ErrorCode, KaonError } from '../definition/errors';
import type { SparkOptions } from '../definition/step';
import { formatTail, type TailLine } from './process';
import { ensurePythonEnv, type PythonEnvOptions } from './python-env';

/** The pyspark Kaon installs (exact pin: its jars are the Spark distribution every Spark step runs on). */
export const PYSPARK_VERSION = '3.5.7';
export const PYSPARK_REQUIREMENT = `pyspark==${PYSPARK_VERSION}`;
/** Spark 3.5 runs on Java 8/11/17; Kaon asks for 17+, the only one of them still maintained everywhere. */
export const MIN_JAVA = 17;
export const DEFAULT_SPARK_MASTER = 'local[2]';

export interface SparkEnv {
  /** The environment's python (driver and, on one machine, executors). */
  python: string;
  /** The pyspark package folder, which is a complete Spark distribution (bin/, jars/). */
  sparkHome: string;
  sparkSubmit: string;
  java: { bin: string; version: number };
}

const execFileP = promisify(execFile);
const javaChecks = new Map<string, Promise<{ bin: string; version: number }>>();

/** The Java major version of a `java -version` banner ("17.0.15", "1.8.0_392" → 8). */
export function parseJavaVersion(banner: string): number | undefined {
  const m = /version "(\d+)(?:\.(\d+))?/.exec(banner);
  if (!m) return undefined;
  const major = Number(m[1]);
  return major === 1 && m[2] ? Number(m[2]) : major;
}

/** Java 17+ on the worker, or a KaonError saying how to install it. */
export function checkJava(env: NodeJS.ProcessEnv = process.env): Promise<{ bin: string; version: number }> {
  const bin = env.JAVA_HOME ? path.join(env.JAVA_HOME, 'bin', 'java') : 'java';
  const known = javaChecks.get(bin);
  if (known) return known;
  const fix = `install a Java ${MIN_JAVA}+ runtime on the worker (Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless) and put it on PATH, or set JAVA_HOME to it`;
  const check = execFileP(bin, ['-version'], { timeout: 30_000 })
    .then(({ stdout, stderr }) => {
      const version = parseJavaVersion(`${stderr}\n${stdout}`);
      if (version === undefined || version < MIN_JAVA) {
        throw new KaonError({
          code: ErrorCode.config,
          what: `Spark steps need Java ${MIN_JAVA} or newer; ${bin} is ${version === undefined ? `not recognised (${(stderr || stdout).split('\n')[0]})` : `Java ${version}`}`,
          fix,
          retryable: false,
        });
      }
      return { bin, version };
    })
    .catch((err: unknown) => {
      javaChecks.delete(bin);
      if (err instanceof KaonError) throw err;
      throw new KaonError({
        code: ErrorCode.config,
        what: `Spark steps need Java ${MIN_JAVA} or newer, and ${bin} could not run (${env.JAVA_HOME ? `JAVA_HOME=${env.JAVA_HOME}` : 'no java on PATH, JAVA_HOME unset'}): ${(err as Error).message}`,
        fix,
        retryable: false,
        cause: err,
      });
    });
  javaChecks.set(bin, check);
  return check;
}

const homes = new Map<string, Promise<string>>();

/** The pinned pyspark (plus `requirements`) in a cached environment, and Java checked. */
export async function ensureSparkEnv(requirements: readonly string[], opts: PythonEnvOptions = {}): Promise<SparkEnv> {
  const conflicting = requirements.find((r) => /^pyspark\b/i.test(r.trim()));
  if (conflicting) {
    throw new KaonError({
      code: ErrorCode.invalidDefinition,
      what: `spark() requirements list ${JSON.stringify(conflicting)}, but Kaon pins ${PYSPARK_REQUIREMENT} (its jars are the Spark that runs the step)`,
      fix: 'remove pyspark from requirements',
    });
  }
  const java = await checkJava();
  const python = await ensurePythonEnv([PYSPARK_REQUIREMENT, ...requirements], opts);
  let home = homes.get(python);
  if (!home) {
    home = execFileP(python, ['-c', 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'], { timeout: 60_000 }).then(({ stdout }) => stdout.trim());
    home.catch(() => homes.delete(python));
    homes.set(python, home);
  }
  const sparkHome = await home;
  return { python, sparkHome, sparkSubmit: path.join(sparkHome, 'bin', 'spark-submit'), java };
}

/** The master a step runs on: its own, else the worker's $KAON_SPARK_MASTER, else local[2]. */
export function sparkMaster(run: Pick<SparkOptions, 'master'>, env: NodeJS.ProcessEnv = process.env): string {
  return run.master ?? (env.KAON_SPARK_MASTER || DEFAULT_SPARK_MASTER);
}

/**
 * Settings Kaon adds unless the step sets them: a free UI port (parallel steps must not collide on 4040), no
 * console progress bar (progress comes from the REST API), and a loopback driver for local masters.
 */
export function sparkConf(master: string, conf: Readonly<Record<string, string>> = {}): Record<string, string> {
  const local = master.startsWith('local');
  return {
    'spark.ui.port': '0',
    'spark.ui.showConsoleProgress': 'false',
    ...(local ? { 'spark.driver.host': '127.0.0.1', 'spark.driver.bindAddress': '127.0.0.1' } : {}),
    ...conf,
  };
}

/** The host name in the Spark UI link: the driver's (this machine, in client mode). */
export function driverHost(master: string, conf: Readonly<Record<string, string>> = {}): string {
  return conf['spark.driver.host'] ?? (master.startsWith('local') ? '127.0.0.1' : os.hostname());
}

/** spark-submit's arguments (client mode) for a step. */
export function sparkSubmitArgs(run: SparkOptions, o: { master: string; name: string; root: string }): string[] {
  const args = ['--master', o.master, '--deploy-mode', 'client', '--name', o.name];
  for (const [k, v] of Object.entries(sparkConf(o.master, run.conf))) args.push('--conf', `${k}=${v}`);
  if (run.packages?.length) args.push('--packages', run.packages.join(','));
  if (run.pyFiles?.length) args.push('--py-files', run.pyFiles.map((f) => path.resolve(o.root, f)).join(','));
  if (typeof run.app === 'string') args.push(path.resolve(o.root, run.app));
  else args.push('--class', run.app.mainClass, path.resolve(o.root, run.app.jar));
  return [...args, ...(run.args ?? [])];
}

interface JobData {
  status?: string;
  stageIds?: number[];
  numTasks?: number;
  numCompletedTasks?: number;
  numCompletedIndices?: number;
  numSkippedTasks?: number;
  numActiveStages?: number;
  numCompletedStages?: number;
  numSkippedStages?: number;
}
interface StageData {
  status?: string;
  name?: string;
}

export interface SparkProgress {
  stage: number;
  stages: number;
  tasks: number;
  tasksDone: number;
  activeStage?: string;
}

/** Jobs (and active stages) of the REST API as "stage 3/7, tasks 120/200". */
export function summariseJobs(jobs: readonly JobData[], stages: readonly StageData[] = []): SparkProgress {
  let stagesTotal = 0;
  let stagesDone = 0;
  let active = 0;
  let tasks = 0;
  let tasksDone = 0;
  for (const j of jobs) {
    stagesTotal += j.stageIds?.length ?? 0;
    stagesDone += (j.numCompletedStages ?? 0) + (j.numSkippedStages ?? 0);
    active += j.numActiveStages ?? 0;
    tasks += j.numTasks ?? 0;
    tasksDone += (j.numCompletedIndices ?? j.numCompletedTasks ?? 0) + (j.numSkippedTasks ?? 0);
  }
  const name = stages.find((s) => s.status === 'ACTIVE')?.name;
  return { stage: Math.min(stagesTotal, stagesDone + Math.min(active, 1)), stages: stagesTotal, tasks, tasksDone: Math.min(tasksDone, tasks), ...(name ? { activeStage: name } : {}) };
}

export function progressMessage(p: SparkProgress): string {
  // Stage names carry the call site with its full path: "collect at /srv/app/jobs/als.py:31" → "collect at als.py:31".
  const name = p.activeStage?.split('\n')[0]!.replace(/(^|\s)\/\S*\//g, '$1').slice(0, 60);
  return `stage ${p.stage}/${p.stages}, tasks ${p.tasksDone}/${p.tasks}${name ? ` (${name})` : ''}`;
}

/** Spark 3.5 logs the UI's port; the driver runs on this machine (client mode), so it is polled on loopback. */
const UI_PORT = /Successfully started service '?SparkUI'? on port (\d+)/;

/**
 * Watches one driver: finds its UI URL in the log, then polls the REST API. Progress only rises: a later job
 * adds tasks to the total, which would otherwise move the bar back.
 */
export class SparkWatcher {
  /** The link for people (the driver's host name). */
  url: string | undefined;
  /** Where Kaon polls the REST API. */
  private api: string | undefined;
  private appId: string | undefined;
  private best = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private stopped = false;

  constructor(
    private readonly host: string,
    private readonly pollMs = 1000,
  ) {}

  onLine(t: TailLine): void {
    if (this.api) return;
    const m = UI_PORT.exec(t.line);
    if (!m) return;
    this.url = `http://${this.host}:${m[1]}`;
    this.api = `http://127.0.0.1:${m[1]}`;
  }

  start(report: (p: { fraction?: number; message?: string; url?: string }) => void): () => void {
    this.timer = setInterval(() => {
      if (this.inFlight || this.stopped || !this.api) return;
      this.inFlight = true;
      this.poll()
        .then((p) => {
          if (!p || this.stopped) return;
          if (p.tasks > 0) this.best = Math.max(this.best, Math.min(0.99, p.tasksDone / p.tasks));
          report({ ...(p.tasks > 0 ? { fraction: this.best } : {}), message: progressMessage(p), url: this.url! });
        })
        .catch(() => undefined) // the driver is starting or stopping; the next poll tries again
        .finally(() => {
          this.inFlight = false;
        });
    }, this.pollMs);
    this.timer.unref();
    return () => {
      this.stopped = true;
      if (this.timer) clearInterval(this.timer);
    };
  }

  private async get<T>(p: string): Promise<T> {
    const res = await fetch(`${this.api}/api/v1/${p}`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return (await res.json()) as T;
  }

  private async poll(): Promise<SparkProgress | undefined> {
    if (!this.appId) {
      const apps = await this.get<{ id: string }[]>('applications');
      this.appId = apps[0]?.id;
      if (!this.appId) return undefined;
    }
    const id = encodeURIComponent(this.appId);
    const [jobs, stages] = await Promise.all([this.get<JobData[]>(`applications/${id}/jobs`), this.get<StageData[]>(`applications/${id}/stages?status=active`).catch(() => [])]);
    return summariseJobs(jobs, stages);
  }
}

/** Analysis errors: the job refers to something its input does not have; the same input fails the same way. */
const ANALYSIS = /\b(AnalysisException|ParseException|UNRESOLVED_COLUMN|UNRESOLVED_ROUTINE|PARSE_SYNTAX_ERROR|TABLE_OR_VIEW_NOT_FOUND|PATH_NOT_FOUND|DATATYPE_MISMATCH)\b/;
/** A lost executor (killed, out of memory, its machine gone): another attempt can succeed. */
const LOST = /ExecutorLostFailure|Lost executor|Executor lost|Worker lost|FetchFailed|Remote RPC client disassociated/i;
const INFO = /^\d\d\/\d\d\/\d\d \d\d:\d\d:\d\d INFO /;
const FRAME = /^\s+at |^\s*\.\.\. \d+ more$/;
const LOG_PREFIX = /^\d\d\/\d\d\/\d\d \d\d:\d\d:\d\d \w+ [\w$.]+: /;
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);
const EXCEPTION = /\b[\w.$]*(Exception|Error)\b:|Job aborted due to stage failure/;

/** Keeps the lines of a driver log that name exceptions (bounded), to classify a failure after exit. */
export class SparkErrorScan {
  readonly exceptions: string[] = [];
  onLine(t: TailLine): void {
    if (!EXCEPTION.test(t.line) || this.exceptions.length >= 200) return;
    this.exceptions.push(t.line.length > 1000 ? `${t.line.slice(0, 1000)}…` : t.line);
  }
}

/**
 * A failed driver as a KaonError: analysis errors → badInput (not retried), lost executors → retryable; either
 * way the Spark exception and the driver log's last 20 lines are in the message.
 */
export function classifySparkFailure(err: unknown, scan: SparkErrorScan, label: string): unknown {
  if (!(err instanceof KaonError) || (err.code !== ErrorCode.processFailed && err.code !== ErrorCode.badInput)) return err;
  const details = err.details as { tail?: string[]; exitCode?: number | null } | undefined;
  const lines = details?.tail;
  if (!details || lines === undefined) return err; // did not start
  const useful = lines.filter((l) => !INFO.test(l) && !FRAME.test(l));
  const last = (n: number, bytes: number) =>
    `\ndriver log, last lines${useful.length ? ' (INFO lines and stack frames left out)' : ''}:\n${formatTail((useful.length ? useful : lines).map((line) => ({ stream: 'stderr' as const, line: clip(line, 160) })), n, bytes)}`;
  const compact = { exitCode: details.exitCode, signal: (details as { signal?: unknown }).signal ?? null };
  const analysis = scan.exceptions.find((l) => ANALYSIS.test(l));
  const aborted = scan.exceptions.find((l) => /Job aborted due to stage failure/.test(l));
  const lost = aborted && LOST.test(aborted) ? aborted : aborted ? undefined : scan.exceptions.find((l) => LOST.test(l));
  const exception = analysis ?? lost ?? aborted ?? scan.exceptions.at(-1);
  const quoted = exception ? `: ${clip(exception.replace(LOG_PREFIX, '').trim(), 400)}` : '';
  if (analysis) {
    return new KaonError({
      code: ErrorCode.badInput,
      what: `${label} failed with a Spark analysis error (bad input, not retried)${quoted}${last(20, 2000)}`,
      fix: 'the job refers to a column, table, path or SQL its input does not have: correct the job or its input; a retry would fail the same way',
      retryable: false,
      details: compact,
      cause: err,
    });
  }
  if (lost) {
    return new KaonError({
      code: ErrorCode.processFailed,
      // Short: Temporal shows a retried attempt's failure (message and stack, which repeats it) only under 4 KiB.
      what: `${label} failed because Spark lost an executor (retried)${quoted}${last(6, 600)}`,
      fix: 'executors die when killed, out of memory (raise spark.executor.memory) or when their machine goes; the step is retried by its retry policy',
      retryable: true,
      details: compact,
      cause: err,
    });
  }
  return new KaonError({
    code: err.code,
    what: `${label} ${details.exitCode === null ? 'was killed' : `exited with code ${String(details.exitCode)}`}${quoted}${err.retryable ? last(6, 600) : last(20, 2000)}`,
    fix: err.fix ?? 'see the Spark exception and the driver log above',
    retryable: err.retryable,
    details: compact,
    cause: err,
  });
}
