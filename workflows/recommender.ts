import { ApplicationFailure } from '@temporalio/workflow';
import { z } from 'zod';
import { ArtifactRef, scheduledDate } from 'kaon';
import { definePipeline, type Kaon } from 'kaon/workflow';
import {
  championChallenger, CountrySpec, evaluateRecommender, featurize, Hyperparameters, ingest, publishModel, Trainer, trainRecommender, trainRecommenderAls, validateData,
  type RankingMetrics,
} from '../activities/recommender';

/**
 * Four synthetic countries. JP is seeded to be hard: its tastes span 32 latent dimensions, so the rank-4 and
 * rank-8 models do not beat the popularity baseline by the required 50% and the validation loop retrains it
 * twice, up to rank 16. US, BR and IN pass with the first model.
 */
export const DEFAULT_COUNTRIES: CountrySpec[] = [
  { code: 'US', seed: 11, users: 600, titles: 400, tasteRank: 4, tasteStrength: 3, popularityWeight: 1, viewsPerUser: 30, nullRate: 0 },
  { code: 'BR', seed: 12, users: 600, titles: 400, tasteRank: 4, tasteStrength: 3, popularityWeight: 1, viewsPerUser: 30, nullRate: 0 },
  { code: 'IN', seed: 13, users: 600, titles: 400, tasteRank: 4, tasteStrength: 3, popularityWeight: 1, viewsPerUser: 30, nullRate: 0 },
  { code: 'JP', seed: 41, users: 600, titles: 400, tasteRank: 32, tasteStrength: 5, popularityWeight: 1, viewsPerUser: 30, nullRate: 0 },
];

export const RecommenderParams = z.object({
  // A scheduled run (or backfill) processes the day it was scheduled for; by hand, this date unless given.
  date: scheduledDate().default('2026-11-21'),
  seed: z.number().int().default(7),
  countries: z.array(CountrySpec).min(1).max(200).default(DEFAULT_COUNTRIES),
  /** Countries trained at once. */
  concurrency: z.number().int().min(1).max(64).default(2),
  k: z.number().int().min(1).max(100).default(20),
  /** Required NDCG@k lift over the popularity baseline: 0.5 means 50% better. */
  minLift: z.number().default(0.5),
  /** Hyperparameters tried in order; the validation loop moves to the next when a model is not good enough. */
  grid: z.array(Hyperparameters).min(1).default([{ rank: 4, l2: 0 }, { rank: 8, l2: 0 }, { rank: 16, l2: 0 }]),
  /** Retrains after the first model, at most (Meson's "go back and repeat if unstable"). */
  maxRetrains: z.number().int().min(0).max(10).default(2),
  epochs: z.number().int().min(1).default(8),
  itersPerEpoch: z.number().int().min(1).default(10),
  holdoutFraction: z.number().gt(0).lt(1).default(0.2),
  minRows: z.number().int().min(0).default(1000),
  maxNullRate: z.number().min(0).max(1).default(0.01),
  /** 'sklearn' (NMF, fast; the default) or 'spark-als' (Spark MLlib ALS in a spark() step: needs Java 17+). */
  trainer: Trainer.default('sklearn'),
  /** Model registry folder, on the workers' file system. */
  registry: z.string().default('.kaon/registry'),
});

/** What training one country needs (the reference pipelines share these settings). */
type TrainSettings = Pick<z.output<typeof RecommenderParams>, 'seed' | 'k' | 'minLift' | 'grid' | 'maxRetrains' | 'epochs' | 'itersPerEpoch' | 'holdoutFraction'> & { trainer?: Trainer };

/**
 * featurize → train ⟲ evaluate for one country: the validation loop retrains with the next hyperparameters
 * while the model does not beat the popularity baseline by minLift (Meson's "go back and repeat if unstable").
 */
async function trainCountry(k: Kaon, p: TrainSettings, country: string, interactions: ArtifactRef) {
  const features = await k.step(featurize, { country, interactions, holdoutFraction: p.holdoutFraction, seed: p.seed });
  let trainings = 0;
  for (;;) {
    const hp = p.grid[Math.min(trainings, p.grid.length - 1)]!;
    trainings++;
    const input = { country, train: features.train, rank: hp.rank, l2: hp.l2, epochs: p.epochs, itersPerEpoch: p.itersPerEpoch, seed: p.seed };
    const trained = p.trainer === 'spark-als' ? await k.step(trainRecommenderAls, input, { key: 'train' }) : await k.step(trainRecommender, input, { key: 'train' });
    const metrics = await k.step(evaluateRecommender, { country, model: trained.model, train: features.train, holdout: features.holdout, k: p.k }, { key: 'evaluate' });
    const accepted = metrics.lift >= p.minLift;
    if (accepted || trainings > p.maxRetrains || trainings >= p.grid.length) {
      return { country, trainings, accepted, hyperparameters: hp, metrics, model: trained.model, features };
    }
  }
}

interface CountryOutcome {
  country: string;
  trainings: number;
  accepted: boolean;
  hyperparameters: Hyperparameters;
  metrics: RankingMetrics;
  published: boolean;
  decision: string;
  version: string | null;
}

export const retrainRecommender = definePipeline({
  name: 'retrain-recommender',
  description: 'Per-country recommender retraining: ingest → validate → featurize → train ⟲ evaluate → champion/challenger → publish',
  params: RecommenderParams,
  async run(p, k) {
    const data = await k.step(ingest, { date: p.date, seed: p.seed, countries: p.countries });
    const quality = await k.step(validateData, { date: p.date, datasets: data.datasets, minRows: p.minRows, maxNullRate: p.maxNullRate });
    if (!quality.ok) throw dataQualityFailure(quality);

    const candidates = await k.foreach(p.countries, { concurrency: p.concurrency, onFailure: 'after-running', label: (c) => c.code }, (c) =>
      trainCountry(k, p, c.code, data.datasets[c.code]!.interactions),
    );

    const accepted = candidates.filter((c) => c.accepted);
    const { decisions } = await k.step(championChallenger, { registry: p.registry, candidates: accepted.map((c) => ({ country: c.country, metrics: c.metrics })) });
    const version = `${p.date}.${k.runId.slice(-8)}`;
    const toPublish = accepted.filter((c) => decisions.find((d) => d.country === c.country)?.publish);
    const published = await k.foreach(toPublish, { concurrency: p.concurrency, label: (c) => c.country }, (c) =>
      k.step(publishModel, {
        registry: p.registry,
        country: c.country,
        version,
        date: p.date,
        model: c.model,
        metrics: c.metrics,
        hyperparameters: c.hyperparameters,
        champion: decisions.find((d) => d.country === c.country)?.champion ?? null,
        lineage: { pipeline: 'retrain-recommender', run: k.runId, interactions: data.datasets[c.country]?.interactions, train: c.features.train, holdout: c.features.holdout, model: c.model, dataQuality: quality.report },
      }, { key: 'publish' }),
    );

    const outcomes: CountryOutcome[] = candidates.map((c) => {
      const d = decisions.find((x) => x.country === c.country);
      const pub = published.find((x) => x.country === c.country);
      return {
        country: c.country,
        trainings: c.trainings,
        accepted: c.accepted,
        hyperparameters: c.hyperparameters,
        metrics: c.metrics,
        published: pub !== undefined,
        decision: c.accepted ? (d?.reason ?? '') : `not published: lift ${(c.metrics.lift * 100).toFixed(0)}% < required ${(p.minLift * 100).toFixed(0)}% after ${c.trainings} trainings`,
        version: pub?.version ?? null,
      };
    });
    return { date: p.date, version, trainer: p.trainer, countries: outcomes, table: renderTable(outcomes, p.k) };
  },
});

function dataQualityFailure(quality: { problems: string[]; report: ArtifactRef }): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'KAON_DATA_QUALITY',
    nonRetryable: true,
    message: `data validation failed: ${quality.problems.join('; ')}. Report: ${quality.report.uri}. To fix: repair the input data (or relax minRows/maxNullRate) and run again.`,
    details: [{ report: quality.report }],
  });
}

/** The settings of one country's retrain (the loop passes its own). */
export const RetrainCountryParams = RecommenderParams.pick({ seed: true, k: true, minLift: true, grid: true, maxRetrains: true, epochs: true, itersPerEpoch: true, holdoutFraction: true, minRows: true, maxNullRate: true }).extend({
  date: z.iso.date(),
  country: CountrySpec,
  /** The day's views of the same world (the loop passes one per date); without it the seed decides the data. */
  day: z.number().int().optional(),
});

/** One country's retrain, as a child pipeline of recommender-loop: ingest → validate → featurize → train ⟲ evaluate. */
export const retrainCountry = definePipeline({
  name: 'retrain-country',
  description: "One country's retrain (the recommender loop's child): ingest → validate → featurize → train ⟲ evaluate",
  params: RetrainCountryParams,
  async run(p, k) {
    const data = await k.step(ingest, { date: p.date, seed: p.seed, countries: [p.country], ...(p.day !== undefined ? { day: p.day } : {}) });
    const quality = await k.step(validateData, { date: p.date, datasets: data.datasets, minRows: p.minRows, maxNullRate: p.maxNullRate });
    if (!quality.ok) throw dataQualityFailure(quality);
    const interactions = data.datasets[p.country.code]!.interactions;
    const trained = await trainCountry(k, p, p.country.code, interactions);
    return { date: p.date, ...trained, interactions, dataQuality: quality.report };
  },
});

function renderTable(rows: CountryOutcome[], k: number): string {
  const head = `country  trainings  rank  recall@${k}  NDCG@${k}  baseline NDCG  lift   published`;
  const lines = rows.map((r) =>
    [
      r.country.padEnd(7),
      String(r.trainings).padStart(9),
      String(r.hyperparameters.rank).padStart(5),
      r.metrics.recallAtK.toFixed(4).padStart(9 + String(k).length - 2),
      r.metrics.ndcgAtK.toFixed(4).padStart(7 + String(k).length - 2),
      r.metrics.baseline.ndcgAtK.toFixed(4).padStart(13),
      `${r.metrics.lift >= 0 ? '+' : ''}${(r.metrics.lift * 100).toFixed(0)}%`.padStart(5),
      `  ${r.published ? `yes (${r.version})` : 'no'} — ${r.decision}`,
    ].join('  '),
  );
  return [head, ...lines].join('\n');
}
