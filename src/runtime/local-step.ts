// `kaon step run`: one step of a project on this machine, without a Temporal server, through the same
// activities module, executors (Python venvs, process protocol) and artifact store as `kaon worker`.
import type { ArtifactRef } from '../definition/artifact-ref';
import type { StepDef } from '../definition/step';
import type { ArtifactStore, PutMeta } from '../data/store';
import type { ArtifactSource } from '../data/backend';
import { createLocalStepRunner, type LocalStepCall, type LocalStepHooks } from '../execution/local';
import type { RunnerDeps } from '../execution/runners';
import { collectSteps, defaultExecutors, type KaonWorkerOptions } from './worker';

export interface LocalStepOptions {
  /** The project's activities: the module `kaon worker` loads, or a list of implementStep() values and step defs. */
  activities: KaonWorkerOptions['activities'];
  /** Where input artifacts are read and output artifacts written: the workers' store. */
  artifacts: ArtifactStore;
  /** Runner options (project root for scripts, Python envs). */
  runner?: Omit<RunnerDeps, 'artifacts'>;
}

export interface LocalRunResult {
  output: unknown;
  /** The artifacts stored during the run (lineage: producer.runId = the local run id, producer.local = true). */
  artifacts: ArtifactRef[];
  inputArtifacts: ArtifactRef[];
}

export interface LocalSteps {
  readonly steps: ReadonlyMap<string, StepDef>;
  run(call: LocalStepCall, hooks?: LocalStepHooks): Promise<LocalRunResult>;
}

/** The run id of a local run: `local-<UTC timestamp>`, so its artifacts are listed apart from any real run's. */
export function localRunId(at = new Date()): string {
  return `local-${at.toISOString().replace(/[:.]/g, '-')}`;
}

/** A view of the store whose puts mark the producer as local and are collected for the run's report. */
function localStore(store: ArtifactStore, produced: ArtifactRef[]): ArtifactStore {
  const put = async (source: ArtifactSource, meta: PutMeta): Promise<ArtifactRef> => {
    const ref = await store.put(source, { ...meta, producer: { ...meta.producer, local: true } });
    produced.push(ref);
    return ref;
  };
  // Only put changes: every other method is the store's own (bound, since Store is a class).
  return new Proxy(store, {
    get: (target, prop, receiver) => {
      if (prop === 'put') return put;
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** The project's steps, runnable one call at a time on this machine. */
export function localSteps(opts: LocalStepOptions): LocalSteps {
  const { impls, steps } = collectSteps(opts.activities);
  const known = createLocalStepRunner({ impls, steps, executors: defaultExecutors(opts.artifacts, opts.runner) }).steps;
  return {
    steps: known,
    async run(call, hooks) {
      // A fresh store view and executors per call, so the report lists exactly this call's artifacts.
      const produced: ArtifactRef[] = [];
      const store = localStore(opts.artifacts, produced);
      const runner = createLocalStepRunner({ impls, steps, executors: defaultExecutors(store, opts.runner), artifacts: store });
      const { output, inputArtifacts } = await runner.run(call, hooks);
      return { output, artifacts: produced, inputArtifacts };
    },
  };
}
