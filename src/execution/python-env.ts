/**
 * Python environments for python() steps, provisioned on first use and cached under `.kaon/venvs/` (invariant 6).
 *
 * One virtualenv per (sorted requirements, base interpreter version): `<kaonHome>/venvs/<sha256 prefix>/`.
 * Built in a temp folder and renamed into place, so a half-built env is never used and concurrent builders (steps
 * in one worker, or several workers on one machine) all end up on the same env. A step with no requirements runs
 * on the base interpreter directly: no build at all, and kaon_step.py needs nothing — but such a script sees the
 * base interpreter's site-packages, so declare every package a script imports to get an isolated, reproducible env.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ErrorCode, KaonError } from '../definition/errors';
import type { StepLogger } from './implement';
import { formatTail, runProcess } from './process';

export interface PythonEnvOptions {
  /** Base interpreter. Default $KAON_PYTHON or `python3` on PATH. */
  python?: string;
  /**
   * Cache root (Kaon's home, `.kaon/`): environments go to `<home>/venvs/`. Default $KAON_PYTHON_ENVS (the venvs
   * folder itself); one of them is needed for steps with requirements. The runtime passes kaonHome().
   */
  home?: string;
  /** Progress messages while building. Default: stderr. */
  say?: (message: string) => void;
  /** Receives pip's output lines. */
  log?: StepLogger;
  /** Abort the build (the temp folder is removed). */
  signal?: AbortSignal;
  /** Whole build (venv + pip install) time limit. Default 20 minutes. */
  timeoutMs?: number;
}

const MARKER = 'kaon-env.json';
const inFlight = new Map<string, Promise<string>>();
const baseInfo = new Map<string, Promise<{ executable: string; version: string }>>();

function venvPython(dir: string): string {
  return process.platform === 'win32' ? path.join(dir, 'Scripts', 'python.exe') : path.join(dir, 'bin', 'python');
}

async function describeBase(python: string): Promise<{ executable: string; version: string }> {
  let p = baseInfo.get(python);
  if (!p) {
    p = promisify(execFile)(python, ['-c', 'import sys, json; print(json.dumps([sys.executable, sys.version]))'], { timeout: 30_000 })
      .then(({ stdout }) => {
        const [executable, version] = JSON.parse(stdout) as [string, string];
        return { executable, version };
      })
      .catch((err: unknown) => {
        baseInfo.delete(python);
        throw new KaonError({
          code: ErrorCode.config,
          what: `Python interpreter ${JSON.stringify(python)} could not run: ${(err as Error).message}`,
          fix: 'install Python 3 (with the venv module) on the worker, or set KAON_PYTHON to its path',
          retryable: false,
          cause: err,
        });
      });
    baseInfo.set(python, p);
  }
  return p;
}

function checkRequirements(requirements: readonly string[]): string[] {
  const out = requirements.map((r) => r.trim()).filter((r) => r.length > 0);
  for (const r of out) {
    // Each entry becomes one pip argument: options or line breaks would change what pip does.
    if (r.startsWith('-') || /[\r\n]/.test(r)) {
      throw new KaonError({
        code: ErrorCode.invalidDefinition,
        what: `Python requirement ${JSON.stringify(r)} is not a requirement specifier`,
        fix: "list packages as pip specifiers, e.g. requirements: ['scikit-learn==1.5.2', 'pandas>=2']; pip options belong in pip.conf or PIP_* environment variables",
      });
    }
  }
  return [...new Set(out)].sort();
}

/** The cache key of an environment: its sorted requirements and the exact base interpreter. */
export function pythonEnvKey(requirements: readonly string[], pythonVersion: string): string {
  return createHash('sha256')
    .update(JSON.stringify({ requirements: [...requirements].sort(), python: pythonVersion }))
    .digest('hex')
    .slice(0, 16);
}

async function isReady(dir: string): Promise<boolean> {
  return existsSync(path.join(dir, MARKER)) && existsSync(venvPython(dir));
}

/** Pip failures caused by the network are worth retrying; a bad specifier is not. */
const NETWORK = /NewConnectionError|Temporary failure in name resolution|Max retries exceeded|ReadTimeoutError|ConnectionResetError|Connection refused|Network is unreachable|ProxyError|SSLError/i;

/**
 * The path of a python executable with `requirements` installed. Builds (once) a cached virtualenv; idempotent and
 * safe to call concurrently, from one process or many.
 */
export async function ensurePythonEnv(requirements: readonly string[], opts: PythonEnvOptions = {}): Promise<string> {
  const python = opts.python ?? process.env.KAON_PYTHON ?? 'python3';
  const reqs = checkRequirements(requirements);
  const base = await describeBase(python);
  if (reqs.length === 0) return base.executable;
  const key = pythonEnvKey(reqs, `${base.executable}|${base.version}`);
  // KAON_PYTHON_ENVS shares environments between projects (or test homes); they are keyed by content anyway.
  const root = opts.home ? path.join(opts.home, 'venvs') : process.env.KAON_PYTHON_ENVS ? path.resolve(process.env.KAON_PYTHON_ENVS) : undefined;
  if (root === undefined) {
    throw new KaonError({
      code: ErrorCode.config,
      what: `no folder for the Python environment of [${reqs.join(', ')}]: no home was given and KAON_PYTHON_ENVS is unset`,
      fix: 'pass { home } (createRunnerExecutors({ pythonEnv: { home } }); the runtime\'s defaultExecutors passes <project>/.kaon) or set KAON_PYTHON_ENVS',
      retryable: false,
    });
  }
  const dir = path.join(root, key);
  if (await isReady(dir)) return venvPython(dir);
  let p = inFlight.get(dir);
  if (!p) {
    p = build(dir, base.executable, reqs, opts).finally(() => inFlight.delete(dir));
    inFlight.set(dir, p);
  }
  return p;
}

async function build(dir: string, basePython: string, reqs: string[], opts: PythonEnvOptions): Promise<string> {
  const say = opts.say ?? ((m: string) => process.stderr.write(`${m}\n`));
  const root = path.dirname(dir);
  await mkdir(root, { recursive: true });
  const tmp = path.join(root, `.tmp-${path.basename(dir)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const started = Date.now();
  const deadline = started + (opts.timeoutMs ?? 20 * 60_000);
  say(`kaon: building Python environment for [${reqs.join(', ')}] in ${dir} (first use; cached afterwards)…`);
  try {
    const common = { env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1', PYTHONUNBUFFERED: '1' }, ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.log ? { log: opts.log } : {}) };
    await runProcess({ argv: [basePython, '-m', 'venv', tmp], label: 'python -m venv', timeoutMs: Math.max(1000, deadline - Date.now()), ...common }).catch((err: unknown) => {
      throw new KaonError({
        code: ErrorCode.config,
        what: `could not create a virtualenv with ${basePython}: ${(err as Error).message}`,
        fix: 'install the venv module for this Python (Debian/Ubuntu: apt-get install python3-venv), or set KAON_PYTHON to a Python that has it',
        retryable: false,
        cause: err,
      });
    });
    const pipArgs = ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', ...reqs];
    try {
      await runProcess({ argv: [venvPython(tmp), ...pipArgs], label: 'pip install', timeoutMs: Math.max(1000, deadline - Date.now()), tailLines: 60, ...common });
    } catch (err) {
      if (!(err instanceof KaonError) || err.code === ErrorCode.timeout) throw err;
      const lines = (err.details as { tail?: string[] } | undefined)?.tail ?? [];
      const errors = lines.filter((l) => /^ERROR:|error:/i.test(l));
      const quoted = formatTail((errors.length ? errors : lines).map((line) => ({ stream: 'stderr' as const, line })), 12);
      const network = lines.some((l) => NETWORK.test(l));
      throw new KaonError({
        code: network ? ErrorCode.processFailed : ErrorCode.invalidDefinition,
        what: `pip could not install the Python requirements [${reqs.join(', ')}]${network ? ' (network error)' : ''}; pip said:\n${quoted}`,
        fix: network
          ? 'check that this worker reaches PyPI (or your index: PIP_INDEX_URL); the step is retried'
          : `correct the requirement names/versions in the step's python(script, { requirements }); reproduce with: python3 -m venv /tmp/v && /tmp/v/bin/pip install ${reqs.map((r) => `'${r}'`).join(' ')}`,
        retryable: network,
        cause: err,
      });
    }
    await fixPaths(tmp, dir);
    await writeFile(path.join(tmp, MARKER), `${JSON.stringify({ requirements: reqs, python: basePython, builtAt: new Date().toISOString() }, null, 2)}\n`);
    try {
      await rename(tmp, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      if (await isReady(dir)) {
        // Lost the race to another builder: use the winner's identical env.
        await rm(tmp, { recursive: true, force: true });
        return venvPython(dir);
      }
      // A broken leftover (not built by Kaon's rename): move it aside and take its place.
      const trash = `${tmp}.trash`;
      await rename(dir, trash);
      await rename(tmp, dir);
      await rm(trash, { recursive: true, force: true });
    }
    say(`kaon: Python environment ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${dir}`);
    return venvPython(dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * A venv records its own location in scripts' shebangs and activate files; point them at the final folder
 * before the rename, so console scripts (`bin/jupyter` …) keep working.
 */
async function fixPaths(tmp: string, dir: string): Promise<void> {
  const bin = path.dirname(venvPython(tmp));
  for (const name of await readdir(bin)) {
    const file = path.join(bin, name);
    const st = await lstat(file).catch(() => undefined);
    if (!st?.isFile() || st.size > 1024 * 1024) continue;
    const text = await readFile(file);
    if (text.includes(0)) continue; // binary
    const s = text.toString('utf8');
    if (s.includes(tmp)) await writeFile(file, s.split(tmp).join(dir), { mode: st.mode });
  }
}
