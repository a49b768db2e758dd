import { implementStep } from 'kaon/worker';
import { makeGrid, scoreConfig } from './steps';

export const makeGridImpl = implementStep(makeGrid, async ({ size }, ctx) => {
  const lines: string[] = [];
  for (let a = 0; a < size; a++) for (let d = 1; d <= 10; d++) lines.push(JSON.stringify({ lr: 10 ** (-4 + (3 * a) / Math.max(1, size - 1)), depth: d }));
  const grid = await ctx.artifacts.put({ bytes: `${lines.join('\n')}\n` }, { name: 'grid.jsonl' });
  return { grid, configs: lines.length };
});

// A synthetic validation score with one peak, at lr = 1e-2 and depth 6.
export const scoreConfigImpl = implementStep(scoreConfig, ({ lr, depth }) => ({
  lr,
  depth,
  score: 1 - (Math.log10(lr) + 2) ** 2 / 10 - (depth - 6) ** 2 / 50,
}));
