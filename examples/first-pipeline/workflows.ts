import { z } from 'zod';
import { definePipeline } from 'kaon/workflow';
import { cleanText, wordStats } from './steps';

export const wordCount = definePipeline({
  name: 'word-count',
  params: z.object({ text: z.string(), top: z.number().int().default(3) }),
  async run(p, k) {
    const { words } = await k.step(cleanText, { text: p.text });
    return k.step(wordStats, { words, top: p.top });
  },
});
