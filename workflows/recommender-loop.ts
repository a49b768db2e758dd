import { ChildWorkflowFailure } from '@temporalio/workflow';
import { z } from 'zod';
import { ArtifactRef } from 'kaon';
import { definePipeline } from 'kaon/workflow';
import { appendChampionHistory, CountrySpec, evaluateRecommender, Hyperparameters, publishModel, type ChampionEntry } from '../activities/recommender';
import { viewingHistory } from './events';
import { DEFAULT_COUNTRIES, RetrainCountryParams, retrainCountry } from './recommender';

const DAY = 86_400_000;

const Champion = z.object({
  version: z.string(),
  date: z.string(),
  ndcgAtK: z.number(),
  lift: z.number(),
  /** Added after the first release: state carried from older builds has none (then NDCG is compared as recorded). */
  model: ArtifactRef.optional(),
});

export const RecommenderLoopParams = z.object({
  country: z.string().regex(/^[A-Z]{2}$/, 'a two-letter country code such as "JP"'),
  /** The country's synthetic data; default the reference pipeline's spec for the code. */
  spec: CountrySpec.optional(),
  /**
   * A challenger that beats the champion's NDCG by less than this (relative: 0.03 is 3%) needs a person's
   * approval; by more, it is promoted at once; not at all, it is not.
   */
  margin: z.number().min(0).max(10).default(0.03),
  /**
   * The challenger must beat the popularity baseline's NDCG by this much at all (0.25 is 25%). Lower than the
   * batch pipeline's 50%: here the champion, not the baseline, is the bar to promotion.
   */
  minLift: z.number().default(0.25),
  approvalTimeout: z.string().default('3 days'),
  onApprovalTimeout: z.enum(['approve', 'reject']).default('reject'),
  /** The daily tick: retrain on yesterday's partition at this hour (UTC) unless an event already brought it. */
  tickHourUtc: z.number().int().min(0).max(23).default(2),
  /** Stop after this many retrains (tests, demos). Default: never. */
  iterations: z.number().int().min(1).optional(),
  registry: z.string().default('.kaon/registry'),
  /** The child retrain's other settings (validation loop, metrics, data quality); its defaults otherwise. */
  settings: RetrainCountryParams.omit({ date: true, country: true, day: true, minLift: true }).partial().default({}),
  // State carried from one iteration to the next (continue-as-new): not for people to set.
  iteration: z.number().int().min(0).default(0),
  champion: Champion.nullable().default(null),
  history: ArtifactRef.nullable().default(null),
  lastDate: z.iso.date().nullable().default(null),
});

/** Steer a running loop: the next retrains use these settings (kept across continue-as-new). */
export const Tune = z.object({
  grid: z.array(Hyperparameters).min(1).optional(),
  margin: z.number().min(0).max(10).optional(),
  minLift: z.number().optional(),
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
  messages: { tune: Tune },
  // One loop per country: `kaon run recommender-loop --params '{"country":"JP"}'` is run recommender-loop--JP.
  runKey: (p) => p.country,
  async run(params, k): Promise<LoopOutcome> {
    // `kaon send <run> tune --value '{"margin":0.1}'`: applies from the next retrain on, and to every one after.
    let p = params;
    k.onMessage('tune', (t) => {
      p = { ...p, ...(t.margin !== undefined ? { margin: t.margin } : {}), ...(t.minLift !== undefined ? { minLift: t.minLift } : {}), settings: { ...p.settings, ...(t.grid ? { grid: t.grid } : {}) } };
      return { margin: p.margin, minLift: p.minLift, grid: p.settings.grid ?? null };
    });
    const spec = p.spec ?? countrySpec(p.country);
    const champ = p.champion;
    k.summary(
      [champ ? `champion ${champ.version} (NDCG ${champ.ndcgAtK.toFixed(4)})` : 'no champion yet', `${p.iteration} retrains`, ...(p.history ? [`history sha256:${p.history.sha256}`] : [])].join(' · '),
    );

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
      const c = await k.child(retrainCountry, { ...p.settings, minLift: p.minLift, date, day: dayNumber(date), country: spec }, { key: `retrain[${date}]` });
      const challenger = { version, ndcgAtK: c.metrics.ndcgAtK, lift: c.metrics.lift, rank: c.hyperparameters.rank, trainings: c.trainings };
      // Each day's data differs: the champion is scored again on the challenger's holdout, so both meet one test.
      const bar = champ?.model
        ? (await k.step(evaluateRecommender, { country: p.country, model: champ.model, train: c.features.train, holdout: c.features.holdout, k: c.metrics.k }, { key: 'evaluate-champion' })).ndcgAtK
        : champ?.ndcgAtK;
      const vs = champ && bar !== undefined ? (c.metrics.ndcgAtK - bar) / bar : Infinity;
      let verdict: Pick<ChampionEntry, 'decision' | 'reason' | 'by' | 'comment'>;
      if (!c.accepted) verdict = { decision: 'not-accepted', reason: `lift over the popularity baseline ${pct(c.metrics.lift)} is below the required ${pct(p.minLift)} after ${c.trainings} trainings` };
      else if (!champ) verdict = { decision: 'first-champion', reason: 'no champion yet' };
      else if (vs <= 0) verdict = { decision: 'kept', reason: `NDCG ${c.metrics.ndcgAtK.toFixed(4)} does not beat champion ${champ.version} (${bar!.toFixed(4)} on the same data)` };
      else if (vs >= p.margin) verdict = { decision: 'promoted', reason: `NDCG ${c.metrics.ndcgAtK.toFixed(4)} beats champion ${champ.version} (${bar!.toFixed(4)} on the same data) by ${pct(vs)} (margin ${pct(p.margin)})` };
      else {
        const d = await k.approval('promote', {
          timeout: p.approvalTimeout,
          onTimeout: p.onApprovalTimeout,
          details: { country: p.country, date, challenger, champion: { version: champ.version, ndcgAtK: bar }, improvement: vs, margin: p.margin },
        });
        const why = `NDCG ${c.metrics.ndcgAtK.toFixed(4)} beats champion ${champ.version} (${bar!.toFixed(4)} on the same data) by ${pct(vs)}, within the ${pct(p.margin)} margin`;
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
        champion = { version, date, ndcgAtK: c.metrics.ndcgAtK, lift: c.metrics.lift, model: c.model };
      }
      entry = { ...base, ...verdict, challenger, champion: entryChampion(champion) };
    } catch (err) {
      // A bad day (data quality, a failing script) is recorded and the loop goes on; anything else is a bug.
      if (!(err instanceof ChildWorkflowFailure)) throw err;
      entry = { ...base, decision: 'failed', reason: err.cause?.message ?? err.message, challenger: null, champion: entryChampion(champion) };
    }
    const h = await k.step(appendChampionHistory, { country: p.country, history: p.history, entry }, { key: 'history' });
    const next = { ...p, iteration, champion, history: h.history, lastDate: p.lastDate && p.lastDate > date ? p.lastDate : date };
    if (p.iterations !== undefined && iteration >= p.iterations) return { country: p.country, iterations: iteration, champion, history: h.history };
    return k.continueAsNew(next);
  },
});

/** The champion as a history line records it (no model ref: the line is for people). */
function entryChampion(c: z.output<typeof Champion> | null): ChampionEntry['champion'] {
  return c && { version: c.version, date: c.date, ndcgAtK: c.ndcgAtK };
}

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

/** Days since 1970: each day's partition gets its own sample of the country's views. */
export function dayNumber(date: string): number {
  return Math.floor(Date.parse(`${date}T00:00:00Z`) / DAY);
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}
