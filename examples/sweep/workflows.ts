import { z } from 'zod';
import { definePipeline } from 'kaon/workflow';
import { makeGrid, pickBest, scoreConfig } from './steps';

export const hyperSweep = definePipeline({
  name: 'hyper-sweep',
  params: z.object({ size: z.number().int().default(101), seed: z.number().int().default(7) }),
  async run(p, k) {
    const { grid } = await k.step(makeGrid, { size: p.size });
    const sweep = await k.map(scoreConfig, grid, {
      input: (c: { lr: number; depth: number }) => ({ lr: c.lr, depth: c.depth, seed: p.seed }),
      batch: 50,
      concurrency: 400,
      onFailure: 'after-running',
    });
    return k.step(pickBest, { sweep });
  },
});
