// Step contracts of the demo pipeline. Pure: imported by the workflow, the worker and clients alike.
import { z } from 'zod';
import { defineStep } from 'kaon';

export const Dataset = z.object({ x: z.array(z.array(z.number())), y: z.array(z.number().int().min(0).max(1)) });
export const ModelKind = z.enum(['logistic', 'naive-bayes', 'knn']);
export const Model = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('logistic'), weights: z.array(z.number()), bias: z.number() }),
  z.object({ kind: z.literal('naive-bayes'), prior: z.number(), mean: z.tuple([z.array(z.number()), z.array(z.number())]), variance: z.tuple([z.array(z.number()), z.array(z.number())]) }),
  z.object({ kind: z.literal('knn'), k: z.number().int().positive(), train: Dataset }),
]);
export const Metrics = z.object({ accuracy: z.number(), precision: z.number(), recall: z.number(), f1: z.number(), auc: z.number() });
export type Metrics = z.infer<typeof Metrics>;

export const generateDataset = defineStep({
  name: 'generateDataset',
  version: 1,
  description: 'Seeded binary-classification data with a planted linear rule and label noise.',
  input: z.object({ seed: z.number().int(), rows: z.number().int().min(20).max(3000), features: z.number().int().min(2).max(12) }),
  output: Dataset,
  timeout: '1m',
});

export const profileDataset = defineStep({
  name: 'profileDataset',
  version: 1,
  input: z.object({ data: Dataset }),
  output: z.object({ rows: z.number().int(), features: z.number().int(), positiveRate: z.number(), means: z.array(z.number()), stds: z.array(z.number()) }),
  timeout: '1m',
});

export const splitDataset = defineStep({
  name: 'splitDataset',
  version: 1,
  input: z.object({ data: Dataset, testFraction: z.number().gt(0).lt(1), seed: z.number().int() }),
  output: z.object({ train: Dataset, test: Dataset }),
  timeout: '1m',
});

export const trainModel = defineStep({
  name: 'trainModel',
  version: 1,
  input: z.object({ kind: ModelKind, train: Dataset, epochs: z.number().int().positive().default(300) }),
  output: z.object({ model: Model, trainingRows: z.number().int() }),
  timeout: '5m',
  heartbeat: '30s',
});

export const evaluateModel = defineStep({
  name: 'evaluateModel',
  version: 1,
  input: z.object({ model: Model, test: Dataset }),
  output: Metrics,
  timeout: '2m',
});

export const reportMetrics = defineStep({
  name: 'reportMetrics',
  version: 1,
  input: z.object({ metrics: z.record(z.string(), Metrics) }),
  output: z.object({ best: ModelKind, table: z.string() }),
  timeout: '1m',
});
