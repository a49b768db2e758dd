// Spawning the real CLI (bin/kaon.js) from tests: one-shot commands and long-running ones (worker, dev, demo).
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../support/temporal';

export const BIN = path.join(ROOT, 'bin/kaon.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment a CLI child sees: this process's, minus what would change its output, plus `extra`. */
export function cliEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_NO_WARNINGS: '1' };
  for (const k of ['KAON_UI_URL', 'KAON_DEBUG', 'KAON_DEV_PORT', 'KAON_DEV_UI_PORT', 'TEMPORAL_PROFILE', 'TEMPORAL_CONFIG_FILE']) delete env[k];
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** A running CLI process with its output so far. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<CliResult>;

  /** `command` runs another launcher instead of `node bin/kaon.js` (e.g. `npm exec -- kaon` in a packed install). */
  constructor(args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string; command?: string[] }) {
    const [cmd, ...pre] = opts.command ?? [process.execPath, BIN];
    // Its own process group, so kill() also reaches what a launcher (npm exec) started: an orphan holding the pipes
    // would keep `exited` from ever resolving.
    this.child = spawn(cmd!, [...pre, ...args], { cwd: opts.cwd ?? ROOT, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => resolve({ code, signal, stdout: this.stdout, stderr: this.stderr }));
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Wait until stdout matches, failing early if the process exits or the time runs out. */
  async waitFor(pattern: RegExp, timeoutMs = 90_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.stdout.match(pattern);
      if (m) return m;
      if (!this.running) throw new Error(`kaon exited (${this.child.exitCode}) before printing ${pattern}:\n${this.stdout}\n${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${this.stdout}\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stop it hard if it is still running (test cleanup). */
  kill(): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      if (this.running) this.child.kill('SIGKILL');
    }
  }
}

/** Run one CLI command to completion. */
export async function kaon(args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number }): Promise<CliResult> {
  const p = new CliProcess(args, opts);
  const timer = setTimeout(() => p.kill(), opts.timeoutMs ?? 120_000);
  try {
    return await p.exited;
  } finally {
    clearTimeout(timer);
  }
}

export const ANSI = /\u001b/;
