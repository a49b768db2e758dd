/**
 * MLflow bookkeeping, worker-side: every Kaon run is an MLflow run, every step attempt a nested run of it, and
 * ctx.registerModel() a Model Registry version. Workflows and their histories do not change: this runs inside
 * the step activity, after the step, bounded in time, and never fails the step.
 *
 *   experiment   = $MLFLOW_EXPERIMENT_NAME, else the pipeline name
 *   parent run   = found by tag kaon.run_id (the workflow id), else created: params = the run's start params
 *   nested run   = one per attempt: tags mlflow.parentRunId, kaon.step_key, kaon.attempt, artifact sha256s;
 *                  params = input scalars; metrics = ctx.metrics + numeric scalar outputs
 *   parent end   = the first worker that touches a run watches its workflow (a long poll) and sets FINISHED,
 *                  FAILED or KILLED when it closes; until then the parent run is RUNNING
 */
import { Readable } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';
import { isArtifactRef, type ArtifactRef } from '../../definition/artifact-ref';
import type { StepAttempt, StepBookkeeping } from '../activities';
import type { StepLogger } from '../implement';
import { LIMITS, logBatches, MlflowError, type MlflowClient, type MlflowMetric, type MlflowTag, type MlflowRun } from './client';

export interface MlflowBookkeepingOptions {
  client: MlflowClient;
  /** Default $MLFLOW_EXPERIMENT_NAME, else the pipeline name. */
  experimentName?: string;
  /** Largest model copied into MLflow's artifacts. Default 256 MiB. */
  maxModelUploadBytes?: number;
  /** Where a watcher's failure to close a parent run is reported. Default process.emitWarning. */
  warn?: (message: string) => void;
}

const TAG = {
  runId: 'kaon.run_id',
  kind: 'kaon.kind',
  pipeline: 'kaon.pipeline',
  stepKey: 'kaon.step_key',
  step: 'kaon.step',
  attempt: 'kaon.attempt',
} as const;

/** Flatten a JSON value to dotted leaf paths; artifact refs and arrays are not descended into. */
function leaves(value: unknown, prefix: string, out: Array<[string, unknown]>, depth = 0): Array<[string, unknown]> {
  if (value === null || typeof value !== 'object') {
    if (prefix) out.push([prefix, value]);
  } else if (isArtifactRef(value) || Array.isArray(value) || depth >= 3) {
    if (prefix) out.push([prefix, value]);
  } else {
    for (const [k, v] of Object.entries(value)) leaves(v, prefix ? `${prefix}.${k}` : k, out, depth + 1);
  }
  return out;
}

const keyOk = (k: string) => k.length <= LIMITS.key && /^[A-Za-z0-9_\-. /]+$/.test(k);

/** Params from a JSON value: scalars as they are, arrays and objects as (truncated) JSON; at most 100. */
function paramsOf(value: unknown, prefix = ''): MlflowTag[] {
  const out: MlflowTag[] = [];
  for (const [k, v] of leaves(value, prefix, [])) {
    if (!keyOk(k) || isArtifactRef(v) || v === undefined) continue;
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    out.push({ key: k, value: text.length > LIMITS.paramValue ? `${text.slice(0, LIMITS.paramValue - 1)}…` : text });
    if (out.length >= LIMITS.paramsPerBatch) break;
  }
  return out;
}

/** Every artifact ref in a value, with its field path. */
function refsOf(value: unknown, at = ''): Array<[string, ArtifactRef]> {
  if (isArtifactRef(value)) return [[at || 'value', value]];
  if (Array.isArray(value)) return value.flatMap((v, i) => refsOf(v, `${at}[${i}]`));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => refsOf(v, at ? `${at}.${k}` : k));
  return [];
}

const quote = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

export function createMlflowBookkeeping(opts: MlflowBookkeepingOptions): StepBookkeeping & { parentRunId(runId: string): Promise<string> | undefined } {
  const { client } = opts;
  const warn = opts.warn ?? ((m: string) => process.emitWarning(m));
  const experiments = new Map<string, Promise<string>>();
  // One find-or-create per Kaon run in this process: parallel steps of a run share it.
  const parents = new Map<string, Promise<string>>();

  function experiment(name: string): Promise<string> {
    let p = experiments.get(name);
    if (!p) {
      p = (async () => {
        const found = await client.getExperimentByName(name);
        if (found) return found.experiment_id;
        try {
          return await client.createExperiment(name, [{ key: 'kaon.pipeline', value: name }]);
        } catch (err) {
          // Another worker created it in between.
          const again = err instanceof MlflowError && err.errorCode === 'RESOURCE_ALREADY_EXISTS' ? await client.getExperimentByName(name) : undefined;
          if (again) return again.experiment_id;
          throw err;
        }
      })();
      p.catch(() => experiments.delete(name)); // retried by the next step
      experiments.set(name, p);
    }
    return p;
  }

  async function findParents(experimentId: string, runId: string): Promise<MlflowRun[]> {
    const runs = await client.searchRuns({ experimentIds: [experimentId], filter: `tags.\`${TAG.runId}\` = ${quote(runId)} and tags.\`${TAG.kind}\` = 'run'` });
    // The earliest is the run's MLflow run, whoever created it (two workers may race to create one).
    return runs.sort((a, b) => (a.info.start_time ?? 0) - (b.info.start_time ?? 0) || a.info.run_id.localeCompare(b.info.run_id));
  }

  function parent(a: StepAttempt, experimentId: string): Promise<string> {
    let p = parents.get(a.runId);
    if (!p) {
      p = (async () => {
        const existing = await findParents(experimentId, a.runId);
        let id = existing[0]?.info.run_id;
        if (!id) {
          const params = paramsOf(await a.params().catch(() => undefined));
          const created = await client.createRun({
            experimentId,
            runName: a.runId,
            startTime: Date.now(),
            tags: [
              { key: TAG.runId, value: a.runId },
              { key: TAG.kind, value: 'run' },
              { key: TAG.pipeline, value: a.pipeline },
              { key: 'kaon.execution_run_id', value: a.executionRunId },
              { key: 'mlflow.source.name', value: `kaon:${a.pipeline}` },
              { key: 'mlflow.note.content', value: `Kaon run ${a.runId} of pipeline ${a.pipeline}. See it with: kaon status ${a.runId}` },
            ],
          });
          id = created.info.run_id;
          await logBatches(client, id, { params });
          // Lost a race with another worker: keep the earliest, delete ours.
          const all = await findParents(experimentId, a.runId);
          const first = all[0]?.info.run_id ?? id;
          if (first !== id) {
            await client.deleteRun(id).catch(() => undefined);
            id = first;
          }
        }
        watch(a, id);
        return id;
      })();
      p.catch(() => parents.delete(a.runId));
      parents.set(a.runId, p);
    }
    return p;
  }

  function watch(a: StepAttempt, id: string): void {
    a.runEnded()
      .then((status) => client.updateRun(id, { status, endTime: Date.now() }))
      .catch((err: unknown) => warn(`kaon: could not close MLflow run ${id} of Kaon run ${a.runId}: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => parents.delete(a.runId));
  }

  /**
   * Where MLflow finds the model: a copy in the step run's artifacts when the server proxies artifacts (the
   * default of `mlflow server`), else the artifact's own URI if MLflow can read it (s3://, not a worker's file).
   */
  async function modelSource(a: StepAttempt, ref: ArtifactRef, run: MlflowRun, log: StepLogger): Promise<string | undefined> {
    const artifactUri = run.info.artifact_uri ?? '';
    const max = opts.maxModelUploadBytes ?? 256 * 1024 * 1024;
    if (artifactUri.startsWith('mlflow-artifacts:') && a.readArtifact && ref.size <= max) {
      const stream = await a.readArtifact(ref);
      const file = (ref.name ?? 'model').split('/').pop() || 'model';
      await client.uploadArtifact(artifactUri, `model/${file}`, Readable.toWeb(stream as Readable) as ReadableStream<Uint8Array>);
      return `${artifactUri.replace(/\/+$/, '')}/model`;
    }
    if (!ref.uri.startsWith('file:')) return ref.uri;
    log.warn(
      `model version of ${ref.name ?? ref.sha256} not registered in MLflow: ${ref.size > max ? `it is over the ${max} bytes Kaon uploads` : 'the MLflow server does not serve artifacts'} and the Kaon artifact is a file on this worker (${ref.uri}), which MLflow refuses as a source. ` +
        'To fix: start `mlflow server` with artifact serving (its default, without --default-artifact-root), or use an S3 artifact store (KAON_ARTIFACTS=s3://…)',
    );
    return undefined;
  }

  async function record(a: StepAttempt, log: StepLogger): Promise<void> {
    const experimentId = await experiment(opts.experimentName ?? process.env.MLFLOW_EXPERIMENT_NAME ?? a.pipeline);
    const parentId = await parent(a, experimentId);
    const refs = [...refsOf(a.input).map(([f, r]) => [`input.${f}`, r] as const), ...refsOf(a.output).map(([f, r]) => [`output.${f}`, r] as const)];
    const tags: MlflowTag[] = [
      { key: 'mlflow.parentRunId', value: parentId },
      { key: TAG.runId, value: a.runId },
      { key: TAG.kind, value: 'step' },
      { key: TAG.pipeline, value: a.pipeline },
      { key: TAG.stepKey, value: a.key },
      { key: TAG.step, value: a.step },
      { key: 'kaon.step_version', value: String(a.version) },
      { key: TAG.attempt, value: String(a.attempt) },
      ...refs.filter(([f]) => keyOk(`kaon.artifact.${f}.sha256`)).slice(0, 80).map(([f, r]) => ({ key: `kaon.artifact.${f}.sha256`, value: r.sha256 })),
      ...(a.reused ? [{ key: 'kaon.reused_from', value: `${a.reused.from}:${a.reused.runId}` }] : []),
      ...(a.error !== undefined ? [{ key: 'kaon.error', value: a.error.slice(0, LIMITS.tagValue) }, { key: 'kaon.retrying', value: String(a.retrying ?? false) }] : []),
    ];
    const run = await client.createRun({ experimentId, runName: a.attempt > 1 ? `${a.key} #${a.attempt}` : a.key, startTime: a.startedAt, tags });
    const id = run.info.run_id;
    const metrics: MlflowMetric[] = a.metrics.map((m) => ({ key: m.name, value: m.value, timestamp: a.endedAt, step: m.step ?? 0 }));
    for (const [k, v] of leaves(a.output, '', [])) {
      if (typeof v === 'number' && Number.isFinite(v) && keyOk(k)) metrics.push({ key: k, value: v, timestamp: a.endedAt, step: 0 });
    }
    await logBatches(client, id, { params: paramsOf(a.input), metrics });
    for (const m of a.models) {
      await client.ensureRegisteredModel(m.name, `Registered by Kaon (pipeline ${a.pipeline}).`);
      // A retried bookkeeping of the same attempt does not register the same artifact twice.
      const known = await client.searchModelVersions(`name=${quote(m.name)}`);
      const dup = known.find((v) => v.tags.some((t) => t.key === TAG.runId && t.value === a.runId) && v.tags.some((t) => t.key === 'kaon.sha256' && t.value === m.model.sha256));
      if (dup) continue;
      const source = await modelSource(a, m.model, run, log);
      if (!source) continue;
      const v = await client.createModelVersion({
        name: m.name,
        source,
        runId: id,
        description: m.description ?? `Kaon run ${a.runId}, step ${a.key} (pipeline ${a.pipeline}); artifact sha256 ${m.model.sha256}. See the run with: kaon status ${a.runId}`,
        tags: [
          { key: TAG.runId, value: a.runId },
          { key: TAG.pipeline, value: a.pipeline },
          { key: TAG.stepKey, value: a.key },
          { key: 'kaon.sha256', value: m.model.sha256 },
          { key: 'kaon.uri', value: m.model.uri },
          { key: 'kaon.mlflow_parent_run_id', value: parentId },
          ...Object.entries(m.tags ?? {}).map(([key, value]) => ({ key, value })),
        ],
      });
      log.info(`registered model ${m.name} version ${v.version} in MLflow (${client.trackingUri})`);
    }
    await client.updateRun(id, { status: a.error === undefined ? 'FINISHED' : 'FAILED', endTime: a.endedAt });
  }

  return {
    async record(a, log) {
      try {
        await record(a, log);
      } catch (err) {
        log.warn(
          `MLflow bookkeeping of step ${a.key} failed; the step itself succeeded or failed on its own: ${err instanceof Error ? err.message : String(err)}. ` +
            `To fix: check that MLFLOW_TRACKING_URI (${client.trackingUri}) points at a running MLflow server this worker can reach, or unset it to turn MLflow off`,
        );
      }
    },
    parentRunId: (runId) => parents.get(runId),
  };
}
