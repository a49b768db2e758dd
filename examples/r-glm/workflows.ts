// The R example's pipeline: makeData (TS) → fitGlm (R).
import { z } from 'zod';
import { definePipeline } from 'kaon/workflow';
import { fitGlm, makeData } from './steps';

export const rGlm = definePipeline({
  name: 'r-glm',
  params: z.object({
    rows: z.number().int().default(500),
    seed: z.number().int().default(42),
    formula: z.string().default('y ~ x1 + x2'),
    family: z.enum(['gaussian', 'binomial', 'poisson']).default('gaussian'),
  }),
  async run(p, k) {
    const data = await k.step(makeData, { rows: p.rows, seed: p.seed });
    return k.step(fitGlm, { data: data.csv, formula: p.formula, family: p.family });
  },
});
