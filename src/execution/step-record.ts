// What a step reports besides its output: metrics (ctx.metrics.log, kaon_step.log_metric) and model registrations.
import { isArtifactRef } from '../definition/artifact-ref';
import { ErrorCode, KaonError } from '../definition/errors';
import type { ModelRegistration, StepMetric, StepMetrics } from './implement';

/** Metrics a step's entry in the run state keeps (the latest); the workflow history carries them with the result. */
export const MAX_RUN_STATE_METRICS = 1000;
/** Metrics kept per attempt for MLflow (the oldest beyond are dropped, with a warning). */
export const MAX_STEP_METRICS = 10_000;

const METRIC_NAME = /^[A-Za-z0-9_\-. /]{1,250}$/;
const MODEL_NAME = /^[A-Za-z0-9_\-. ]{1,200}$/;

export interface StepRecord {
  readonly metrics: StepMetrics;
  registerModel(name: string, model: unknown, options?: { description?: string; tags?: Record<string, string> }): void;
  /** Every metric logged, oldest first (at most MAX_STEP_METRICS). */
  all(): StepMetric[];
  /** The latest MAX_RUN_STATE_METRICS, for the run state. */
  latest(): StepMetric[];
  models(): ModelRegistration[];
  /** How many metrics were dropped past MAX_STEP_METRICS. */
  readonly dropped: number;
}

function bad(what: string, fix: string, where: string): KaonError {
  return new KaonError({ code: ErrorCode.badInput, what, where, fix, retryable: false });
}

export function createStepRecord(where: string): StepRecord {
  const metrics: StepMetric[] = [];
  const models: ModelRegistration[] = [];
  let dropped = 0;
  return {
    metrics: {
      log(name, value, step) {
        if (typeof name !== 'string' || !METRIC_NAME.test(name)) {
          throw bad(`metric name ${JSON.stringify(name)} is not valid`, "use 1-250 letters, digits, '_', '-', '.', '/' or spaces, e.g. ctx.metrics.log('val_loss', 0.3, epoch)", where);
        }
        if (typeof value !== 'number' || !Number.isFinite(value)) {
          throw bad(`metric "${name}" has the value ${String(value)}, not a finite number`, `log a finite number for "${name}" (check for a division by zero or a diverging loss)`, where);
        }
        if (step !== undefined && step !== null && !Number.isSafeInteger(step)) {
          throw bad(`metric "${name}" has step ${String(step)}, not an integer`, 'pass an integer step (an epoch or iteration number), or none', where);
        }
        metrics.push({ name, value, ...(step !== undefined && step !== null ? { step } : {}) });
        if (metrics.length > MAX_STEP_METRICS) {
          metrics.shift();
          dropped++;
        }
      },
    },
    registerModel(name, model, options = {}) {
      if (typeof name !== 'string' || !MODEL_NAME.test(name)) {
        throw bad(`model name ${JSON.stringify(name)} is not valid`, "use 1-200 letters, digits, '_', '-', '.' or spaces, e.g. registerModel('recommender-US', ref)", where);
      }
      if (!isArtifactRef(model)) {
        throw bad(`the model registered as "${name}" is not an artifact ref`, 'pass an ArtifactRef: one from the step input, or from ctx.artifacts.put / save_artifact()', where);
      }
      const tags = options.tags ?? {};
      for (const [k, v] of Object.entries(tags)) {
        if (typeof v !== 'string') throw bad(`tag "${k}" of model "${name}" is not a string`, 'give model tags string values', where);
      }
      models.push({ name, model, ...(options.description !== undefined ? { description: String(options.description) } : {}), ...(Object.keys(tags).length ? { tags } : {}) });
    },
    all: () => [...metrics],
    latest: () => metrics.slice(-MAX_RUN_STATE_METRICS),
    models: () => [...models],
    get dropped() {
      return dropped;
    },
  };
}
