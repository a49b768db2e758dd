import type { RetryPolicy } from '@temporalio/common';
import type { z } from 'zod';
import { toMs, type Duration } from './duration';
import { ErrorCode, KaonError } from './errors';
import { MAX_NAME } from './internal/ids';

/**
 * How a step runs, as plain data. Resolved on the worker only (invariant 2), so a contract that carries one
 * stays importable by workflow code. TS-function steps carry none: their function is attached on the worker
 * with `implementStep` (kaon/worker), because a function value would drag its imports into the workflow bundle.
 */
export type StepRunner =
  | { kind: 'process'; argv: readonly string[]; env?: Readonly<Record<string, string>>; cwd?: string }
  | { kind: 'python'; script: string; requirements?: readonly string[]; args?: readonly string[] }
  | ({ kind: 'spark' } & SparkOptions);

/** A Spark application: a PySpark script, or a JVM jar and its main class. */
export type SparkApp = string | { jar: string; mainClass: string };

export interface SparkOptions {
  /** `'jobs/als.py'` (relative to the project root), or `{ jar, mainClass }`. */
  app: SparkApp;
  /**
   * Where it runs: `local[2]` (default), `spark://host:7077`, `k8s://https://…`, `yarn`. $KAON_SPARK_MASTER on the
   * worker overrides the default (not an explicit master), so the same step moves to a cluster with no code change.
   */
  master?: string;
  /** `--conf` settings, e.g. `{ 'spark.executor.memory': '2g' }`. */
  conf?: Readonly<Record<string, string>>;
  /** Maven coordinates for `--packages`, e.g. `org.apache.hadoop:hadoop-aws:3.3.4` (s3a:// inputs). */
  packages?: readonly string[];
  /** `--py-files`: .py/.zip/.egg files shipped to the executors (relative to the project root). */
  pyFiles?: readonly string[];
  /** Extra PyPI packages for the driver's and executors' Python, next to Kaon's pinned pyspark. */
  requirements?: readonly string[];
  /** Arguments after the application. */
  args?: readonly string[];
}

/** A Python script step (executed with a virtualenv built from `requirements` on first use). */
export function python(script: string, opts: { requirements?: readonly string[]; args?: readonly string[] } = {}): StepRunner {
  return { kind: 'python', script, ...opts };
}

/**
 * A Spark step: runs `spark-submit` (client mode, so the driver speaks the same protocol as python() steps) from
 * the pinned pyspark Kaon installs into a cached environment. Needs Java 17+ on the worker.
 */
export function spark(opts: SparkOptions): StepRunner {
  return { kind: 'spark', ...opts };
}

/** Any program as an argv array (never through a shell): R, shell scripts, Spark submit, binaries. */
export function command(argv: readonly string[], opts: { env?: Record<string, string>; cwd?: string } = {}): StepRunner {
  return { kind: 'process', argv, ...opts };
}

export interface CacheOptions {
  /** Extra salt: bump it to invalidate cached outputs without bumping the step version. */
  version?: string | number;
}

export interface StepOptions {
  /** Worker pool that runs this step (`kaon worker --queues <queue>`). Omit for the pipeline's own queue. */
  queue?: string;
  retry?: RetryPolicy;
  /** Start-to-close timeout of one attempt. Default 10 minutes. */
  timeout?: Duration;
  /** Schedule-to-close timeout across all attempts, including waiting for a worker. */
  scheduleToClose?: Duration;
  /** Heartbeat timeout; long steps report progress at least this often. */
  heartbeat?: Duration;
  /** Shown in the Temporal Web UI next to the step key. */
  summary?: string;
  /** Cross-run caching (opt-in). */
  cache?: boolean | CacheOptions;
}

export interface StepConfig<I extends z.ZodType, O extends z.ZodType> extends StepOptions {
  name: string;
  /** A positive whole number; bump it when the behaviour changes (older cached outputs are then not reused). */
  version: number;
  description?: string;
  input: I;
  output: O;
  run?: StepRunner;
  /**
   * Names of the secrets the step needs, e.g. ['HF_TOKEN']: resolved on the worker when the step runs (from its
   * environment, NAME_FILE, or $KAON_SECRETS_DIR/NAME), given to a TS step as ctx.secrets and to a process step in
   * its environment, and redacted from logs, heartbeats and errors. Only names live in the contract.
   */
  secrets?: readonly string[];
}

export interface StepDef<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  readonly kind: 'kaon.step';
  readonly name: string;
  readonly version: number;
  readonly description: string | undefined;
  readonly input: I;
  readonly output: O;
  readonly options: Readonly<StepOptions>;
  readonly run: StepRunner | undefined;
  /** The secrets the step declares (names only). */
  readonly secrets: readonly string[];
}

/** What the caller passes to a step (before input defaults/transforms). */
export type StepInput<S extends StepDef> = z.input<S['input']>;
/** What the step implementation receives (after parsing). */
export type StepParsedInput<S extends StepDef> = z.output<S['input']>;
/** What the implementation returns (before output parsing). */
export type StepReturn<S extends StepDef> = z.input<S['output']>;
/** What the workflow receives. */
export type StepOutput<S extends StepDef> = z.output<S['output']>;

// The name is the Temporal workflow or activity type, and the start of the ids built from it (internal/ids.ts).
const NAME = new RegExp(`^[A-Za-z][A-Za-z0-9_.-]{0,${MAX_NAME - 1}}$`);
const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,99}$/;

/** Secret names are environment variable names; Kaon's own (KAON_*) and the basics a program needs are refused. */
function validateSecrets(secrets: unknown, where: string): readonly string[] {
  if (secrets === undefined) return [];
  const bad = (what: string, fix: string): never => {
    throw new KaonError({ code: ErrorCode.invalidDefinition, what, where, fix });
  };
  if (!Array.isArray(secrets)) bad(`secrets must be a list of names, got ${JSON.stringify(secrets)}`, "pass e.g. secrets: ['HF_TOKEN']");
  const seen = new Set<string>();
  for (const s of secrets as unknown[]) {
    if (typeof s !== 'string' || !SECRET_NAME.test(s)) bad(`secret name ${JSON.stringify(s)} is not an environment variable name`, "use letters, digits and '_', not starting with a digit, e.g. 'HF_TOKEN' (the value is read on the worker, never written in the contract)");
    const name = s as string;
    if (/^KAON_/i.test(name) || ['PATH', 'HOME', 'USER', 'LANG', 'TMPDIR', 'PYTHONPATH'].includes(name)) bad(`secret name ${JSON.stringify(name)} is reserved (Kaon's own variables and the basics of a step's environment)`, 'pick another name, e.g. MY_SERVICE_TOKEN');
    if (name.endsWith('_FILE')) bad(`secret name ${JSON.stringify(name)} ends in _FILE, which Kaon reads as "the file holding the secret"`, `declare ${JSON.stringify(name.slice(0, -5))} and set ${name}=/path on the worker`);
    if (seen.has(name)) bad(`secret ${JSON.stringify(name)} is declared twice`, 'list each secret once');
    seen.add(name);
  }
  return Object.freeze([...(secrets as string[])]);
}

export function assertName(kind: string, name: unknown): asserts name is string {
  if (typeof name === 'string' && /^kaon\./i.test(name)) {
    throw new KaonError({ code: ErrorCode.invalidDefinition, what: `${kind} name ${JSON.stringify(name)} starts with "kaon.", which Kaon reserves for its own workflows and activities`, fix: 'pick another name' });
  }
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new KaonError({
      code: ErrorCode.invalidDefinition,
      what: `${kind} name ${typeof name === 'string' && name.length > MAX_NAME ? `${JSON.stringify(name.slice(0, 40))}… (${name.length} characters, over ${MAX_NAME})` : JSON.stringify(name)} is not valid`,
      fix: `use 1-${MAX_NAME} characters: a letter, then letters, digits, '_', '-' or '.' (e.g. 'trainModel')`,
    });
  }
}

/**
 * Check a step's options (at defineStep, and a call's overrides at k.step), so a bad retry policy or timeout fails
 * where it is written — not as a command Temporal refuses and retries for ever.
 */
export function validateStepOptions(o: Partial<StepOptions>, where: string): void {
  const bad = (what: string, fix: string): never => {
    throw new KaonError({ code: ErrorCode.invalidDefinition, what, where, fix });
  };
  for (const key of ['timeout', 'scheduleToClose', 'heartbeat'] as const) {
    const d = o[key];
    if (d !== undefined && toMs(d, `${where}, option ${key}`) <= 0) bad(`option ${key} is ${JSON.stringify(d)}`, `give a positive duration such as '30s', or leave ${key} out`);
  }
  if (o.queue !== undefined && (typeof o.queue !== 'string' || !/^[A-Za-z0-9_.-]{1,100}$/.test(o.queue))) {
    bad(`queue ${JSON.stringify(o.queue)} is not a valid queue name`, "use letters, digits, '_', '-' or '.', e.g. queue: 'gpu'");
  }
  const r = o.retry;
  if (r === undefined) return;
  if (typeof r !== 'object' || r === null) bad(`retry must be an object, got ${JSON.stringify(r)}`, 'pass e.g. retry: { maximumAttempts: 5, backoffCoefficient: 2 }');
  if (r.backoffCoefficient !== undefined && !(typeof r.backoffCoefficient === 'number' && r.backoffCoefficient >= 1)) {
    bad(`retry.backoffCoefficient ${JSON.stringify(r.backoffCoefficient)} is below 1`, 'use 1 (a constant interval) or more, e.g. 2 (each retry waits twice as long)');
  }
  if (r.maximumAttempts !== undefined && !(Number.isInteger(r.maximumAttempts) && r.maximumAttempts >= 0)) {
    bad(`retry.maximumAttempts ${JSON.stringify(r.maximumAttempts)} is not a whole number ≥ 0`, 'use e.g. 3; 1 means no retry, 0 retries for ever');
  }
  const initial = r.initialInterval === undefined ? undefined : toMs(r.initialInterval as Duration, `${where}, retry.initialInterval`);
  const max = r.maximumInterval === undefined ? undefined : toMs(r.maximumInterval as Duration, `${where}, retry.maximumInterval`);
  if (initial !== undefined && initial <= 0) bad(`retry.initialInterval ${JSON.stringify(r.initialInterval)} is not positive`, "use e.g. '1s'");
  if (initial !== undefined && max !== undefined && max < initial) bad(`retry.maximumInterval (${String(r.maximumInterval)}) is below retry.initialInterval (${String(r.initialInterval)})`, 'make maximumInterval at least initialInterval');
  if (r.nonRetryableErrorTypes !== undefined && !(Array.isArray(r.nonRetryableErrorTypes) && r.nonRetryableErrorTypes.every((t) => typeof t === 'string'))) {
    bad('retry.nonRetryableErrorTypes must be a list of error type names', "pass e.g. ['KAON_BAD_INPUT']");
  }
}

/** Define a step: a typed, versioned contract shared by workflow, worker and client. */
export function defineStep<I extends z.ZodType, O extends z.ZodType>(config: StepConfig<I, O>): StepDef<I, O> {
  assertName('step', config.name);
  const where = `step "${config.name}"`;
  if (typeof config.input?.safeParse !== 'function' || typeof config.output?.safeParse !== 'function') {
    throw new KaonError({
      code: ErrorCode.invalidDefinition,
      what: 'input and output must be zod schemas',
      where,
      fix: 'pass e.g. input: z.object({ ... }), output: z.object({ ... })',
    });
  }
  const { name, version, description, input, output, run, secrets: declared, ...options } = config;
  if (!Number.isInteger(version) || version < 1) {
    throw new KaonError({ code: ErrorCode.invalidDefinition, what: `version ${JSON.stringify(version)} is not a positive whole number`, where, fix: 'give the step version: 1, and bump it when its behaviour changes (cached outputs of older versions are then not reused)' });
  }
  validateStepOptions(options, where);
  const secrets = validateSecrets(declared, where);
  return Object.freeze({ kind: 'kaon.step', name, version, description, input, output, options: Object.freeze(options), run, secrets });
}

export function isStepDef(v: unknown): v is StepDef {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'kaon.step';
}
