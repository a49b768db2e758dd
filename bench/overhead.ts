// Orchestration overhead: Kaon against plain Temporal, four comparisons in one run on one server, interleaved.
//
//   npm run bench                                  # builds dist/ first; 1 warm-up + 5 rounds of each comparison
//   npm run bench -- --rounds 7 --fanout 100 --steps 200 --address 127.0.0.1:7233
//
// 1. fan-out:    a pipeline of N parallel no-op steps (k.foreach + k.step) | a workflow awaiting N activities at once
// 2. sequential: N no-op steps one after another                           | the same loop with proxyActivities
// 3. process:    `kaon run bench-fanout --wait` as a new process            | a plain .mjs client script, same fan-out
// 4. help:       `kaon help`                                               | a process that only loads @temporalio/client
// Both workers run in this process with the same settings. Rounds alternate which side goes first, so drift on a
// shared machine hits both alike. It reports, it never gates: exit 1 only if something could not be measured.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from '@temporalio/worker';
import { createArtifactStore } from '../src/data';
import { kaonHome } from '../src/runtime/paths';
import { createKaonWorker } from '../src/runtime/worker';
import { breakdown, median, positiveInt, sideBySide, type Breakdown } from './side-by-side';
import { benchFanout, benchSequential } from './fixtures/kaon-workflows';
import { noopImpl } from './fixtures/noop.impl';
import * as plainActivities from './fixtures/plain-activities';
import type { plainFanout, plainSequential } from './fixtures/plain-workflows';

const ROOT = path.resolve(__dirname, '..');

interface Comparison {
  name: string;
  goal: number;
  /** Steps per run, for the per-step columns (0: a whole process, no steps to divide by). */
  steps: number;
  kaon: () => Promise<{ ms: number; workflowId?: string }>;
  plain: () => Promise<{ ms: number; workflowId?: string }>;
}

function exec(argv: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ ms: performance.now() - t0 }) : reject(new Error(`${argv.join(' ')} exited ${code}:\n${out}`))));
  });
}

const fmt = (xs: number[]): string => `${median(xs).toFixed(0).padStart(6)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string' }, warmup: { type: 'string' }, fanout: { type: 'string' }, steps: { type: 'string' }, address: { type: 'string' } } });
  const rounds = positiveInt(values.rounds, 5, 'rounds');
  const warmup = positiveInt(values.warmup, 1, 'warmup');
  const fanout = positiveInt(values.fanout, 100, 'fanout');
  const steps = positiveInt(values.steps, 200, 'steps');

  const { address, nativeConnection, client, kaon, kaonQueue, plainQueue, close } = await sideBySide('bench', values.address);
  // Kaon's own artifact store (what users get by default: under .kaon/), removed afterwards. No-op steps write
  // nothing to it: only cached steps write.
  const storeDir = path.join(kaonHome(), `bench-${kaonQueue}`);
  const kaonWorker = await createKaonWorker({
    workflowsPath: require.resolve('./fixtures/kaon-workflows'),
    activities: [noopImpl],
    taskQueue: kaonQueue,
    connection: nativeConnection,
    shutdownGraceTime: '2s',
    artifacts: createArtifactStore(pathToFileURL(storeDir).href),
  });
  const plainWorker = await Worker.create({
    connection: nativeConnection,
    taskQueue: plainQueue,
    workflowsPath: require.resolve('./fixtures/plain-workflows'),
    activities: plainActivities,
    shutdownGraceTime: '2s',
  });
  const running = Promise.all([kaonWorker.run(), plainWorker.run()]);

  const timed = async (fn: () => Promise<{ workflowId: string; out: unknown }>, expect: number) => {
    const t0 = performance.now();
    const { workflowId, out } = await fn();
    const ms = performance.now() - t0;
    if (out !== expect) throw new Error(`${workflowId} returned ${String(out)}, expected ${expect}`);
    return { ms, workflowId };
  };
  const plainRun = (wf: 'plainFanout' | 'plainSequential', n: number) => async () => {
    const workflowId = `bench-plain-${randomUUID().slice(0, 8)}`;
    return { workflowId, out: await client.workflow.execute<typeof plainFanout | typeof plainSequential>(wf, { taskQueue: plainQueue, workflowId, args: [n] }) };
  };
  const env = { ...process.env, TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: 'default', NODE_NO_WARNINGS: '1' };
  const comparisons: Comparison[] = [
    {
      name: `fan-out of ${fanout}`, goal: 1.15, steps: fanout,
      kaon: () => timed(async () => { const r = await kaon.start(benchFanout, { items: fanout }); return { workflowId: r.id, out: await r.result() }; }, fanout),
      plain: () => timed(plainRun('plainFanout', fanout), fanout),
    },
    {
      name: `${steps} sequential`, goal: 1.1, steps,
      kaon: () => timed(async () => { const r = await kaon.start(benchSequential, { steps }); return { workflowId: r.id, out: await r.result() }; }, steps),
      plain: () => timed(plainRun('plainSequential', steps), steps),
    },
    {
      name: `process: run --wait (${fanout})`, goal: 1.3, steps: 0,
      kaon: () => exec([process.execPath, 'bin/kaon.js', 'run', 'bench-fanout', '--params', JSON.stringify({ items: fanout }), '--wait', '--workflows', 'bench/fixtures/kaon-workflows.ts', '--activities', 'bench/fixtures/noop.impl.ts', '--task-queue', kaonQueue], env),
      plain: () => exec([process.execPath, 'bench/fixtures/plain-client.mjs', address, plainQueue, String(fanout)], env),
    },
    {
      name: 'kaon help', goal: 1.5, steps: 0,
      kaon: () => exec([process.execPath, 'bin/kaon.js', 'help'], env),
      plain: () => exec([process.execPath, '-e', "require('@temporalio/client')"], env),
    },
  ];

  const samples = new Map<string, { kaon: number[]; plain: number[]; last: { kaon?: string; plain?: string } }>();
  try {
    console.log(`bench: Kaon against plain Temporal, server ${address}, ${warmup} warm-up + ${rounds} rounds of each comparison, interleaved`);
    for (const c of comparisons) samples.set(c.name, { kaon: [], plain: [], last: {} });
    for (let r = 0; r < warmup + rounds; r++) {
      for (const c of comparisons) {
        const s = samples.get(c.name)!;
        const order = r % 2 ? (['plain', 'kaon'] as const) : (['kaon', 'plain'] as const);
        for (const side of order) {
          const res = await c[side]();
          if (r < warmup) continue;
          s[side].push(res.ms);
          if (res.workflowId) s.last[side] = res.workflowId;
        }
      }
      if (r >= warmup) console.log(`  round ${r - warmup + 1}/${rounds}: ${comparisons.map((c) => { const s = samples.get(c.name)!; return `${c.name} ${(s.kaon.at(-1)! / s.plain.at(-1)!).toFixed(2)}×`; }).join(' · ')}`);
    }
    console.log('');
    console.log(`${'comparison'.padEnd(28)} ${'kaon ms median (min–max)'.padEnd(26)} ${'plain ms median (min–max)'.padEnd(26)} ratio   goal    `);
    for (const c of comparisons) {
      const s = samples.get(c.name)!;
      const ratio = median(s.kaon) / median(s.plain);
      console.log(`${c.name.padEnd(28)} ${fmt(s.kaon).padEnd(26)} ${fmt(s.plain).padEnd(26)} ${ratio.toFixed(2).padStart(5)}×  ≤ ${c.goal.toFixed(2)}× ${ratio <= c.goal ? 'met' : 'MISSED'}`);
    }
    console.log('');
    console.log('per step, last round, from the histories (ms, means): wft-wait = workflow task scheduled → started,');
    console.log('wft-run = started → completed (workflow code + completion RPC), activity = scheduled → completed');
    console.log(`${'run'.padEnd(30)} ${'wall/step'.padStart(9)} ${'wft-wait'.padStart(9)} ${'wft-run'.padStart(8)} ${'activity'.padStart(9)} ${'wft count'.padStart(9)} ${'events'.padStart(7)}`);
    for (const c of comparisons.filter((x) => x.steps > 0)) {
      const s = samples.get(c.name)!;
      for (const side of ['kaon', 'plain'] as const) {
        const b: Breakdown = await breakdown(client, s.last[side]!);
        console.log(`${`${c.name} ${side}`.padEnd(30)} ${(s[side].at(-1)! / c.steps).toFixed(2).padStart(9)} ${b.wftWait.toFixed(2).padStart(9)} ${b.wftRun.toFixed(2).padStart(8)} ${b.activity.toFixed(2).padStart(9)} ${String(b.wfts).padStart(9)} ${String(b.events).padStart(7)}`);
      }
    }
  } finally {
    kaonWorker.shutdown();
    plainWorker.shutdown();
    await running;
    await close();
    rmSync(storeDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench: could not measure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
