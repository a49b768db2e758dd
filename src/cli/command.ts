// The shape of a CLI command and of the streams it writes to. Commands never touch process.stdout or
// process.exit directly, so tests run them in-process with captured output.
import { KaonError } from '../definition/errors';
import { escapeForEcho } from './echo';

export interface Output {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
  readonly rows?: number;
}

export interface CliIo {
  stdout: Output;
  stderr: Output;
  /** Where the project is looked up from. */
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Aborted on SIGINT/SIGTERM: long-running commands stop their loops and clean up. */
  signal?: AbortSignal;
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Placeholder in usage: `--port <port>`. */
  value?: string;
  description: string;
}

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export interface CommandContext {
  io: CliIo;
  values: OptionValues;
  positionals: string[];
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** Positional arguments, in order. */
  args?: { name: string; required: boolean; description: string }[];
  options: Record<string, OptionSpec>;
  /** Extra usage lines: examples, environment. */
  notes?: string[];
  /** Resolves to the exit code. */
  run(ctx: CommandContext): Promise<number>;
}

export const USAGE_ERROR = 'KAON_USAGE';

/** A mistake in how the command was called: exit code 2, fix names the flag. */
export function usageError(command: string, what: string, fix?: string): KaonError {
  return new KaonError({ code: USAGE_ERROR, what, fix: fix ?? `see \`kaon ${command} --help\`` });
}

/** Write a line (or lines). Control characters other than newlines and tabs are escaped: ids in it are echoed safely. */
export function say(out: Output, text = ''): void {
  out.write(`${escapeForEcho(text, { lines: true })}\n`);
}

export function str(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function flag(values: OptionValues, name: string): boolean {
  return values[name] === true;
}

/** A repeatable, comma-separable list option: `--queues a,b --queues c` → [a, b, c]. */
export function list(values: OptionValues, name: string): string[] | undefined {
  const v = values[name];
  const raw = Array.isArray(v) ? v : typeof v === 'string' ? [v] : undefined;
  if (!raw) return undefined;
  return raw.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
}

export function int(command: string, values: OptionValues, name: string, fallback: number, min = 0): number {
  const v = str(values, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw usageError(command, `--${name} ${JSON.stringify(v)} is not a whole number ≥ ${min}`, `pass e.g. --${name} ${Math.max(min, fallback)}`);
  return n;
}
