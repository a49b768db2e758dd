import { implementStep } from 'kaon/worker';
import { makeData } from './steps';

/** mulberry32: a small seeded PRNG, so the CSV (and the fit) is the same on every machine. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const makeDataImpl = implementStep(makeData, async ({ rows, seed }, ctx) => {
  const r = rng(seed);
  const lines = ['x1,x2,y'];
  for (let i = 0; i < rows; i++) {
    const x1 = r() * 10;
    const x2 = r() * 5;
    const noise = (r() + r() + r() - 1.5) * 0.8;
    lines.push(`${x1.toFixed(4)},${x2.toFixed(4)},${(1.5 + 2 * x1 - 0.7 * x2 + noise).toFixed(4)}`);
  }
  const csv = await ctx.artifacts.put({ bytes: `${lines.join('\n')}\n` }, { name: 'data.csv', mediaType: 'text/csv' });
  return { csv, rows };
});
