// One mechanism for the errors the operating system raises at Kaon's boundaries (files, folders, sockets): a raw
// `ENOTDIR: not a directory, mkdir '…'` becomes a sentence that says what Kaon was doing, which setting or path
// is at fault, and the fix. Pure (it reads only the error's code and path), so any seam may use it.
import { ErrorCode, KaonError } from './errors';

export interface SystemErrorContext {
  /** What Kaon was doing, as a phrase: "writing the artifact store", "reading --params file". */
  doing: string;
  /** The setting that chose the path or address: "KAON_ARTIFACTS", "-o", "KAON_S3_ENDPOINT". */
  setting?: string;
  /** The path or address at fault; default: the error's own `path` / `address:port`. */
  path?: string;
}

type Errno = NodeJS.ErrnoException & { address?: string; port?: number };

/** The errno codes explained here; anything else is not a system error Kaon can explain. */
export const EXPLAINED_CODES = ['ENOTDIR', 'EEXIST', 'EISDIR', 'ENOENT', 'EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT', 'ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ETIMEDOUT', 'ENAMETOOLONG'] as const;

/** The errno code of err or of the first error in its cause chain (SDKs wrap socket errors). */
export function systemErrorCode(err: unknown): string | undefined {
  for (let e = err as Errno | undefined, depth = 0; e && depth < 5; e = (e as { cause?: Errno }).cause, depth++) {
    if (typeof e.code === 'string' && (EXPLAINED_CODES as readonly string[]).includes(e.code)) return e.code;
    const errors = (e as { errors?: unknown[] }).errors; // AggregateError of a dual-stack connect
    if (Array.isArray(errors)) for (const inner of errors) { const c = systemErrorCode(inner); if (c) return c; }
  }
  return undefined;
}

function firstWith(err: unknown, code: string): Errno | undefined {
  for (let e = err as Errno | undefined, depth = 0; e && depth < 5; e = (e as { cause?: Errno }).cause, depth++) {
    if (e.code === code) return e;
    const errors = (e as { errors?: unknown[] }).errors;
    if (Array.isArray(errors)) for (const inner of errors) { const f = firstWith(inner, code); if (f) return f; }
  }
  return undefined;
}

/**
 * A KaonError for a system error (code config; retryable only where the environment may heal by itself: a full
 * disk, a server that is down), or undefined when err is no system error Kaon explains.
 */
export function explainSystemError(err: unknown, ctx: SystemErrorContext): KaonError | undefined {
  const code = systemErrorCode(err);
  if (!code) return undefined;
  const e = firstWith(err, code)!;
  const at = ctx.path ?? e.path ?? (e.address ? `${e.address}${e.port ? `:${e.port}` : ''}` : undefined) ?? 'the path';
  const by = ctx.setting ? ` (set by ${ctx.setting})` : '';
  const point = ctx.setting ? `point ${ctx.setting} somewhere else` : 'use another path';
  const make = (what: string, fix: string, retryable = false): KaonError =>
    new KaonError({ code: ErrorCode.config, what: `${ctx.doing} failed: ${what}`, fix, retryable, cause: err, details: { errno: code, path: at, ...(ctx.setting ? { setting: ctx.setting } : {}) } });
  switch (code) {
    case 'ENOTDIR':
    case 'EEXIST':
      return make(`${at}${by}, or a folder on its way, is a file where Kaon needs a folder [${code}]`, `remove or rename that file, or ${point} (to a folder)`);
    case 'EISDIR':
      return make(`${at}${by} is a folder where Kaon needs a file [${code}]`, `name a file, e.g. ${at.replace(/\/+$/, '')}/<name>, or ${point}`);
    case 'ENOENT':
      return make(`${at}${by} does not exist, or a folder on its way is missing [${code}]`, `create the missing folder (mkdir -p), fix the path, or ${point}`);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return make(`permission denied on ${at}${by}${code === 'EROFS' ? ': the filesystem is read-only' : ''} [${code}]`, `make it writable for this user (chmod/chown), or ${point} (to a folder this user may write)`);
    case 'ENOSPC':
    case 'EDQUOT':
      return make(`no space left for ${at}${by} [${code}]`, `free disk space (old runs' artifacts: kaon cache), or ${point} (to a larger disk)`, true);
    case 'ENAMETOOLONG':
      return make(`the path ${at.slice(0, 80)}…${by} is too long for the filesystem [${code}]`, `use a shorter path, or ${point}`);
    default:
      // Sockets: ECONNREFUSED, ECONNRESET, ENOTFOUND, EAI_AGAIN, EHOSTUNREACH, ETIMEDOUT.
      return make(`nothing answered at ${at}${by}: ${code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'the host name does not resolve' : code === 'ECONNREFUSED' ? 'the connection was refused' : 'the connection failed'} [${code}]`, `start the server there, or ${ctx.setting ? `set ${ctx.setting} to its address` : 'use the right address'}`, true);
  }
}

/** Rethrow err explained when it is a system error, else as it is. */
export function rethrowSystemError(err: unknown, ctx: SystemErrorContext): never {
  throw explainSystemError(err, ctx) ?? err;
}

/** Await fn, explaining a system error it throws. */
export async function explainingSystemErrors<R>(ctx: SystemErrorContext, fn: () => Promise<R>): Promise<R> {
  try {
    return await fn();
  } catch (err) {
    rethrowSystemError(err, ctx);
  }
}
