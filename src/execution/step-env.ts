/**
 * The environment of a step process: an allow-list of the worker's variables, never the whole of it (invariant 8).
 * A worker's environment holds TEMPORAL_API_KEY, AWS keys, KAON_ENCRYPTION_KEY_FILE…; a step sees only
 *   - the basics a program needs: PATH, HOME, USER, LANG, LC_*, TZ, TMPDIR, TERM … (BASE_ALLOW),
 *   - what its runner needs: JAVA_HOME, SPARK_*, PYSPARK_*, HADOOP_CONF_DIR for Spark; R_* for R (command() steps),
 *   - names the worker adds with KAON_STEP_ENV_ALLOW=NAME,PREFIX_* (comma-separated; `*` only at the end),
 *   - then the runner's own variables (Kaon's protocol vars, the venv's), the step's declared `env`, its secrets.
 *
 * Example: `KAON_STEP_ENV_ALLOW=HF_HOME,WANDB_* kaon worker`.
 */
import { ErrorCode, KaonError } from '../definition/errors';
import type { StepRunner } from '../definition/step';

/** Passed to every step process when the worker has them. */
export const BASE_ALLOW: readonly string[] = [
  'PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LANGUAGE', 'LC_*', 'TZ', 'TMPDIR', 'TEMP', 'TMP', 'TERM',
  'SSL_CERT_FILE', 'SSL_CERT_DIR', 'PYTHONPATH',
];

/** Passed in addition to the steps of one runner kind. */
export const RUNNER_ALLOW: Readonly<Record<StepRunner['kind'], readonly string[]>> = {
  process: ['R_*', 'JAVA_HOME'],
  python: [],
  spark: ['JAVA_HOME', 'SPARK_*', 'PYSPARK_*', 'HADOOP_CONF_DIR', 'YARN_CONF_DIR', 'KAON_SPARK_MASTER'],
};

const ENTRY = /^[A-Za-z_][A-Za-z0-9_]*\*?$/;

/** The worker's extra allow-list entries from $KAON_STEP_ENV_ALLOW; a malformed entry is a config error. */
export function extraAllow(env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = env.KAON_STEP_ENV_ALLOW;
  if (!raw?.trim()) return [];
  const entries = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const e of entries) {
    if (!ENTRY.test(e)) {
      throw new KaonError({
        code: ErrorCode.config,
        what: `KAON_STEP_ENV_ALLOW has the entry ${JSON.stringify(e)}, which is not a variable name or a PREFIX_*`,
        fix: 'list names and prefixes separated by commas, e.g. KAON_STEP_ENV_ALLOW=HF_HOME,WANDB_*',
        retryable: false,
      });
    }
  }
  return entries;
}

function allowed(name: string, allow: readonly string[]): boolean {
  return allow.some((a) => (a.endsWith('*') ? name.startsWith(a.slice(0, -1)) : name === a));
}

export interface StepEnvParts {
  kind: StepRunner['kind'];
  /** The worker's environment (default process.env), filtered by the allow-lists. */
  worker?: NodeJS.ProcessEnv;
  /** The runner's variables: Kaon's protocol vars, the venv's, Spark's homes. */
  runner?: Readonly<Record<string, string | undefined>>;
  /** The step's declared env (command(argv, { env })). */
  declared?: Readonly<Record<string, string>>;
  /** The step's resolved secrets. */
  secrets?: Readonly<Record<string, string>>;
}

/** The one function that builds a step process's complete environment. */
export function stepEnv(parts: StepEnvParts): Record<string, string> {
  const worker = parts.worker ?? process.env;
  const allow = [...BASE_ALLOW, ...RUNNER_ALLOW[parts.kind], ...extraAllow(worker)];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(worker)) if (v !== undefined && allowed(k, allow)) env[k] = v;
  for (const layer of [parts.runner, parts.declared, parts.secrets]) {
    for (const [k, v] of Object.entries(layer ?? {})) if (v !== undefined) env[k] = v;
  }
  return env;
}
