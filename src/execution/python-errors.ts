/**
 * Python failures that no retry can fix, read from the end of a python() step's stderr: a script (or a module it
 * imports) that does not parse, and an import of a module its environment does not have. Both are facts of the
 * code and its requirements, so the attempt fails non-retryably, naming the file and line or the module.
 */
import { ErrorCode, KaonError } from '../definition/errors';
import type { TailLine } from './process';

const KEEP = 60;
const PARSE_ERRORS = new Set(['SyntaxError', 'IndentationError', 'TabError']);

/** Watches a Python step's stderr; `classify` turns a plain exit-1 failure into a non-retryable one when it should. */
export class PythonErrorScan {
  private readonly lines: string[] = [];

  onLine(t: TailLine): void {
    if (t.stream !== 'stderr') return;
    this.lines.push(t.line);
    if (this.lines.length > KEEP) this.lines.shift();
  }

  /** The non-retryable error to fail with instead of `err`, or `err` itself. */
  classify(err: unknown, label: string, script: string, provisioned = true): unknown {
    if (!(err instanceof KaonError) || !err.retryable || err.code !== ErrorCode.processFailed) return err;
    const d = err.details as { exitCode?: number | null; signal?: string | null } | undefined;
    if (d?.exitCode !== 1 || d.signal) return err; // 1: Python's exit code for an uncaught exception
    const lines = this.lines.filter((l) => l.trim() !== '');
    const last = lines.at(-1) ?? '';
    const m = /^([A-Za-z_][\w.]*)(?::\s?(.*))?$/.exec(last);
    if (!m) return err;
    const kind = m[1]!.split('.').pop()!;
    const text = m[2] ?? '';
    if (PARSE_ERRORS.has(kind)) {
      let where = script;
      for (let i = lines.length - 2; i >= 0; i--) {
        const f = /^\s*File "(.+)", line (\d+)/.exec(lines[i]!);
        if (f) {
          where = `${f[1]} line ${f[2]}`;
          break;
        }
      }
      return new KaonError({
        code: ErrorCode.invalidDefinition,
        what: `${label} does not parse: ${kind} at ${where}: ${text}`,
        fix: `correct the code at ${where} (python -m py_compile ${where.replace(/ line \d+$/, '')} checks it without running); this failure is not retried`,
        retryable: false,
        details: err.details,
        cause: err,
      });
    }
    if (kind === 'ModuleNotFoundError') {
      const mod = /No module named '([^']+)'/.exec(text)?.[1];
      return new KaonError({
        code: ErrorCode.invalidDefinition,
        what: `${label} imports ${mod ? `the module "${mod}"` : 'a module'}, which its Python environment does not have (${last})`,
        fix: `${provisioned ? 'add the package that provides it to the step\'s requirements' : 'run the script as a python() step with the package in its requirements (Kaon then provisions it), or install it into the interpreter the command runs'}, python('${script}', { requirements: ['${mod?.split('.')[0] ?? 'package'}'] }) (the pip name may differ from the module's), or correct the import; this failure is not retried`,
        retryable: false,
        details: err.details,
        cause: err,
      });
    }
    return err;
  }
}
