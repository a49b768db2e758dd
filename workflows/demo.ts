import { z } from 'zod';
import { definePipeline } from 'kaon/workflow';
import { evaluateModel, generateDataset, ModelKind, profileDataset, reportMetrics, splitDataset, trainModel, type Metrics } from '../activities/demo';

export const MlDemoParams = z.object({
  seed: z.number().int().default(42),
  rows: z.number().int().min(20).max(3000).default(1200),
  features: z.number().int().min(2).max(12).default(5),
  testFraction: z.number().gt(0).lt(1).default(0.25),
  models: z.array(ModelKind).min(1).default(['logistic', 'naive-bayes', 'knn']),
  concurrency: z.number().int().min(1).max(16).default(3),
});

/** The first demo: generate → (profile ∥ split) → foreach model: train → evaluate → report. */
export const mlDemo = definePipeline({
  name: 'ml-demo',
  description: 'Seeded tabular classification: three models trained and compared on held-out data',
  params: MlDemoParams,
  async run(p, k) {
    const data = await k.step(generateDataset, { seed: p.seed, rows: p.rows, features: p.features });
    const { profile, split } = await k.parallel({
      profile: () => k.step(profileDataset, { data }),
      split: () => k.step(splitDataset, { data, testFraction: p.testFraction, seed: p.seed }),
    });
    const evaluated = await k.foreach(p.models, { concurrency: p.concurrency, onFailure: 'after-running' }, async (kind) => {
      const { model } = await k.step(trainModel, { kind, train: split.train });
      return [kind, await k.step(evaluateModel, { model, test: split.test })] as const;
    });
    const metrics: Record<string, Metrics> = Object.fromEntries(evaluated);
    const report = await k.step(reportMetrics, { metrics });
    return { metrics, best: report.best, table: report.table, profile };
  },
});
