/**
 * A small typed client of MLflow's REST API (tracking + Model Registry), the part Kaon's bookkeeping uses.
 * fetch + zod: every response is parsed, every failure is an MlflowError that names the endpoint and status.
 *
 * @example
 * const mlflow = createMlflowClient({ trackingUri: 'http://127.0.0.1:5000' });
 * const exp = await mlflow.getExperimentByName('retrain-recommender');
 */
import { z } from 'zod';

export interface MlflowClientOptions {
  /** e.g. http://127.0.0.1:5000 (MLFLOW_TRACKING_URI). */
  trackingUri: string;
  /** Bearer token (MLFLOW_TRACKING_TOKEN). */
  token?: string;
  /** Basic auth (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD). */
  username?: string;
  password?: string;
  /** Per request. Default 10 s. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export class MlflowError extends Error {
  override readonly name = 'MlflowError';
  constructor(
    message: string,
    readonly endpoint: string,
    /** HTTP status; undefined when the server could not be reached. */
    readonly status?: number,
    /** MLflow's error_code, e.g. RESOURCE_ALREADY_EXISTS. */
    readonly errorCode?: string,
  ) {
    super(message);
  }
}

export interface MlflowTag {
  key: string;
  value: string;
}
export interface MlflowMetric {
  key: string;
  value: number;
  timestamp: number;
  step?: number;
}
export type RunStatus = 'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED';

const Tag = z.object({ key: z.string(), value: z.string().optional().default('') });
const Experiment = z.object({ experiment_id: z.string(), name: z.string(), lifecycle_stage: z.string().optional() });
const Metric = z.object({ key: z.string(), value: z.number(), timestamp: z.coerce.number().optional(), step: z.coerce.number().optional() });
const Param = z.object({ key: z.string(), value: z.string().optional().default('') });
export const MlflowRun = z.object({
  info: z.object({
    run_id: z.string(),
    experiment_id: z.string(),
    run_name: z.string().optional(),
    status: z.string().optional(),
    start_time: z.coerce.number().optional(),
    end_time: z.coerce.number().optional(),
    artifact_uri: z.string().optional(),
  }),
  data: z
    .object({ metrics: z.array(Metric).optional().default([]), params: z.array(Param).optional().default([]), tags: z.array(Tag).optional().default([]) })
    .optional()
    .default({ metrics: [], params: [], tags: [] }),
});
export type MlflowRun = z.infer<typeof MlflowRun>;
export const MlflowModelVersion = z.object({
  name: z.string(),
  version: z.string(),
  source: z.string().optional(),
  run_id: z.string().optional(),
  run_link: z.string().optional(),
  description: z.string().optional(),
  status: z.string().optional(),
  tags: z.array(Tag).optional().default([]),
});
export type MlflowModelVersion = z.infer<typeof MlflowModelVersion>;
const RegisteredModel = z.object({ name: z.string(), description: z.string().optional(), latest_versions: z.array(MlflowModelVersion).optional() });

/** MLflow's limits (log-batch): https://mlflow.org/docs/latest/rest-api.html#log-batch */
export const LIMITS = { metricsPerBatch: 1000, paramsPerBatch: 100, tagsPerBatch: 100, totalPerBatch: 1000, paramValue: 6000, tagValue: 8000, key: 250 } as const;

export type MlflowClient = ReturnType<typeof createMlflowClient>;

export function createMlflowClient(opts: MlflowClientOptions) {
  const base = opts.trackingUri.replace(/\/+$/, '');
  const doFetch = opts.fetch ?? fetch;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  else if (opts.username !== undefined) headers.authorization = `Basic ${Buffer.from(`${opts.username}:${opts.password ?? ''}`).toString('base64')}`;

  /** Reads (GET, searches) are tried twice when MLflow does not answer: a just-started server is slow at first. */
  async function call<T extends z.ZodType>(method: 'GET' | 'POST', endpoint: string, body: Record<string, unknown>, schema: T): Promise<z.output<T>> {
    try {
      return await once(method, endpoint, body, schema);
    } catch (err) {
      const read = method === 'GET' || endpoint.endsWith('/search');
      if (!read || !(err instanceof MlflowError) || err.status !== undefined) throw err;
      return once(method, endpoint, body, schema);
    }
  }

  async function once<T extends z.ZodType>(method: 'GET' | 'POST', endpoint: string, body: Record<string, unknown>, schema: T): Promise<z.output<T>> {
    const query = method === 'GET' ? `?${new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, String(v)])).toString()}` : '';
    const url = `${base}/api/2.0/mlflow/${endpoint}${query}`;
    let res: Response;
    try {
      res = await doFetch(url, { method, headers, ...(method === 'POST' ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000) });
    } catch (err) {
      const why = err instanceof Error ? (err.name === 'TimeoutError' ? `no answer within ${opts.timeoutMs ?? 10_000} ms` : ((err.cause as Error | undefined)?.message ?? err.message)) : String(err);
      throw new MlflowError(`MLflow at ${base} could not be reached (${endpoint}): ${why}`, endpoint);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      throw new MlflowError(`MLflow ${endpoint} answered HTTP ${res.status} with non-JSON: ${text.slice(0, 200)}`, endpoint, res.status);
    }
    if (!res.ok) {
      const e = json as { error_code?: string; message?: string };
      throw new MlflowError(`MLflow ${endpoint} failed: HTTP ${res.status} ${e.error_code ?? ''} ${e.message ?? text.slice(0, 200)}`.trim(), endpoint, res.status, e.error_code);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new MlflowError(`MLflow ${endpoint} answered in an unexpected shape: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`, endpoint, res.status);
    return parsed.data;
  }

  const notFound = (err: unknown) => err instanceof MlflowError && (err.errorCode === 'RESOURCE_DOES_NOT_EXIST' || err.status === 404);

  return {
    trackingUri: base,
    async getExperimentByName(name: string) {
      try {
        return (await call('GET', 'experiments/get-by-name', { experiment_name: name }, z.object({ experiment: Experiment }))).experiment;
      } catch (err) {
        if (notFound(err)) return undefined;
        throw err;
      }
    },
    async createExperiment(name: string, tags: MlflowTag[] = []): Promise<string> {
      return (await call('POST', 'experiments/create', { name, tags }, z.object({ experiment_id: z.string() }))).experiment_id;
    },
    async createRun(r: { experimentId: string; runName?: string; startTime: number; tags?: MlflowTag[] }): Promise<MlflowRun> {
      const body = { experiment_id: r.experimentId, start_time: r.startTime, tags: r.tags ?? [], ...(r.runName ? { run_name: r.runName } : {}) };
      return (await call('POST', 'runs/create', body, z.object({ run: MlflowRun }))).run;
    },
    async getRun(runId: string): Promise<MlflowRun> {
      return (await call('GET', 'runs/get', { run_id: runId }, z.object({ run: MlflowRun }))).run;
    },
    async updateRun(runId: string, u: { status?: RunStatus; endTime?: number; runName?: string }): Promise<void> {
      await call('POST', 'runs/update', { run_id: runId, ...(u.status ? { status: u.status } : {}), ...(u.endTime !== undefined ? { end_time: u.endTime } : {}), ...(u.runName ? { run_name: u.runName } : {}) }, z.object({}).loose());
    },
    /** filter: MLflow's search syntax, e.g. tags.`kaon.run_id` = 'abc'. */
    async searchRuns(s: { experimentIds: string[]; filter?: string; maxResults?: number; orderBy?: string[] }): Promise<MlflowRun[]> {
      const body = { experiment_ids: s.experimentIds, ...(s.filter ? { filter: s.filter } : {}), max_results: s.maxResults ?? 1000, ...(s.orderBy ? { order_by: s.orderBy } : {}) };
      return (await call('POST', 'runs/search', body, z.object({ runs: z.array(MlflowRun).optional().default([]) }))).runs;
    },
    /** One batch; callers keep within LIMITS (logBatches splits). */
    async logBatch(runId: string, b: { metrics?: MlflowMetric[]; params?: MlflowTag[]; tags?: MlflowTag[] }): Promise<void> {
      await call('POST', 'runs/log-batch', { run_id: runId, metrics: b.metrics ?? [], params: b.params ?? [], tags: b.tags ?? [] }, z.object({}).loose());
    },
    async deleteRun(runId: string): Promise<void> {
      await call('POST', 'runs/delete', { run_id: runId }, z.object({}).loose());
    },
    /**
     * Upload a file into a run's artifacts through the server's artifact proxy (`mlflow server` serves artifacts
     * by default: its runs' artifact_uri is mlflow-artifacts:/…). Returns the artifact's URI.
     */
    async uploadArtifact(artifactUri: string, relPath: string, body: Uint8Array | ReadableStream<Uint8Array>, timeoutMs = 60_000): Promise<string> {
      const m = /^mlflow-artifacts:(?:\/\/[^/]*)?\/?(.*)$/.exec(artifactUri);
      if (!m) throw new MlflowError(`the run's artifact location ${artifactUri} is not served by the MLflow server (not mlflow-artifacts:)`, 'mlflow-artifacts');
      const dest = `${m[1]!.replace(/\/+$/, '')}/${relPath}`;
      const url = `${base}/api/2.0/mlflow-artifacts/artifacts/${dest.split('/').map(encodeURIComponent).join('/')}`;
      let res: Response;
      try {
        res = await doFetch(url, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body, duplex: 'half', signal: AbortSignal.timeout(timeoutMs) } as RequestInit);
      } catch (err) {
        throw new MlflowError(`MLflow at ${base} could not take artifact ${relPath}: ${err instanceof Error ? err.message : String(err)}`, 'mlflow-artifacts');
      }
      if (!res.ok) throw new MlflowError(`MLflow artifact upload of ${relPath} failed: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`, 'mlflow-artifacts', res.status);
      return `${artifactUri.replace(/\/+$/, '')}/${relPath}`;
    },
    async setTag(runId: string, key: string, value: string): Promise<void> {
      await call('POST', 'runs/set-tag', { run_id: runId, key, value }, z.object({}).loose());
    },
    async getRegisteredModel(name: string) {
      try {
        return (await call('GET', 'registered-models/get', { name }, z.object({ registered_model: RegisteredModel }))).registered_model;
      } catch (err) {
        if (notFound(err)) return undefined;
        throw err;
      }
    },
    /** Creates the registered model, or returns quietly when it exists already. */
    async ensureRegisteredModel(name: string, description?: string): Promise<void> {
      try {
        await call('POST', 'registered-models/create', { name, ...(description ? { description } : {}) }, z.object({ registered_model: RegisteredModel }));
      } catch (err) {
        if (err instanceof MlflowError && err.errorCode === 'RESOURCE_ALREADY_EXISTS') return;
        throw err;
      }
    },
    async createModelVersion(v: { name: string; source: string; runId?: string; runLink?: string; description?: string; tags?: MlflowTag[] }): Promise<MlflowModelVersion> {
      const body = { name: v.name, source: v.source, ...(v.runId ? { run_id: v.runId } : {}), ...(v.runLink ? { run_link: v.runLink } : {}), ...(v.description ? { description: v.description } : {}), tags: v.tags ?? [] };
      return (await call('POST', 'model-versions/create', body, z.object({ model_version: MlflowModelVersion }))).model_version;
    },
    async searchModelVersions(filter: string): Promise<MlflowModelVersion[]> {
      return (await call('GET', 'model-versions/search', { filter, max_results: 1000 }, z.object({ model_versions: z.array(MlflowModelVersion).optional().default([]) }))).model_versions;
    },
  };
}

/** Split params, tags and metrics into batches MLflow accepts, and log them. */
export async function logBatches(client: MlflowClient, runId: string, b: { metrics?: MlflowMetric[]; params?: MlflowTag[]; tags?: MlflowTag[] }): Promise<void> {
  const params = [...(b.params ?? [])];
  const tags = [...(b.tags ?? [])];
  const metrics = [...(b.metrics ?? [])];
  while (params.length || tags.length || metrics.length) {
    const p = params.splice(0, LIMITS.paramsPerBatch);
    const t = tags.splice(0, LIMITS.tagsPerBatch);
    const m = metrics.splice(0, LIMITS.totalPerBatch - p.length - t.length);
    await client.logBatch(runId, { params: p, tags: t, metrics: m });
  }
}
