import { z } from 'zod';
import { defineStep } from 'kaon';

// One day's retraining: trains on that day's data and reports the model's metric.
export const retrainDay = defineStep({
  name: 'retrainDay',
  version: 1,
  input: z.object({ day: z.number().int(), champion: z.number() }),
  output: z.object({ ndcg: z.number(), promoted: z.boolean() }),
});
