// A real S3-compatible server for tests: moto (from PyPI) in a virtualenv cached under .kaon/venvs/, started on
// 127.0.0.1 at a free port. Provisioning is idempotent and safe when several test processes race: each installs
// into its own temp folder and renames it into place; the loser discards its copy.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { kaonHome } from '../../src/runtime/paths';

/** Pinned: moto's S3 plus the Flask server it needs (moto[server] would pull every AWS service's dependencies). */
export const MOTO_VERSION = '5.2.5';
const REQUIREMENTS = [`moto[s3]==${MOTO_VERSION}`, 'flask==3.1.3', 'flask-cors==6.0.5'];
const READY = '.kaon-ready';

export interface S3Server {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  stop(): Promise<void>;
}

type Say = (message: string) => void;
const stderrSay: Say = (m) => process.stderr.write(`${m}\n`);

function python3(): string {
  for (const cand of ['python3', 'python']) {
    if (spawnSync(cand, ['--version'], { encoding: 'utf8' }).status === 0) return cand;
  }
  throw new Error('the S3 test server needs Python 3 (python3 on PATH) to install moto from PyPI');
}

/** The moto virtualenv's python, installing it on first use. */
export function ensureMoto(say: Say = stderrSay): string {
  const venvs = path.join(kaonHome(), 'venvs');
  const venv = path.join(venvs, `moto-${MOTO_VERSION}`);
  const py = path.join(venv, 'bin', 'python');
  if (existsSync(path.join(venv, READY))) return py;
  mkdirSync(venvs, { recursive: true });
  const tmp = mkdtempSync(path.join(venvs, `.moto-${MOTO_VERSION}-`));
  say(`kaon test: installing the S3 test server (${REQUIREMENTS.join(' ')}) from PyPI into ${venv} — once, then cached …`);
  try {
    const steps: [string, string[]][] = [
      [python3(), ['-m', 'venv', tmp]],
      [path.join(tmp, 'bin', 'python'), ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '-q', ...REQUIREMENTS]],
    ];
    for (const [cmd, args] of steps) {
      const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      if (r.status !== 0) {
        const out = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim().split('\n').slice(-8).join('\n');
        throw new Error(`installing the S3 test server failed at \`${cmd} ${args.join(' ')}\`:\n${out}`);
      }
    }
    writeFileSync(path.join(tmp, READY), `${REQUIREMENTS.join('\n')}\n`);
    try {
      // The venv's python is a symlink and finds its site-packages from pyvenv.cfg next to it, so the folder can
      // move; moto is started through the venv's python, never through the (path-stamped) bin/ scripts.
      renameSync(tmp, venv);
    } catch (err) {
      if (!existsSync(path.join(venv, READY))) throw err; // not a lost race
    }
    say(`kaon test: S3 test server (moto ${MOTO_VERSION}) installed`);
    return py;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// moto's own entry point, plus a watchdog: if the test process dies without stopping it (SIGKILL, a crash),
// moto exits too instead of lingering on its port.
const LAUNCHER = [
  'import os, sys, threading, time',
  'parent = os.getppid()',
  'def watch():',
  '    while os.getppid() == parent:',
  '        time.sleep(1)',
  '    os._exit(0)',
  'threading.Thread(target=watch, daemon=True).start()',
  'from moto.server import main',
  'main(sys.argv[1:])',
].join('\n');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

async function answers(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(endpoint, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Start moto on 127.0.0.1 at a free port and wait until it answers. Call stop() in after(). */
export async function startS3Server(opts: { say?: Say; timeoutMs?: number } = {}): Promise<S3Server> {
  const py = ensureMoto(opts.say);
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn(py, ['-c', LAUNCHER, '-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let tail: string[] = [];
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    tail = [...tail, ...d.split('\n').filter(Boolean)].slice(-20); // drained, so moto never blocks on its request log
  });
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (!(await answers(endpoint))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the S3 test server (moto ${MOTO_VERSION}) did not start on ${endpoint}:\n${tail.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'kaon-test', secretAccessKey: 'kaon-test-secret' },
    async stop() {
      process.off('exit', killOnExit);
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited(child);
      clearTimeout(timer);
    },
  };
}
