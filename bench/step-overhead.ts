// Step overhead benchmark: what Kaon adds around a step, compared with plain Temporal on the same server.
//
//   npm run bench                         # 200 steps, 1 warm-up + 5 interleaved rounds each
//   npm run bench -- --steps 100 --rounds 7 --address 127.0.0.1:7233
//   npm run bench -- --metrics            # the Kaon worker counts into a metrics registry (kaon worker --metrics)
//
// (a) a Kaon pipeline of N sequential no-op steps (definePipeline + k.step, createKaonWorker, Kaon client);
// (b) a plain Temporal workflow calling a no-op activity N times (proxyActivities, Worker.create).
// Rounds alternate A B A B so drift (other processes on a shared machine) hits both alike. Per-step overhead
// is a run's wall time (start → result) / N. Exits 0 whatever the outcome: it reports, it does not gate.
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { Worker, type WorkerOptions } from '@temporalio/worker';
import { createArtifactStore } from '../src/data';
import { createKaonMetrics } from '../src/observe/metrics';
import { kaonHome } from '../src/runtime/paths';
import { createKaonWorker } from '../src/runtime/worker';
import { positiveInt, sideBySide } from './side-by-side';
import { benchSequential } from './fixtures/kaon-workflows';
import { noopImpl } from './fixtures/noop.impl';
import * as plainActivities from './fixtures/plain-activities';
import type { plainSequential } from './fixtures/plain-workflows';

/** The goal: Kaon's per-step cost at most 15 % over plain Temporal's, and at most 10 ms a step. */
const GOAL_RATIO = 1.15;
const GOAL_MS_PER_STEP = 10;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}


interface Sample {
  ms: number;
  workflowId: string;
}

/** Where a step's time goes, from one run's history (event times are the server's). Means per step, in ms: they add up. */
interface Breakdown {
  events: number;
  /** Workflow task scheduled → started: the server handing the next workflow task to a worker. */
  wftWait: number;
  /** Workflow task started → completed: the worker running the workflow code, and the completion RPC. */
  wftRun: number;
  /** Activity scheduled → completed: dispatch, the step itself, its heartbeats and the completion RPC. */
  activity: number;
}

async function breakdown(client: Client, workflowId: string): Promise<Breakdown> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const at = (e: (typeof events)[number]): number => Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
  const gaps = { wftWait: [] as number[], wftRun: [] as number[], activity: [] as number[] };
  const scheduled = new Map<string, number>();
  let wftScheduled = 0;
  let wftStarted = 0;
  // Event kinds by their attributes field (the SDK decodes each event with exactly one set).
  for (const e of events) {
    if (e.workflowTaskScheduledEventAttributes) wftScheduled = at(e);
    else if (e.workflowTaskStartedEventAttributes) {
      wftStarted = at(e);
      gaps.wftWait.push(wftStarted - wftScheduled);
    } else if (e.workflowTaskCompletedEventAttributes) gaps.wftRun.push(at(e) - wftStarted);
    else if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), at(e));
    else if (e.activityTaskCompletedEventAttributes) {
      const from = scheduled.get(String(e.activityTaskCompletedEventAttributes.scheduledEventId));
      if (from !== undefined) gaps.activity.push(at(e) - from);
    }
  }
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return { events: events.length, wftWait: mean(gaps.wftWait), wftRun: mean(gaps.wftRun), activity: mean(gaps.activity) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      address: { type: 'string' },
      metrics: { type: 'boolean' },
    },
  });
  const steps = positiveInt(values.steps, 200, 'steps');
  const rounds = positiveInt(values.rounds, 5, 'rounds');
  const warmup = positiveInt(values.warmup, 1, 'warmup');

  const { address, nativeConnection, client, kaon, kaonQueue, plainQueue, close } = await sideBySide('bench', values.address);

  // The same tuning for both workers; Kaon layers its own defaults (heartbeat throttle) under it.
  const tuning: Partial<WorkerOptions> = {};
  // Kaon records each step's memo entry in the artifact store: a store of its own, on the same disk as the
  // project's .kaon/ (what users get by default), removed afterwards.
  const storeDir = path.join(kaonHome(), `bench-${kaonQueue}`);
  const kaonWorker = await createKaonWorker({
    workflowsPath: require.resolve('./fixtures/kaon-workflows'),
    activities: [noopImpl],
    taskQueue: kaonQueue,
    connection: nativeConnection,
    shutdownGraceTime: '2s',
    artifacts: createArtifactStore(pathToFileURL(storeDir).href),
    workerOptions: tuning,
    // The registry behind `kaon worker --metrics` (the SDK's exporter is left out: it serves plain Temporal too).
    ...(values.metrics ? { metrics: createKaonMetrics() } : {}),
  });
  const plainWorker = await Worker.create({
    connection: nativeConnection,
    taskQueue: plainQueue,
    workflowsPath: require.resolve('./fixtures/plain-workflows'),
    activities: plainActivities,
    shutdownGraceTime: '2s',
    ...tuning,
  });
  const running = Promise.all([kaonWorker.run(), plainWorker.run()]);

  const runKaon = async (): Promise<Sample> => {
    const t0 = performance.now();
    const run = await kaon.start(benchSequential, { steps });
    const out = await run.result();
    const ms = performance.now() - t0;
    if (out !== steps) throw new Error(`kaon run returned ${String(out)}, expected ${steps}`);
    return { ms, workflowId: run.id };
  };
  const runPlain = async (): Promise<Sample> => {
    const workflowId = `bench-plain-${randomUUID().slice(0, 8)}`;
    const t0 = performance.now();
    const out = await client.workflow.execute<typeof plainSequential>('plainSequential', { taskQueue: plainQueue, workflowId, args: [steps] });
    const ms = performance.now() - t0;
    if (out !== steps) throw new Error(`plain run returned ${String(out)}, expected ${steps}`);
    return { ms, workflowId };
  };

  const kaonSamples: Sample[] = [];
  const plainSamples: Sample[] = [];
  const breakdowns: Partial<Record<'kaon' | 'plain', Breakdown>> = {};
  try {
    console.log(`bench: ${steps} sequential no-op steps, ${warmup} warm-up + ${rounds} rounds each (A=kaon${values.metrics ? ' with metrics' : ''}, B=plain), server ${address}`);
    for (let i = 0; i < warmup; i++) {
      await runKaon();
      await runPlain();
    }
    for (let r = 1; r <= rounds; r++) {
      // Alternate which goes first, so neither always runs right after the other's history writes.
      const pair = r % 2 ? [runKaon, runPlain] : [runPlain, runKaon];
      for (const fn of pair) {
        const s = await fn();
        (fn === runKaon ? kaonSamples : plainSamples).push(s);
        console.log(`  round ${r} ${fn === runKaon ? 'kaon ' : 'plain'}  ${s.ms.toFixed(0).padStart(6)} ms  ${(s.ms / steps).toFixed(2).padStart(6)} ms/step`);
      }
    }
    // Where the time goes, from the histories of the last round (read while the server is still up).
    breakdowns.kaon = await breakdown(client, kaonSamples.at(-1)!.workflowId);
    breakdowns.plain = await breakdown(client, plainSamples.at(-1)!.workflowId);
  } finally {
    kaonWorker.shutdown();
    plainWorker.shutdown();
    await running;
    await close();
    rmSync(storeDir, { recursive: true, force: true });
  }

  const kaonPerStep = median(kaonSamples.map((s) => s.ms)) / steps;
  const plainPerStep = median(plainSamples.map((s) => s.ms)) / steps;
  const ratio = kaonPerStep / plainPerStep;
  const ratioOk = ratio <= GOAL_RATIO;
  const msOk = kaonPerStep <= GOAL_MS_PER_STEP;
  console.log('');
  console.log('ms per step             median   last run: wft-wait  wft-run  activity (means)   history events/run');
  for (const [name, perStep] of [['kaon', kaonPerStep], ['plain', plainPerStep]] as const) {
    const b = breakdowns[name]!;
    console.log(`${name.padEnd(22)} ${perStep.toFixed(2).padStart(7)} ${b.wftWait.toFixed(2).padStart(19)} ${b.wftRun.toFixed(2).padStart(8)} ${b.activity.toFixed(2).padStart(9)}           ${b.events}`);
  }
  console.log(`ratio  kaon/plain ${ratio.toFixed(3)}`);
  console.log(`goal   ratio <= ${GOAL_RATIO}: ${ratioOk ? 'PASS' : 'MISS'}; <= ${GOAL_MS_PER_STEP} ms/step: ${msOk ? 'PASS' : 'MISS'}; overall: ${ratioOk && msOk ? 'PASS' : 'MISS'}`);
  // A sequential step needs one transfer-queue read on the server. Capped at 20 reads/s per shard (Temporal's
  // default), every step takes ~50 ms with or without Kaon: the server's pace, not the workers'.
  if (plainPerStep > 40) {
    console.log(`note   plain Temporal itself needs ${plainPerStep.toFixed(0)} ms/step here: the server paces its transfer queue`);
    console.log('       (history.transferProcessorMaxPollRPS, default 20/s per shard), which hides worker-side overhead.');
    console.log('       Measure against a server started with --dynamic-config-value history.transferProcessorMaxPollRPS=1000 (--address).');
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
