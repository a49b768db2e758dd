// Python sweep items: one process per item (the python() executor, as a batch without a session runs them) against
// an ItemSession (kaon_step.run_items) opened per batch of 1, 10 and 100 items. The items are trivial
// (bench/fixtures/trivial_items.py returns {"y": 2x}), so what is measured is Kaon's cost per item: process start,
// protocol, work dirs, heartbeats. The same script serves both modes. Rounds interleave the modes so drift from
// other processes on a shared machine hits all alike; medians are reported, with each mode's ratio to one process
// per item. "items only (warm)" runs items through a session whose process is already up: the cost of an item
// itself, without the start and end of a process that a batch pays once. Exits 0 whatever the outcome: it reports, it does not gate. Goal: ≥ 1,000 items/s at batch 100.
//
//   npx tsx bench/python-items.ts                 # 3 rounds
//   npx tsx bench/python-items.ts --rounds 5 --scale 2
//   npx tsx bench/python-items.ts --r            # R: command(['Rscript', …]) with kaon_run_items (no goal)
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { command, defineStep, python } from '../src/definition/step';
import { createRunnerExecutors, type StepContext, type StepLogger } from '../src/execution';
import { createStepRecord } from '../src/execution/step-record';

export const GOAL_ITEMS_PER_SECOND = 1000;

const quiet: StepLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const noStore = () => Promise.reject(new Error('no artifact store in this bench'));

function context(key: string, signal: AbortSignal): StepContext {
  return {
    key,
    pipeline: 'bench',
    runId: 'bench-python-items',
    attempt: 1,
    log: quiet,
    signal,
    heartbeat: () => undefined,
    progress: () => undefined,
    artifacts: { put: noStore, getPath: noStore, getStream: noStore, readSweep: () => { throw new Error('no artifact store in this bench'); } },
    card: noStore,
    metrics: createStepRecord(`bench (key ${key})`).metrics,
    registerModel: () => undefined,
    secrets: {},
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, scale: { type: 'string', default: '1' }, r: { type: 'boolean', default: false } } });
  const rounds = Number(values.rounds);
  const scale = Number(values.scale);
  const root = path.resolve(__dirname, '..');
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'kaon-bench-items-'));
  const executors = createRunnerExecutors({ root, workDir });
  const lang = values.r ? 'R' : 'python';
  const run = values.r ? command(['Rscript', 'bench/fixtures/trivial_items.R']) : python('bench/fixtures/trivial_items.py');
  const def = defineStep({ name: 'double', version: 1, input: z.object({ x: z.number() }), output: z.object({ y: z.number() }), run });
  const exec = values.r ? executors.process : executors.python;
  const signal = new AbortController().signal;
  let checked = 0;
  const check = (x: number, out: unknown) => {
    if ((out as { y?: unknown }).y !== 2 * x) throw new Error(`item ${x} returned ${JSON.stringify(out)}`);
    checked++;
  };

  const perProcess = async (n: number) => {
    for (let x = 0; x < n; x++) check(x, await exec(def, { x }, context(`double[${x}]`, signal)));
  };
  const session = (batch: number) => async (n: number) => {
    for (let start = 0; start < n; start += batch) {
      const s = await exec.session!(def, context('double', signal));
      if (!s) throw new Error(`the trivial ${lang} script should get a session`);
      try {
        for (let x = start; x < Math.min(n, start + batch); x++) check(x, await s.run({ x }, context(`double[${x}]`, signal)));
      } finally {
        await s.close();
      }
    }
  };
  // Items only: a session whose process already runs (no start, no close), the cost per item itself.
  const warm = await exec.session!(def, context('double', signal));
  if (!warm) throw new Error(`the trivial ${lang} script should get a session`);
  await warm.run({ x: 0 }, context('double[0]', signal));
  const warmItems = async (n: number) => {
    for (let x = 0; x < n; x++) check(x, await warm.run({ x }, context(`double[${x}]`, signal)));
  };
  const modes: { name: string; items: number; run: (n: number) => Promise<void> }[] = [
    { name: 'one process per item', items: Math.round(30 * scale), run: perProcess },
    { name: 'session, batch 1', items: Math.round(30 * scale), run: session(1) },
    { name: 'session, batch 10', items: Math.round(200 * scale), run: session(10) },
    { name: 'session, batch 100', items: Math.round(2000 * scale), run: session(100) },
    { name: 'items only (warm)', items: Math.round(2000 * scale), run: warmItems },
  ];
  const rates = new Map<string, number[]>(modes.map((m) => [m.name, []]));
  try {
    // Warm-up: the interpreter's first start (page cache) and tsx's compile of what runs are not the steady state.
    await perProcess(3);
    await session(10)(20);
    for (let r = 1; r <= rounds; r++) {
      const line: string[] = [];
      for (const m of r % 2 ? modes : [...modes].reverse()) {
        const t = performance.now();
        await m.run(m.items);
        const rate = m.items / ((performance.now() - t) / 1000);
        rates.get(m.name)!.push(rate);
        line.push(`${m.name} ${rate.toFixed(0)}/s`);
      }
      console.log(`round ${r}: ${line.join(', ')}`);
    }
  } finally {
    await warm.close();
    rmSync(workDir, { recursive: true, force: true });
  }
  const base = median(rates.get(modes[0]!.name)!);
  console.log(`\n${lang} items (trivial), medians of ${rounds} interleaved rounds on ${os.cpus().length} cores, ${checked} outputs checked:`);
  for (const m of modes) {
    const rate = median(rates.get(m.name)!);
    console.log(`  ${m.name.padEnd(22)} ${rate.toFixed(0).padStart(6)} items/s   ${(rate / base).toFixed(1).padStart(6)}x one process per item`);
  }
  const at100 = median(rates.get('session, batch 100')!);
  if (values.r) return;
  console.log(`goal ≥ ${GOAL_ITEMS_PER_SECOND} items/s at batch 100: ${at100 >= GOAL_ITEMS_PER_SECOND ? 'met' : 'NOT met'} (${at100.toFixed(0)} items/s)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
