// Where the reference pipeline's time goes: orchestration vs Python start-up vs compute.
// `npm run bench:demo`. Runs retrain-recommender once with caching off (warm virtualenv, cold cache) on a
// private dev server, then splits its wall time using the run's Temporal history and per-step timings.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { RECSYS_REQUIREMENTS } from '../activities/recommender';
import { ensurePythonEnv } from '../src/execution/python-env';
import { defaultExecutors, kaonHome } from '../src/runtime';
import { retrainRecommender } from '../workflows/recommender';
import { withBenchWorker } from './support';
const ROOT = path.resolve(__dirname, '..');

/** What each script imports before it does any work (interpreter start-up is measured with exactly these). */
const IMPORTS: Record<string, string> = {
  'ingest.py': 'import recsys, os, numpy, kaon_step',
  'validate.py': 'import recsys, json, os, numpy, kaon_step',
  'featurize.py': 'import recsys, os, numpy, kaon_step',
  'train.py': 'import recsys, os, warnings, numpy, kaon_step; from sklearn.decomposition import NMF',
  'evaluate.py': 'import recsys, numpy, kaon_step',
  'publish.py': 'import json, os, shutil, tempfile, matplotlib, kaon_step; matplotlib.use("Agg"); import matplotlib.pyplot',
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function startupMs(python: string, imports: string): number {
  const env = { ...process.env, PYTHONPATH: [path.join(ROOT, 'python'), path.join(ROOT, 'activities/python')].join(path.delimiter) };
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = process.hrtime.bigint();
    const r = spawnSync(python, ['-c', imports], { env });
    if (r.status !== 0) throw new Error(String(r.stderr));
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(times);
}

interface Interval { key: string; type: string; scheduled: number; started: number; completed: number }

async function main(): Promise<void> {
  const t0 = Date.now();
  const python = await ensurePythonEnv(RECSYS_REQUIREMENTS, { home: kaonHome(), say: (m) => console.log(m) });
  console.log(`python env ready in ${Date.now() - t0} ms (${python})`);

  const executorMs = new Map<string, number>();
  await withBenchWorker('bench-demo', (store) => {
    const base = defaultExecutors(store);
    // Time each runner executor call (process start to exit, plus artifact I/O), by step key.
    const executors = Object.fromEntries(
      Object.entries(base).map(([kind, exec]) => [kind, async (...a: Parameters<typeof exec>) => {
        const t = process.hrtime.bigint();
        try {
          return await exec(...a);
        } finally {
          executorMs.set(a[2].key, Number(process.hrtime.bigint() - t) / 1e6);
        }
      }]),
    ) as typeof base;
    return { executors };
  }, async ({ kaon, tmp }) => {
      const wall0 = Date.now();
      const run = await kaon.start(retrainRecommender, { registry: path.join(tmp, 'registry') }, { cache: 'off' });
      await run.result();
      const clientWall = Date.now() - wall0;
      const state = await run.progress();
      const history = await kaon.temporal.workflow.getHandle(run.id).fetchHistory();
      const events = history.events ?? [];
      const ms = (e: (typeof events)[number]) => Number(e.eventTime!.seconds) * 1000 + Math.floor(Number(e.eventTime!.nanos) / 1e6);
      const byScheduled = new Map<number, Interval>();
      const started = new Map<number, number>();
      for (const e of events) {
        const id = Number(e.eventId);
        if (e.activityTaskScheduledEventAttributes) {
          const a = e.activityTaskScheduledEventAttributes;
          byScheduled.set(id, { key: a.activityId!, type: a.activityType!.name!, scheduled: ms(e), started: 0, completed: 0 });
        } else if (e.activityTaskStartedEventAttributes) {
          started.set(Number(e.activityTaskStartedEventAttributes.scheduledEventId), ms(e));
        } else if (e.activityTaskCompletedEventAttributes) {
          const iv = byScheduled.get(Number(e.activityTaskCompletedEventAttributes.scheduledEventId))!;
          iv.started = started.get(Number(e.activityTaskCompletedEventAttributes.scheduledEventId))!;
          iv.completed = ms(e);
        }
      }
      const intervals = [...byScheduled.values()];
      const w0 = ms(events[0]!);
      const w1 = ms(events[events.length - 1]!);
      // Wall time during which at least one step was executing; the rest is orchestration (scheduling, dispatch).
      const sorted = intervals.map((i) => [i.started, i.completed] as const).sort((a, b) => a[0] - b[0]);
      let covered = 0;
      let end = -Infinity;
      for (const [s, e] of sorted) {
        if (s > end) { covered += e - s; end = e; } else if (e > end) { covered += e - end; end = e; }
      }
      const scriptOf = (type: string) => ({ ingest: 'ingest.py', validateData: 'validate.py', featurize: 'featurize.py', trainRecommender: 'train.py', evaluateRecommender: 'evaluate.py', publishModel: 'publish.py' })[type];
      const startup = new Map<string, number>();
      for (const [script, imports] of Object.entries(IMPORTS)) startup.set(script, startupMs(python, imports));
      let pyStartup = 0, pyTotal = 0, trainCompute = 0, otherCompute = 0, tsSteps = 0, kaonInActivity = 0;
      for (const iv of intervals) {
        const script = scriptOf(iv.type);
        const act = iv.completed - iv.started;
        if (!script) { tsSteps += act; continue; }
        const exec = executorMs.get(iv.key) ?? act;
        const boot = startup.get(script)!;
        pyStartup += boot;
        pyTotal += exec;
        kaonInActivity += Math.max(0, act - exec);
        if (script === 'train.py') trainCompute += Math.max(0, exec - boot);
        else otherCompute += Math.max(0, exec - boot);
      }
      const wall = w1 - w0;
      const pct = (v: number, of: number) => `${((100 * v) / of).toFixed(0)}%`;
      console.log(`\nretrain-recommender, caching off, ${intervals.length} step executions (${state.steps.length} in run state), concurrency 2 on ${os.cpus().length} cores`);
      console.log(`wall time (workflow start → completion): ${(wall / 1000).toFixed(1)} s   (client start → result: ${(clientWall / 1000).toFixed(1)} s)`);
      console.log(`  no step executing (orchestration: scheduling, dispatch, history): ${((wall - covered) / 1000).toFixed(2)} s = ${pct(wall - covered, wall)} of wall`);
      console.log(`  at least one step executing: ${(covered / 1000).toFixed(1)} s`);
      const busy = pyTotal + tsSteps + kaonInActivity;
      console.log(`step time, summed over steps (${(busy / 1000).toFixed(1)} s; two run at once):`);
      console.log(`  Python interpreter start + imports: ${(pyStartup / 1000).toFixed(1)} s = ${pct(pyStartup, busy)}   (per launch: ${[...startup].map(([s, v]) => `${s} ${v.toFixed(0)} ms`).join(', ')})`);
      console.log(`  training compute (train.py minus start-up): ${(trainCompute / 1000).toFixed(1)} s = ${pct(trainCompute, busy)}`);
      console.log(`  other Python compute + Kaon's process executor (artifact I/O, env lookup, protocol): ${(otherCompute / 1000).toFixed(1)} s = ${pct(otherCompute, busy)}`);
      console.log(`  Kaon activity wrapper outside the executor (validation, memo writes): ${(kaonInActivity / 1000).toFixed(2)} s = ${pct(kaonInActivity, busy)}`);
      console.log(`  TS steps: ${(tsSteps / 1000).toFixed(2)} s`);
  });
}

void main();
