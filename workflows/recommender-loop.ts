import { ChildWorkflowFailure } from '@temporalio/workflow';
import { z } from 'zod';
import { ArtifactRef } from '../src/definition';
import { definePipeline } from '../src/workflow';
import { appendChampionHistory, CountrySpec, publishModel, type ChampionEntry } from '../activities/recommender';
import { viewingHistory } from './events';
import { DEFAULT_COUNTRIES, RetrainCountryParams, retrainCountry } from './recommender';

const DAY = 86_400_000;

const Champion = z.object({ version: z.string(), date: z.string(), ndcgAtK: z.number(), lift: z.number() });

export const RecommenderLoopParams = z.object({
  country: z.string().regex(/^[A-Z]{2}$/, 'a two-letter country code such as "JP"'),
  /** The country's synthetic data; default the reference pipeline's spec for the code. */
  spec: CountrySpec.optional(),
  /**
   * A challenger that beats the champion's NDCG by less than this (relative: 0.03 is 3%) needs a person's
   * approval; by more, it is promoted at once; not at all, it is not.
   */
  margin: z.number().min(0).max(10).default(0.03),
  approvalTimeout: z.string().default('3 days'),
  onApprovalTimeout: z.enum(['approve', 'reject']).default('reject'),
  /** The daily tick: retrain on yesterday's partition at this hour (UTC) unless an event already brought it. */
  tickHourUtc: z.number().int().min(0).max(23).default(2),
  /** Stop after this many retrains (tests, demos). Default: never. */
  iterations: z.number().int().min(1).optional(),
  registry: z.string().default('.kaon/registry'),
  /** The child retrain's settings (validation loop, metrics, data quality); its defaults otherwise. */
  settings: RetrainCountryParams.omit({ date: true, country: true, seed: true }).partial().default({}),
  // State carried from one iteration to the next (continue-as-new): not for people to set.
  iteration: z.number().int().min(0).default(0),
  champion: Champion.nullable().default(null),
  history: ArtifactRef.nullable().default(null),
  lastDate: z.iso.date().nullable().default(null),
});

export interface LoopOutcome {
  country: string;
  iterations: number;
  champion: z.output<typeof Champion> | null;
  history: ArtifactRef | null;
}

/**
 * The retraining loop: one long-lived run per country (`recommender-loop--JP`). Each iteration waits for that
 * country's viewing-history event or the daily tick, retrains as a child pipeline, gates the challenger on the
 * champion's metric (and on a person when the lift is within the margin), publishes, appends the decision to
 * the champion-history artifact, and continues as new with the champion in its params.
 */
export const recommenderLoop = definePipeline({
  name: 'recommender-loop',
  description: 'Retrain one country for ever: on viewing-history data or a daily tick → retrain-country → metric gate (+ approval within a margin) → publish',
  params: RecommenderLoopParams,
  async run(p, k): Promise<LoopOutcome> {
    const spec = p.spec ?? countrySpec(p.country);
    const champ = p.champion;
    k.summary(champ ? `champion ${champ.version} (NDCG ${champ.ndcgAtK.toFixed(4)}) · ${p.iteration} retrains` : `no champion yet · ${p.iteration} retrains`);

    // Wait for data: an event for this country, or the daily tick for a partition no event brought.
    let date: string;
    let trigger: string;
    for (;;) {
      const tickAt = nextTick(k.now(), p.tickHourUtc);
      const e = await k.waitFor(viewingHistory, { where: { country: p.country }, timeout: tickAt - k.now() });
      if (e) {
        [date, trigger] = [e.date, `viewing-history ${e.date}`];
        break;
      }
      [date, trigger] = [isoDate(tickAt - DAY), 'daily tick'];
      if (p.lastDate === null || date > p.lastDate) break;
    }

    const iteration = p.iteration + 1;
    const version = `${date}.r${iteration}`;
    const base = { iteration, date, trigger, at: new Date(k.now()).toISOString() };
    let entry: ChampionEntry;
    let champion = champ;
    try {
      const c = await k.child(retrainCountry, { ...p.settings, date, seed: daySeed(date), country: spec }, { key: `retrain[${date}]` });
      const challenger = { version, ndcgAtK: c.metrics.ndcgAtK, lift: c.metrics.lift, rank: c.hyperparameters.rank, trainings: c.trainings };
      const vs = champ ? (c.metrics.ndcgAtK - champ.ndcgAtK) / champ.ndcgAtK : Infinity;
      let verdict: Pick<ChampionEntry, 'decision' | 'reason' | 'by' | 'comment'>;
      if (!c.accepted) verdict = { decision: 'not-accepted', reason: `lift over the popularity baseline ${pct(c.metrics.lift)} is below the required ${pct(p.settings.minLift ?? 0.5)} after ${c.trainings} trainings` };
      else if (!champ) verdict = { decision: 'first-champion', reason: 'no champion yet' };
      else if (vs <= 0) verdict = { decision: 'kept', reason: `NDCG ${c.metrics.ndcgAtK.toFixed(4)} does not beat champion ${champ.version} (${champ.ndcgAtK.toFixed(4)})` };
      else if (vs >= p.margin) verdict = { decision: 'promoted', reason: `NDCG ${c.metrics.ndcgAtK.toFixed(4)} beats champion ${champ.version} by ${pct(vs)} (margin ${pct(p.margin)})` };
      else {
        const d = await k.approval('promote', {
          timeout: p.approvalTimeout,
          onTimeout: p.onApprovalTimeout,
          details: { country: p.country, date, challenger, champion: champ, improvement: vs, margin: p.margin },
        });
        const why = `beats champion ${champ.version} by ${pct(vs)}, within the ${pct(p.margin)} margin`;
        verdict = {
          decision: d.approved ? 'approved' : 'rejected',
          reason: d.timedOut ? `${why}; nobody decided within ${p.approvalTimeout}` : why,
          ...(d.by ? { by: d.by } : {}),
          ...(d.comment ? { comment: d.comment } : {}),
        };
      }
      if (verdict.decision === 'first-champion' || verdict.decision === 'promoted' || verdict.decision === 'approved') {
        await k.step(publishModel, {
          registry: p.registry,
          country: p.country,
          version,
          date,
          model: c.model,
          metrics: c.metrics,
          hyperparameters: c.hyperparameters,
          champion: champ ? { version: champ.version, ndcgAtK: champ.ndcgAtK } : null,
          lineage: { pipeline: 'recommender-loop', run: k.runId, iteration, trigger, interactions: c.interactions, train: c.features.train, holdout: c.features.holdout, model: c.model, dataQuality: c.dataQuality },
        }, { key: 'publish' });
        champion = { version, date, ndcgAtK: c.metrics.ndcgAtK, lift: c.metrics.lift };
      }
      entry = { ...base, ...verdict, challenger, champion: champion && { version: champion.version, date: champion.date, ndcgAtK: champion.ndcgAtK } };
    } catch (err) {
      // A bad day (data quality, a failing script) is recorded and the loop goes on; anything else is a bug.
      if (!(err instanceof ChildWorkflowFailure)) throw err;
      entry = { ...base, decision: 'failed', reason: err.cause?.message ?? err.message, challenger: null, champion: champion && { version: champion.version, date: champion.date, ndcgAtK: champion.ndcgAtK } };
    }
    const h = await k.step(appendChampionHistory, { country: p.country, history: p.history, entry }, { key: 'history' });
    const next = { ...p, iteration, champion, history: h.history, lastDate: p.lastDate && p.lastDate > date ? p.lastDate : date };
    if (p.iterations !== undefined && iteration >= p.iterations) return { country: p.country, iterations: iteration, champion, history: h.history };
    return k.continueAsNew(next);
  },
});

/** The reference spec of a country, or a moderate one seeded from its code. */
export function countrySpec(code: string): z.output<typeof CountrySpec> {
  const known = DEFAULT_COUNTRIES.find((c) => c.code === code);
  if (known) return known;
  const seed = code.charCodeAt(0) * 31 + code.charCodeAt(1);
  return { code, seed, users: 600, titles: 400, tasteRank: 8, tasteStrength: 4, popularityWeight: 1, viewsPerUser: 30, nullRate: 0 };
}

/** The next daily tick (hour:00 UTC) after `now`. */
export function nextTick(now: number, hourUtc: number): number {
  const t = Math.floor(now / DAY) * DAY + hourUtc * 3_600_000;
  return t > now ? t : t + DAY;
}

export function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Each day's partition gets its own synthetic data. */
export function daySeed(date: string): number {
  return Math.floor(Date.parse(`${date}T00:00:00Z`) / DAY) % 10_000;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}
