import { z } from 'zod';
import { defineStep, python } from 'kaon';

// A TS step: the contract is pure data, shared by the pipeline, the worker and clients.
export const cleanText = defineStep({
  name: 'cleanText',
  version: 1,
  input: z.object({ text: z.string().min(1) }),
  output: z.object({ words: z.array(z.string()) }),
});

// A Python step: same kind of contract, plus the script that runs it (resolved on the worker).
export const wordStats = defineStep({
  name: 'wordStats',
  version: 1,
  input: z.object({ words: z.array(z.string()), top: z.number().int().positive() }),
  output: z.object({ total: z.number().int(), distinct: z.number().int(), top: z.array(z.tuple([z.string(), z.number().int()])) }),
  run: python('examples/first-pipeline/word_stats.py'),
  retry: { maximumAttempts: 2 },
});
