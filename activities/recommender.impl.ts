// Worker-side implementation of the recommender's TS step.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { implementStep } from 'kaon/worker';
import { appendChampionHistory, championChallenger } from './recommender';

/** Reads `<registry>/<country>/current.json`; a challenger is published only if it beats the champion's NDCG. */
export const championChallengerImpl = implementStep(championChallenger, async ({ registry, candidates }) => {
  const decisions = await Promise.all(
    candidates.map(async ({ country, metrics }) => {
      const file = path.resolve(registry, country, 'current.json');
      const current = await readFile(file, 'utf8').then((t) => JSON.parse(t) as { version: string; metrics: { ndcgAtK: number } }, () => undefined);
      if (!current) return { country, publish: true, reason: 'no published model yet', champion: null };
      const champion = { version: current.version, ndcgAtK: current.metrics.ndcgAtK };
      const better = metrics.ndcgAtK > champion.ndcgAtK;
      return {
        country,
        publish: better,
        reason: better
          ? `challenger NDCG ${metrics.ndcgAtK.toFixed(4)} beats champion ${champion.ndcgAtK.toFixed(4)}`
          : `champion ${champion.version} (NDCG ${champion.ndcgAtK.toFixed(4)}) is at least as good`,
        champion,
      };
    }),
  );
  return { decisions };
});

/** Copy-on-append: the old artifact stays as it was (runs that refer to it keep their lineage). */
export const appendChampionHistoryImpl = implementStep(appendChampionHistory, async ({ country, history, entry }, ctx) => {
  const before = history ? await readFile(await ctx.artifacts.getPath(history), 'utf8') : '';
  const text = `${before}${JSON.stringify(entry)}\n`;
  const ref = await ctx.artifacts.put({ bytes: text }, { name: `champion-history-${country}.jsonl`, mediaType: 'application/x-ndjson' });
  return { history: ref, entries: text.split('\n').filter(Boolean).length };
});
