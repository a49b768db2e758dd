// The reference pipeline's two trainers on the same seeded data: NDCG@20, lift over the popularity baseline,
// trainings per country and wall time. `npm run bench:trainers [-- sklearn|spark-als]`; reports, never fails.
import path from 'node:path';
import { retrainRecommender } from '../workflows/recommender';
import { withBenchWorker } from './support';

async function main(): Promise<void> {
  await withBenchWorker('bench-trainers', () => ({}), async ({ kaon, tmp }) => {
    const rows: string[] = [];
    const all = ['sklearn', 'spark-als'] as const;
    const picked = all.filter((t) => process.argv.slice(2).length === 0 || process.argv.includes(t));
    for (const trainer of picked) {
      const t = Date.now();
      const run = await kaon.start(retrainRecommender, { registry: path.join(tmp, `registry-${trainer}`), trainer }, { cache: 'off' });
      const r = await run.result();
      const s = ((Date.now() - t) / 1000).toFixed(0);
      for (const c of r.countries) {
        rows.push(`| ${trainer} | ${c.country} | ${c.trainings} | ${c.hyperparameters.rank} | ${c.metrics.ndcgAtK.toFixed(4)} | ${c.metrics.baseline.ndcgAtK.toFixed(4)} | ${c.metrics.lift >= 0 ? '+' : ''}${(c.metrics.lift * 100).toFixed(0)}% | ${c.published ? 'yes' : 'no'} | ${s} s |`);
      }
    }
    console.log('\n| trainer | country | trainings | rank | NDCG@20 | baseline NDCG@20 | lift | published | run wall time |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
  });
}

void main();
