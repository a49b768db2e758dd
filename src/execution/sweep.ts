/**
 * What a dead worker leaves behind, and how the next one clears it. Each live attempt of a process step has a record
 * in `<KAON_HOME>/live-steps/`: the owning worker (pid + start time), the step's process group (leader pid + start
 * time) and the attempt's work dir. A step process normally dies with its worker (the watcher in process.ts); at
 * start a worker sweeps the records whose worker is gone: it SIGKILLs any group still alive and removes the work
 * dirs. Start times guard against pid reuse: a recycled pid is never someone else's process killed.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export function liveStepsDir(home: string): string {
  return path.join(home, 'live-steps');
}

interface Proc {
  /** Start time in clock ticks since boot (field 22 of /proc/<pid>/stat). */
  start: string;
  zombie: boolean;
}

/** A process's start time (Linux); undefined when the process does not exist. */
function proc(pid: number): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { start: fields[19] ?? '', zombie: fields[0] === 'Z' };
  } catch {
    return undefined;
  }
}

function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface LiveStep {
  worker: { pid: number; start?: string };
  workDir: string;
  group?: { pgid: number; start?: string };
}

export interface LiveRecord {
  /** Note the attempt's process group (the leader's pid), once spawned. Synchronous: a kill may come any moment. */
  setGroup(pgid: number): void;
  /** The attempt is over (its group gone, its work dir removed or kept on purpose). */
  remove(): void;
}

const NONE: LiveRecord = { setGroup: () => undefined, remove: () => undefined };

/** Start the record of one attempt. Without a dir (custom executors, tests) nothing is recorded. */
export function recordLiveStep(dir: string | undefined, workDir: string): LiveRecord {
  if (!dir) return NONE;
  const file = path.join(dir, `${process.pid}-${randomUUID().slice(0, 8)}.json`);
  const rec: LiveStep = { worker: { pid: process.pid, ...startOf(process.pid) }, workDir };
  const write = () => {
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify(rec));
    renameSync(tmp, file); // atomic: a sweeper never reads half a record
  };
  try {
    mkdirSync(dir, { recursive: true });
    write();
  } catch {
    return NONE; // bookkeeping for the sweep must never fail a step
  }
  return {
    setGroup(pgid) {
      rec.group = { pgid, ...startOf(pgid) };
      try {
        write();
      } catch {
        // as above
      }
    },
    remove() {
      rmSync(file, { force: true });
    },
  };
}

function startOf(pid: number): { start?: string } {
  const p = proc(pid);
  return p ? { start: p.start } : {};
}

/** Whether the worker of a record is still running (the same process: same pid and start time). */
function workerAlive(w: LiveStep['worker']): boolean {
  const p = proc(w.pid);
  if (p) return !p.zombie && (w.start === undefined || p.start === w.start);
  return exists(w.pid); // no /proc: trust the pid
}

export interface SweepResult {
  /** Process groups that were still alive and were killed. */
  killed: number[];
  /** Work dirs removed. */
  removed: string[];
  /** Records cleared. */
  records: number;
}

/** Clear what dead workers left in `dir`: kill their step process groups, remove their work dirs and records. */
export function sweepDeadSteps(dir: string): SweepResult {
  const result: SweepResult = { killed: [], removed: [], records: 0 };
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return result; // no dir: nothing was ever recorded
  }
  for (const name of names) {
    const file = path.join(dir, name);
    let rec: LiveStep;
    try {
      rec = JSON.parse(readFileSync(file, 'utf8')) as LiveStep;
    } catch {
      continue;
    }
    if (typeof rec?.worker?.pid !== 'number' || workerAlive(rec.worker)) continue;
    const g = rec.group;
    if (g && Number.isInteger(g.pgid) && g.pgid > 1) {
      // The leader's pid reused by another process (another start time) means the group is not ours. A leader
      // that is gone while members remain cannot have had its pid reused: the kernel keeps it as their group id.
      const leader = proc(g.pgid);
      const ours = !leader || g.start === undefined || leader.start === g.start;
      if (ours) {
        try {
          process.kill(-g.pgid, 'SIGKILL');
          result.killed.push(g.pgid);
        } catch {
          // ESRCH: the group is already gone (the watcher killed it)
        }
      }
    }
    // Only a work dir Kaon made (kaon-<step>-XXXXXX) is removed, whatever the record says.
    if (typeof rec.workDir === 'string' && path.isAbsolute(rec.workDir) && path.basename(rec.workDir).startsWith('kaon-')) {
      try {
        readdirSync(rec.workDir);
        rmSync(rec.workDir, { recursive: true, force: true });
        result.removed.push(rec.workDir);
      } catch {
        // already gone
      }
    }
    try {
      unlinkSync(file);
      result.records++;
    } catch {
      // another worker swept it first
    }
  }
  return result;
}
