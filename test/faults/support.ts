// Shared helpers of the faults tier: `kaon worker` children on the faults fixture, hard kills, process checks,
// and the checks of an artifact store after a run that was disturbed.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { canonicalJson } from '../../src/data/canonical';
import type { ArtifactStore } from '../../src/data/store';
import { isArtifactRef, type ArtifactRef } from '../../src/definition/artifact-ref';
import { CliProcess, cliEnv } from '../cli/cli-process';

export const PROJECT = ['--workflows', 'test/fixtures/faults/pipelines.ts', '--activities', 'test/fixtures/faults/activities.ts'];

export function workerEnv(address: string, taskQueue: string, artifactsDir: string): NodeJS.ProcessEnv {
  return cliEnv({ TEMPORAL_ADDRESS: address, KAON_TASK_QUEUE: taskQueue, KAON_ARTIFACTS: `file://${artifactsDir}`, KAON_LOG_LEVEL: 'WARN' });
}

/** A `kaon worker` child on the faults fixture, ready to poll. */
export async function startWorker(env: NodeJS.ProcessEnv, all: CliProcess[]): Promise<CliProcess> {
  const w = new CliProcess(['worker', ...PROJECT, '--grace', '2s'], { env });
  all.push(w);
  await w.waitFor(/^kaon worker: ready/m, 180_000);
  return w;
}

/** kill -9 of the worker process alone (not its group): what a crash or the OOM killer does. */
export async function killHard(w: CliProcess): Promise<void> {
  process.kill(w.child.pid!, 'SIGKILL');
  await w.exited;
}

/** Whether a process runs (a zombie, dead but not yet reaped by its new parent, does not count). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** Pids the fixture's Python steps recorded (one file per process) in `dir`. */
export function recordedPids(dir: string): number[] {
  return existsSync(dir) ? readdirSync(dir).map((f) => Number(readFileSync(path.join(dir, f), 'utf8'))).filter((n) => n > 0) : [];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Mulberry32: a seeded RNG, so a failing round can be replayed with KAON_FAULTS_SEED. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A run's result without what differs between runs by design: the producer (run id, attempt) of each ref. */
export function comparable(value: unknown): string {
  const strip = (v: unknown): unknown => {
    if (isArtifactRef(v)) {
      const { producer: _producer, ...rest } = v;
      return rest;
    }
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, strip(x)]));
    return v;
  };
  return canonicalJson(strip(value));
}

export function refsOf(value: unknown, out: ArtifactRef[] = []): ArtifactRef[] {
  if (isArtifactRef(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) refsOf(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) refsOf(v, out);
  return out;
}

function walk(dir: string, rel = ''): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const r = rel ? `${rel}/${e.name}` : e.name;
    return e.isDirectory() ? walk(path.join(dir, e.name), r) : [r];
  });
}

/**
 * The store after a disturbed run: every artifact of the run reads back verified (getBytes hashes the bytes),
 * every blob's content hashes to its name, and no temp or partial file is visible outside the temp area (tmp/).
 */
export async function checkStore(store: ArtifactStore, root: string, runId: string, result: unknown): Promise<{ artifacts: number; blobs: number }> {
  const produced = await store.listByRun(runId);
  const refs = [...refsOf(result), ...produced];
  assert.ok(refs.length > 0, `run ${runId} has artifacts`);
  for (const ref of refs) {
    const bytes = await store.getBytes(ref);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), ref.sha256, `artifact ${ref.name ?? ref.uri} verifies`);
  }
  const files = walk(root).filter((f) => !f.startsWith('tmp/'));
  const temps = files.filter((f) => path.basename(f).startsWith('.') || f.endsWith('.tmp') || f.endsWith('.partial'));
  assert.deepEqual(temps, [], 'no temp or partial file outside the store\'s tmp/ area');
  const blobs = files.filter((f) => f.startsWith('sha256/'));
  for (const b of blobs) {
    const sha = createHash('sha256').update(readFileSync(path.join(root, b))).digest('hex');
    assert.equal(sha, path.basename(b), `blob ${b} holds exactly the bytes its name says (size ${statSync(path.join(root, b)).size})`);
  }
  return { artifacts: refs.length, blobs: blobs.length };
}
