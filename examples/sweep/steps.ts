import { z } from 'zod';
import { ArtifactRef, defineStep, python, Sweep } from 'kaon';

// Writes the grid as a JSON-lines manifest: one config per line. 100,000 lines never enter workflow history.
export const makeGrid = defineStep({
  name: 'makeGrid',
  version: 1,
  input: z.object({ size: z.number().int().positive() }),
  output: z.object({ grid: ArtifactRef, configs: z.number().int() }),
});

// Scores one config: cheap, so the sweep runs it in batches.
export const scoreConfig = defineStep({
  name: 'scoreConfig',
  version: 1,
  input: z.object({ lr: z.number(), depth: z.number().int(), seed: z.number().int() }),
  output: z.object({ lr: z.number(), depth: z.number().int(), score: z.number() }),
  cache: true,
});

// Streams the sweep's results in Python and keeps the best.
export const pickBest = defineStep({
  name: 'pickBest',
  version: 1,
  input: z.object({ sweep: Sweep }),
  output: z.object({ lr: z.number(), depth: z.number().int(), score: z.number(), scored: z.number().int() }),
  run: python('examples/sweep/pick_best.py'),
});
