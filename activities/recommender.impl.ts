// Worker-side implementation of the recommender's TS step.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { implementStep } from 'kaon/worker';
import { appendChampionHistory, championChallenger } from './recommender';

/** Reads `<registry>/<country>/current.json`; a challenger is published only if it beats the champion's NDCG. */
export const championChallengerImpl = implementStep(championChallenger, async ({ registry, candidates }, ctx) => {
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
  if (candidates.length > 0) {
    const rows = decisions.map((d) => ({ country: d.country, challenger: candidates.find((c) => c.country === d.country)!.metrics.ndcgAtK, champion: d.champion?.ndcgAtK ?? null, publish: d.publish }));
    await ctx.card({
      title: 'Challenger vs champion',
      markdown: [
        'NDCG of each country\'s challenger against its published champion; a challenger is published only if it is better.',
        '',
        '| country | challenger NDCG | champion | decision |',
        '|---|---|---|---|',
        ...decisions.map((d, i) => `| ${d.country} | ${rows[i]!.challenger.toFixed(4)} | ${d.champion ? `${d.champion.ndcgAtK.toFixed(4)} (${d.champion.version})` : '—'} | ${d.publish ? 'publish' : 'keep champion'}: ${d.reason} |`),
        '',
        '![comparison](comparison.svg)',
      ].join('\n'),
      images: [{ name: 'comparison.svg', bytes: comparisonSvg(rows) }],
    });
  }
  return { decisions };
});

/** A grouped bar chart (challenger vs champion NDCG per country) as SVG: small, crisp, no plotting library. */
function comparisonSvg(rows: { country: string; challenger: number; champion: number | null; publish: boolean }[]): string {
  const w = 520, h = 240, left = 50, bottom = 30, top = 30;
  const max = Math.max(0.01, ...rows.flatMap((r) => [r.challenger, r.champion ?? 0])) * 1.1;
  const group = (w - left - 10) / rows.length;
  const y = (v: number) => top + (h - top - bottom) * (1 - v / max);
  const bars = rows.map((r, i) => {
    const x = left + i * group + group * 0.15;
    const bw = group * 0.33;
    const bar = (v: number, dx: number, fill: string) => `<rect x="${(x + dx).toFixed(1)}" y="${y(v).toFixed(1)}" width="${bw.toFixed(1)}" height="${(h - bottom - y(v)).toFixed(1)}" fill="${fill}"><title>${v.toFixed(4)}</title></rect>`;
    return [
      bar(r.challenger, 0, r.publish ? '#2e7d32' : '#90a4ae'),
      r.champion !== null ? bar(r.champion, bw + 2, '#1565c0') : '',
      `<text x="${(x + bw).toFixed(1)}" y="${h - 10}" text-anchor="middle" font-size="12">${r.country}</text>`,
    ].join('');
  });
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<text x="${left - 6}" y="${(y(max * f / 1.1) + 4).toFixed(1)}" text-anchor="end" font-size="10">${((max * f) / 1.1).toFixed(2)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif">`
    + `<rect width="${w}" height="${h}" fill="#fff"/><text x="${left}" y="18" font-size="13">NDCG: challenger (green: published, grey: kept champion) vs champion (blue)</text>`
    + `<line x1="${left}" y1="${h - bottom}" x2="${w - 10}" y2="${h - bottom}" stroke="#333"/>${ticks.join('')}${bars.join('')}</svg>`;
}

/** Copy-on-append: the old artifact stays as it was (runs that refer to it keep their lineage). */
export const appendChampionHistoryImpl = implementStep(appendChampionHistory, async ({ country, history, entry }, ctx) => {
  const before = history ? await readFile(await ctx.artifacts.getPath(history), 'utf8') : '';
  const text = `${before}${JSON.stringify(entry)}\n`;
  const ref = await ctx.artifacts.put({ bytes: text }, { name: `champion-history-${country}.jsonl`, mediaType: 'application/x-ndjson' });
  return { history: ref, entries: text.split('\n').filter(Boolean).length };
});
