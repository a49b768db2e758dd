// The R example: a TS step writes a seeded CSV, an R step (Rscript, through r/kaon_step.R) fits a glm on it and
// returns the coefficients and a PNG plot. Tested by test/r/r-glm.test.ts (the R tier).
import { z } from 'zod';
import { ArtifactRef, command, defineStep } from 'kaon';

export const makeData = defineStep({
  name: 'makeData',
  version: 1,
  description: 'A seeded CSV: y = 1.5 + 2·x1 − 0.7·x2 + noise',
  input: z.object({ rows: z.number().int().min(10).max(1_000_000), seed: z.number().int() }),
  output: z.object({ csv: ArtifactRef, rows: z.number().int() }),
  retry: { maximumAttempts: 1 },
});

export const fitGlm = defineStep({
  name: 'fitGlm',
  version: 1,
  description: 'glm() in R on a CSV artifact: coefficients, AIC and a plot of fitted against observed',
  input: z.object({ data: ArtifactRef, formula: z.string().min(3), family: z.enum(['gaussian', 'binomial', 'poisson']) }),
  output: z.object({
    coefficients: z.record(z.string(), z.number()),
    aic: z.number(),
    n: z.number().int(),
    plot: ArtifactRef,
  }),
  run: command(['Rscript', 'examples/r-glm/fit.R']),
  retry: { maximumAttempts: 2, initialInterval: '200ms' },
  timeout: '5m',
});
