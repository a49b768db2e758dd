// MLflow tracking + Model Registry for step runs (worker-side). See bookkeeping.ts for what lands where.
import { createMlflowBookkeeping } from './bookkeeping';
import { createMlflowClient } from './client';
import type { StepBookkeeping } from '../activities';

export { createMlflowBookkeeping, type MlflowBookkeepingOptions } from './bookkeeping';
export { createMlflowClient, logBatches, MlflowError, type MlflowClient, type MlflowClientOptions, type MlflowModelVersion, type MlflowRun } from './client';

/** MLflow bookkeeping configured from the environment: undefined unless MLFLOW_TRACKING_URI is set (http or https). */
export function mlflowFromEnv(env: NodeJS.ProcessEnv = process.env): StepBookkeeping | undefined {
  const uri = env.MLFLOW_TRACKING_URI?.trim();
  if (!uri) return undefined;
  if (!/^https?:\/\//.test(uri)) {
    process.emitWarning(`kaon: MLFLOW_TRACKING_URI=${uri} is not an http(s) URL; Kaon talks to an MLflow tracking server over REST, so MLflow bookkeeping is off. To fix: start \`mlflow server\` and set MLFLOW_TRACKING_URI=http://127.0.0.1:5000`);
    return undefined;
  }
  const client = createMlflowClient({
    trackingUri: uri,
    ...(env.MLFLOW_TRACKING_TOKEN ? { token: env.MLFLOW_TRACKING_TOKEN } : {}),
    // MLflow's own knob for its clients' request timeout (seconds); Kaon's default is shorter than MLflow's 120 s.
    ...(Number(env.MLFLOW_HTTP_REQUEST_TIMEOUT) > 0 ? { timeoutMs: Number(env.MLFLOW_HTTP_REQUEST_TIMEOUT) * 1000 } : {}),
    ...(env.MLFLOW_TRACKING_USERNAME ? { username: env.MLFLOW_TRACKING_USERNAME, password: env.MLFLOW_TRACKING_PASSWORD ?? '' } : {}),
  });
  return createMlflowBookkeeping({ client, ...(env.MLFLOW_EXPERIMENT_NAME ? { experimentName: env.MLFLOW_EXPERIMENT_NAME } : {}) });
}
