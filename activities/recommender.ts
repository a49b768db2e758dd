// Step contracts of the reference pipeline `retrain-recommender`. Python steps carry a python() descriptor
// (plain data, resolved on the worker); championChallenger is a TS step implemented in recommender.impl.ts.
import { z } from 'zod';
import { ArtifactRef, defineStep, python, spark } from 'kaon';

/** One virtualenv for all Python steps of this pipeline, built by Kaon on first use (cached under .kaon/venvs). */
export const RECSYS_REQUIREMENTS = ['numpy==2.3.4', 'scipy==1.16.3', 'scikit-learn==1.7.2', 'matplotlib==3.10.7'] as const;
const py = (script: string) => python(`activities/python/${script}`, { requirements: RECSYS_REQUIREMENTS });

export const CountrySpec = z.object({
  code: z.string().regex(/^[A-Z]{2}$/, 'a two-letter country code such as "US"'),
  seed: z.number().int(),
  users: z.number().int().min(50).max(20_000),
  titles: z.number().int().min(50).max(10_000),
  tasteRank: z.number().int().min(1).max(128),
  tasteStrength: z.number().positive(),
  popularityWeight: z.number().min(0),
  viewsPerUser: z.number().int().min(5).max(500),
  nullRate: z.number().min(0).max(1).default(0),
});
export type CountrySpec = z.infer<typeof CountrySpec>;

export const Hyperparameters = z.object({ rank: z.number().int().min(1).max(256), l2: z.number().min(0) });
export type Hyperparameters = z.infer<typeof Hyperparameters>;

export const RankingMetrics = z.object({
  recallAtK: z.number(),
  ndcgAtK: z.number(),
  baseline: z.object({ recallAtK: z.number(), ndcgAtK: z.number() }),
  lift: z.number(),
  k: z.number().int(),
});
export type RankingMetrics = z.infer<typeof RankingMetrics>;

export const ingest = defineStep({
  name: 'ingest',
  version: 1,
  description: 'Synthetic implicit-feedback viewing data per country, as .npz artifacts',
  input: z.object({
    date: z.string(),
    seed: z.number().int(),
    countries: z.array(CountrySpec).min(1),
    /** A day of the same world: the same tastes, that day's views. Without it, the seed decides everything. */
    day: z.number().int().optional(),
  }),
  output: z.object({
    date: z.string(),
    datasets: z.record(z.string(), z.object({ interactions: ArtifactRef, rows: z.number().int(), users: z.number().int(), titles: z.number().int() })),
  }),
  run: py('ingest.py'),
  cache: true,
  timeout: '10m',
  heartbeat: '2m',
});

export const validateData = defineStep({
  name: 'validateData',
  version: 1,
  description: 'Data quality: schema, row counts, null rates, id ranges',
  input: z.object({
    date: z.string(),
    datasets: z.record(z.string(), z.object({ interactions: ArtifactRef, users: z.number().int(), titles: z.number().int() })),
    minRows: z.number().int().min(0),
    maxNullRate: z.number().min(0).max(1),
  }),
  output: z.object({ ok: z.boolean(), problems: z.array(z.string()), report: ArtifactRef }),
  run: py('validate.py'),
  cache: true,
  timeout: '10m',
});

export const featurize = defineStep({
  name: 'featurize',
  version: 1,
  description: 'Per-user train/holdout split',
  input: z.object({ country: z.string(), interactions: ArtifactRef, holdoutFraction: z.number().gt(0).lt(1), seed: z.number().int() }),
  output: z.object({ train: ArtifactRef, holdout: ArtifactRef, trainRows: z.number().int(), holdoutRows: z.number().int(), users: z.number().int(), titles: z.number().int() }),
  run: py('featurize.py'),
  cache: true,
  timeout: '10m',
});

export const trainRecommender = defineStep({
  name: 'trainRecommender',
  version: 1,
  description: 'Matrix factorisation (scikit-learn NMF)',
  input: z.object({
    country: z.string(),
    train: ArtifactRef,
    rank: z.number().int().min(1),
    l2: z.number().min(0),
    epochs: z.number().int().min(1),
    itersPerEpoch: z.number().int().min(1),
    seed: z.number().int(),
  }),
  output: z.object({ model: ArtifactRef, rank: z.number().int(), epochs: z.number().int(), relativeLoss: z.number() }),
  run: py('train.py'),
  cache: true,
  timeout: '30m',
  heartbeat: '2m',
});

/** The Spark trainer: the same contract as trainRecommender, so evaluation and champion/challenger are unchanged. */
export const trainRecommenderAls = defineStep({
  name: 'trainRecommenderAls',
  version: 1,
  description: 'Matrix factorisation (Spark MLlib ALS, implicit feedback)',
  input: trainRecommender.input,
  output: trainRecommender.output,
  // local[2] unless the worker sets KAON_SPARK_MASTER (a cluster); numpy reads the .npz split in the driver.
  run: spark({ app: 'activities/spark/als.py', requirements: ['numpy==2.3.4'], conf: { 'spark.sql.shuffle.partitions': '4' } }),
  cache: true,
  timeout: '30m',
  heartbeat: '2m',
});

/** Which trainer the reference pipelines use. */
export const Trainer = z.enum(['sklearn', 'spark-als']);
export type Trainer = z.infer<typeof Trainer>;

export const evaluateRecommender = defineStep({
  name: 'evaluateRecommender',
  version: 1,
  description: 'recall@k and NDCG@k against a popularity baseline',
  input: z.object({ country: z.string(), model: ArtifactRef, train: ArtifactRef, holdout: ArtifactRef, k: z.number().int().min(1) }),
  output: RankingMetrics,
  run: py('evaluate.py'),
  cache: true,
  timeout: '10m',
});

export const Candidate = z.object({ country: z.string(), metrics: RankingMetrics });
export const championChallenger = defineStep({
  name: 'championChallenger',
  version: 1,
  description: "Compare each country's challenger with its published champion",
  input: z.object({ registry: z.string(), candidates: z.array(Candidate) }),
  output: z.object({
    decisions: z.array(z.object({ country: z.string(), publish: z.boolean(), reason: z.string(), champion: z.object({ version: z.string(), ndcgAtK: z.number() }).nullable() })),
  }),
  timeout: '1m',
});

export const publishModel = defineStep({
  name: 'publishModel',
  version: 1,
  description: 'Copy the model to the registry with a model card (metrics JSON, PNG plot, lineage)',
  input: z.object({
    registry: z.string(),
    country: z.string(),
    version: z.string(),
    date: z.string(),
    model: ArtifactRef,
    metrics: RankingMetrics,
    hyperparameters: Hyperparameters,
    champion: z.object({ version: z.string(), ndcgAtK: z.number() }).nullable(),
    lineage: z.record(z.string(), z.unknown()),
  }),
  output: z.object({ country: z.string(), version: z.string(), path: z.string(), card: ArtifactRef }),
  run: py('publish.py'),
  timeout: '10m',
});

/** One decision of the recommender loop, as a line of its champion-history artifact. */
export const ChampionEntry = z.object({
  iteration: z.number().int(),
  date: z.string(),
  /** What started the retrain: a viewing-history event (its id) or the daily tick. */
  trigger: z.string(),
  decision: z.enum(['first-champion', 'promoted', 'approved', 'rejected', 'kept', 'not-accepted', 'failed']),
  reason: z.string(),
  challenger: z.object({ version: z.string(), ndcgAtK: z.number(), lift: z.number(), rank: z.number().int(), trainings: z.number().int() }).nullable(),
  /** The champion after this decision. */
  champion: z.object({ version: z.string(), date: z.string(), ndcgAtK: z.number() }).nullable(),
  by: z.string().optional(),
  comment: z.string().optional(),
  at: z.string(),
});
export type ChampionEntry = z.infer<typeof ChampionEntry>;

export const appendChampionHistory = defineStep({
  name: 'appendChampionHistory',
  version: 1,
  description: "Append one decision to a loop's champion history (a JSON-lines artifact; the new ref replaces the old)",
  input: z.object({ country: z.string(), history: ArtifactRef.nullable(), entry: ChampionEntry }),
  output: z.object({ history: ArtifactRef, entries: z.number().int() }),
  timeout: '1m',
});
