// Cold run vs cache-hit rerun of the reference pipeline: wall time and steps actually executed.
// Part of `npm run bench:artifacts`. Fresh artifact store (cold cache), warm virtualenv, private dev server.
import path from 'node:path';
import { RECSYS_REQUIREMENTS } from '../activities/recommender';
import { ensurePythonEnv } from '../src/execution/python-env';
import { kaonHome } from '../src/runtime/paths';
import { retrainRecommender } from '../workflows/recommender';
import { withBenchWorker } from './support';

async function main(): Promise<void> {
  await ensurePythonEnv(RECSYS_REQUIREMENTS, { home: kaonHome(), say: (m) => console.log(m) });
  await withBenchWorker('bench-cache', () => ({}), async ({ kaon, tmp }) => {
    const rows: { label: string; ms: number; executed: number; cached: number }[] = [];
    for (const label of ['cold run', 'cache-hit rerun']) {
      const t = process.hrtime.bigint();
      const run = await kaon.start(retrainRecommender, { registry: path.join(tmp, 'registry') });
      await run.result();
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      const steps = (await run.progress()).steps;
      rows.push({ label, ms, executed: steps.filter((s) => s.status === 'succeeded').length, cached: steps.filter((s) => s.status === 'cached').length });
    }
    console.log('\nretrain-recommender (4 countries), cache on');
    for (const r of rows) console.log(`${r.label.padEnd(16)} ${(r.ms / 1000).toFixed(2).padStart(6)} s   steps executed ${String(r.executed).padStart(2)}, reused from cache ${String(r.cached).padStart(2)}`);
    console.log(`rerun/cold wall time: ${(rows[1]!.ms / rows[0]!.ms).toFixed(3)} (${(rows[0]!.ms / rows[1]!.ms).toFixed(1)}x faster)`);
  });
}

void main();
