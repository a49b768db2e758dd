/**
 * A step's secrets: declared by name in its contract (`secrets: ['HF_TOKEN']`), resolved on the worker when the
 * step runs, and kept out of everything that leaves the worker (invariant 8).
 *
 * Resolution, first match wins:
 *   1. the worker's environment: HF_TOKEN=…
 *   2. a file named by HF_TOKEN_FILE=/run/secrets/hf (Docker/Kubernetes style; one trailing newline is dropped)
 *   3. a file HF_TOKEN in the directory $KAON_SECRETS_DIR
 * A TS step reads `ctx.secrets.HF_TOKEN` (or `ctx.secret('HF_TOKEN')`); a process, Python, R or Spark step gets
 * HF_TOKEN in its environment (`kaon_step.secret('HF_TOKEN')` in Python).
 *
 * Redaction: every value is replaced by `[secret HF_TOKEN]` in step logs, heartbeats (progress, log tails), error
 * messages, stacks and details, cards and bookkeeping. An output that contains a value is refused.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorCode, fieldPath, KaonError } from '../definition/errors';
import type { StepDef } from '../definition/step';

/** Shorter values could not be told apart from ordinary text (redacting them would garble every log). */
export const MIN_SECRET_LENGTH = 4;

export type Redact = (text: string) => string;

export interface StepSecrets {
  values: Readonly<Record<string, string>>;
  /** Replaces every secret value in a string by `[secret NAME]`. */
  redact: Redact;
}

function howToProvide(name: string): string {
  return `set ${name} in the worker's environment, or ${name}_FILE=/path/to/a/file holding it, or put a file named ${name} in the directory $KAON_SECRETS_DIR; then restart the worker`;
}

function readSecretFile(file: string, name: string, step: string, via: string): string {
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new KaonError({
      code: ErrorCode.config,
      what: `secret ${name} of step "${step}" could not be read from ${file} (named by ${via}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      fix: `make ${file} a file the worker may read, or ${howToProvide(name)}`,
      retryable: false,
    });
  }
}

/** Resolve one secret on this worker; undefined when no source provides it. */
function lookup(name: string, step: string, env: NodeJS.ProcessEnv): string | undefined {
  const direct = env[name];
  if (direct !== undefined && direct !== '') return direct;
  const file = env[`${name}_FILE`];
  if (file) return readSecretFile(path.resolve(file), name, step, `${name}_FILE`);
  const dir = env.KAON_SECRETS_DIR;
  if (dir) {
    const p = path.join(path.resolve(dir), name);
    try {
      return readFileSync(p, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return readSecretFile(p, name, step, 'KAON_SECRETS_DIR');
    }
  }
  return undefined;
}

/** The secrets of a step, resolved now. A missing or too short one is a non-retryable error naming it. */
export function resolveSecrets(def: Pick<StepDef, 'name' | 'secrets'>, env: NodeJS.ProcessEnv = process.env): StepSecrets {
  const names = def.secrets ?? [];
  const values: Record<string, string> = {};
  for (const name of names) {
    const v = lookup(name, def.name, env);
    if (v === undefined) {
      throw new KaonError({ code: ErrorCode.config, what: `step "${def.name}" needs the secret ${name}, and this worker has none`, fix: howToProvide(name), retryable: false });
    }
    if (v.length < MIN_SECRET_LENGTH) {
      throw new KaonError({ code: ErrorCode.config, what: `secret ${name} of step "${def.name}" is ${v.length} character(s) long, too short to be kept out of logs (at least ${MIN_SECRET_LENGTH})`, fix: `check the value this worker has for ${name}: ${howToProvide(name)}`, retryable: false });
    }
    values[name] = v;
  }
  return { values: Object.freeze(values), redact: redactor(values) };
}

/** A redaction function for these values: the value itself and its JSON-escaped form, longest first. */
export function redactor(values: Readonly<Record<string, string>>): Redact {
  const pairs: [string, string][] = [];
  for (const [name, v] of Object.entries(values)) {
    pairs.push([v, `[secret ${name}]`]);
    const escaped = JSON.stringify(v).slice(1, -1);
    if (escaped !== v) pairs.push([escaped, `[secret ${name}]`]);
  }
  if (pairs.length === 0) return (s) => s;
  pairs.sort((a, b) => b[0].length - a[0].length);
  return (s) => {
    if (typeof s !== 'string') return s;
    let out = s;
    for (const [v, marker] of pairs) if (out.includes(v)) out = out.split(v).join(marker);
    return out;
  };
}

/** A copy of a JSON-like value with every string (keys included) redacted. */
export function redactValue<T>(value: T, redact: Redact, seen = new WeakSet<object>()): T {
  if (typeof value === 'string') return redact(value) as T;
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return value;
  seen.add(value);
  if (Array.isArray(value)) return value.map((v: unknown) => redactValue(v, redact, seen)) as T;
  if (value instanceof Error) return redactError(value, redact, seen) as T;
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [redact(k), redactValue(v, redact, seen)])) as T;
}

/** Redact an error in place (message, stack, KaonError's parts, details, the cause chain) and return it. */
export function redactError<E>(err: E, redact: Redact, seen = new WeakSet<object>()): E {
  if (!(err instanceof Error)) return (typeof err === 'string' ? redact(err) : err) as E;
  seen.add(err);
  const e = err as Error & Record<string, unknown>;
  for (const key of ['message', 'stack', 'what', 'fix', 'where'] as const) {
    const v = e[key];
    if (typeof v === 'string' && redact(v) !== v) {
      try {
        Object.defineProperty(e, key, { value: redact(v), writable: true, configurable: true, enumerable: key !== 'message' && key !== 'stack' });
      } catch {
        // A frozen error: the copy the caller serialises is redacted below anyway.
      }
    }
  }
  if (e.details !== undefined) {
    try {
      Object.defineProperty(e, 'details', { value: redactValue(e.details, redact, seen), writable: true, configurable: true, enumerable: true });
    } catch {
      // as above
    }
  }
  if (e.cause !== undefined && !(typeof e.cause === 'object' && e.cause !== null && seen.has(e.cause))) redactError(e.cause, redact, seen);
  return err;
}

/** Refuse a value (a step's output) that contains a secret: history must never hold one. */
export function assertNoSecret(value: unknown, values: Readonly<Record<string, string>>, subject: string): void {
  const names = Object.keys(values);
  if (names.length === 0) return;
  const find = (s: string) => names.find((n) => s.includes(values[n]!));
  const walk = (v: unknown, at: PropertyKey[]): void => {
    if (typeof v === 'string') {
      const hit = find(v);
      if (hit) {
        throw new KaonError({
          code: ErrorCode.invalidOutput,
          what: `${subject} contains the value of secret ${hit} at ${fieldPath(at)}; outputs go into workflow history, which must never hold a secret`,
          fix: `leave the secret out of the output (return a name or an id that refers to it), and rotate ${hit} if it was written elsewhere`,
          retryable: false,
        });
      }
      return;
    }
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...at, i]));
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        walk(k, [...at, k]);
        walk(x, [...at, k]);
      }
    }
  };
  walk(value, []);
}
