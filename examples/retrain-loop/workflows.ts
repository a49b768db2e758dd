import { sleep } from '@temporalio/workflow';
import { z } from 'zod';
import { definePipeline } from 'kaon/workflow';
import { retrainDay } from './steps';

// State lives in the params; each day is one execution, so the history never grows with the loop's age.
const LoopState = z.object({
  day: z.number().int().default(0),
  days: z.number().int().default(365),
  champion: z.number().default(0),
  promotions: z.number().int().default(0),
});

export const retrainForever = definePipeline({
  name: 'retrain-forever',
  params: LoopState,
  async run(s, k) {
    const { ndcg, promoted } = await k.step(retrainDay, { day: s.day, champion: s.champion });
    const next = { ...s, day: s.day + 1, champion: promoted ? ndcg : s.champion, promotions: s.promotions + (promoted ? 1 : 0) };
    if (next.day >= s.days) return next;
    await sleep('1 day');
    return k.continueAsNew(next);
  },
});
