// A step process dies with its worker, even when it is silent: a worker in a child process runs a Python step and a
// shell step that sleep quietly for 30 s; after kill -9 of the worker both process groups are gone within 2 s. A
// restarted worker then sweeps what the dead one left: its work dirs and its records under KAON_HOME/live-steps.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { liveStepsDir, sweepDeadSteps } from '../../src/execution/sweep';
import { sleepers } from '../fixtures/parent-death/pipelines';
import { ROOT, testEnv, type TestEnv } from '../support/temporal';

const WORKER = path.join(ROOT, 'test/fixtures/parent-death/worker.ts');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Whether any live (non-zombie) process is in the group. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid && f[0] !== 'Z') return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}

async function waitFor<T>(what: string, fn: () => T | undefined, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

describe('parent death', () => {
  let env: TestEnv;
  let home: string;
  let tmp: string;
  let pids: string;
  let artifacts: string;
  const children: ChildProcess[] = [];

  before(async () => {
    env = await testEnv('pd');
    home = mkdtempSync(path.join(os.tmpdir(), 'kaon-pd-home-'));
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-pd-tmp-'));
    pids = mkdtempSync(path.join(os.tmpdir(), 'kaon-pd-pids-'));
    artifacts = mkdtempSync(path.join(os.tmpdir(), 'kaon-pd-artifacts-'));
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await env.close();
    for (const d of [home, tmp, pids, artifacts]) rmSync(d, { recursive: true, force: true });
  });

  function startWorker(): Promise<ChildProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        KAON_HOME: home,
        TMPDIR: tmp, // the work dirs land here, so the test can count them
        PD_ADDRESS: env.address,
        PD_TASK_QUEUE: env.taskQueue,
        PD_ARTIFACTS: artifacts,
        KAON_TEST_PID_DIR: pids,
        KAON_STEP_ENV_ALLOW: 'KAON_TEST_PID_DIR',
      },
    });
    children.push(child);
    let out = '';
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    return new Promise((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve(child);
      });
      child.once('exit', (code) => reject(new Error(`the worker exited (${code}) before it was ready: ${out}`)));
    });
  }

  test('kill -9 of the worker kills its silent Python and shell steps within 2 s; a new worker sweeps what it left', { timeout: 120_000 }, async () => {
    // The pipeline's workflow runs in this process; the steps run in the child worker.
    const wf = await env.worker({ workflowsPath: path.join(ROOT, 'test/fixtures/parent-death/pipelines.ts'), activities: [], queues: ['default'] });
    const running = wf.run();
    try {
      const first = await startWorker();
      const run = await env.kaon.start(sleepers, {});
      const pyPid = await waitFor('the Python step to start', () => (existsSync(path.join(pids, 'python.pid')) ? Number(readFileSync(path.join(pids, 'python.pid'), 'utf8')) : undefined), 60_000);
      const shPid = await waitFor('the shell step to start', () => (existsSync(path.join(pids, 'shell.pid')) ? Number(readFileSync(path.join(pids, 'shell.pid'), 'utf8')) : undefined), 60_000);
      assert.ok(groupAlive(pyPid) && groupAlive(shPid), 'both steps are running');
      const records = readdirSync(liveStepsDir(home)).filter((n) => n.endsWith('.json'));
      assert.equal(records.length, 2, 'one live record per running step');
      const workDirs = readdirSync(tmp).filter((n) => n.startsWith('kaon-pd'));
      assert.equal(workDirs.length, 2, `one work dir per running step: ${workDirs.join(', ')}`);

      const killedAt = Date.now();
      first.kill('SIGKILL');
      await waitFor('the Python step to die', () => !groupAlive(pyPid) || undefined, 2000);
      await waitFor('the shell step (and its sleep) to die', () => !groupAlive(shPid) || undefined, 2000);
      const tookMs = Date.now() - killedAt;
      assert.ok(tookMs < 2000, `gone in ${tookMs} ms`);
      // No exit hook ran: the dead worker's records and work dirs are still there for the sweep.
      assert.equal(readdirSync(liveStepsDir(home)).filter((n) => n.endsWith('.json')).length, 2);
      assert.equal(readdirSync(tmp).filter((n) => n.startsWith('kaon-pd')).length, 2);

      const second = await startWorker();
      assert.deepEqual(readdirSync(liveStepsDir(home)).filter((n) => n.endsWith('.json')), [], 'the records are swept');
      assert.deepEqual(readdirSync(tmp).filter((n) => n.startsWith('kaon-pd')), [], 'the work dirs are removed');
      second.kill('SIGTERM');
      await run.cancel().catch(() => undefined);
      await run.handle.terminate('test over').catch(() => undefined);
    } finally {
      wf.shutdown();
      await running;
    }
  });

  test('the sweep kills a dead worker\'s leftover group, but never a group whose leader pid was reused', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-pd-sweep-'));
    try {
      // A worker that is gone: a process that has exited (its pid is free, or reused, with another start time).
      const dead = spawn('true');
      await new Promise((r) => dead.once('exit', r));
      const leftover = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
      const stranger = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
      const work = mkdtempSync(path.join(os.tmpdir(), 'kaon-sweepme-'));
      mkdirSync(path.join(work, 'output'));
      const startOf = (pid: number) => {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      };
      const rec = (name: string, group: { pgid: number; start: string | undefined }, workDir: string) =>
        writeFileSync(path.join(dir, `${name}.json`), JSON.stringify({ worker: { pid: dead.pid, start: '1' }, workDir, group }));
      rec('a', { pgid: leftover.pid!, start: startOf(leftover.pid!) }, work);
      rec('b', { pgid: stranger.pid!, start: '12345' }, '/etc'); // a reused pid, and a work dir Kaon never made
      // A record of a live worker (this process) is left alone.
      writeFileSync(path.join(dir, 'c.json'), JSON.stringify({ worker: { pid: process.pid, start: startOf(process.pid) }, workDir: work, group: { pgid: stranger.pid, start: startOf(stranger.pid!) } }));

      const r = sweepDeadSteps(dir);
      assert.deepEqual(r.killed, [leftover.pid]);
      assert.deepEqual(r.removed, [work]);
      assert.equal(r.records, 2);
      await waitFor('the leftover group to die', () => !groupAlive(leftover.pid!) || undefined, 2000);
      assert.ok(groupAlive(stranger.pid!), "the stranger's group lives");
      assert.ok(existsSync('/etc'));
      assert.deepEqual(readdirSync(dir), ['c.json']);
      stranger.kill('SIGKILL');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
