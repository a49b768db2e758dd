// Running one step on this machine, outside Temporal (`kaon step run`): the same contract checks, the same
// implementation or runner executor as the activity, with a StepContext whose heartbeats and logs go to hooks.
import { storeCard } from './cards';
import { readSweep } from '../data/manifest';
import type { ArtifactRef } from '../definition/artifact-ref';
import { ErrorCode, KaonError } from '../definition/errors';
import type { StepDef } from '../definition/step';
import { checkOutput, collectRunnables, parseInput, refsIn, type Runnable, type StepActivityDeps, type StepArtifactStore } from './activities';
import type { StepArtifacts, StepContext, StepLogger } from './implement';
import { createStepRecord } from './step-record';
import { assertNoSecret, redactError, resolveSecrets } from './secrets';

/** One local call: which step, under which key, run id and attempt it believes it runs. */
export interface LocalStepCall {
  /** The step's name (its Temporal activity type). */
  step: string;
  key: string;
  /** The raw input, as the workflow would send it (parsed by the step's input schema here). */
  input: unknown;
  pipeline: string;
  runId: string;
  /** What ctx.attempt and $KAON_ATTEMPT say. */
  attempt: number;
}

/** What a running step reports: heartbeat progress, and log lines (a process step's stdout/stderr among them). */
export type LocalStepEvent =
  | { type: 'verified'; artifacts: ArtifactRef[] }
  | { type: 'progress'; fraction?: number; message?: string }
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; message: string; stream?: string };

export interface LocalStepHooks {
  onEvent?: (event: LocalStepEvent) => void;
  /** Aborts the step (Ctrl-C): ctx.signal aborts, a process step's group gets SIGTERM. */
  signal?: AbortSignal;
}

export interface LocalStepResult {
  /** The validated output. */
  output: unknown;
  /** The input's artifacts, each verified against its sha256 before the step started. */
  inputArtifacts: ArtifactRef[];
}

export interface LocalStepRunner {
  /** The steps this runner knows, by name. */
  readonly steps: ReadonlyMap<string, StepDef>;
  run(call: LocalStepCall, hooks?: LocalStepHooks): Promise<LocalStepResult>;
}

function noLocalStore(name: string): KaonError {
  return new KaonError({
    code: ErrorCode.config,
    what: `step "${name}" uses artifacts, but this local run has no artifact store`,
    fix: 'set KAON_ARTIFACTS to the store the workers use (file:///… or s3://…), or pass deps.artifacts',
  });
}

/**
 * Build a runner for local calls from the same deps as createStepActivities. No memo table: a local run never
 * reuses a cached output and never records one, so it cannot change what a later run or resume does.
 */
export function createLocalStepRunner(deps: Pick<StepActivityDeps, 'impls' | 'steps' | 'executors' | 'artifacts'>): LocalStepRunner {
  const runnables = collectRunnables(deps);
  const steps = new Map([...runnables].map(([name, r]) => [name, r.def]));
  return {
    steps,
    async run(call, hooks = {}) {
      const runnable = runnables.get(call.step);
      if (!runnable) {
        throw new KaonError({
          code: ErrorCode.noImplementation,
          what: `no step named "${call.step}" here (known: ${[...runnables.keys()].sort().join(', ') || 'none'})`,
          fix: 'pass the activities module that `kaon worker` serves (--activities <file>), or check the step name',
        });
      }
      return runLocal(runnable, call, hooks, deps.artifacts);
    },
  };
}

async function runLocal(r: Runnable, call: LocalStepCall, hooks: LocalStepHooks, store: StepArtifactStore | undefined): Promise<LocalStepResult> {
  const { def } = r;
  const input = parseInput(def, call.input, call.key);
  const inputArtifacts = refsIn(input);
  if (inputArtifacts.length && !store) throw noLocalStore(def.name);
  // Verify every input artifact up front: a missing or corrupt blob is the store's error, before any work.
  for (const ref of inputArtifacts) await store!.getPath(ref);
  if (inputArtifacts.length) hooks.onEvent?.({ type: 'verified', artifacts: inputArtifacts });

  const producer = { pipeline: call.pipeline, runId: call.runId, step: call.key, attempt: call.attempt };
  const artifacts: StepArtifacts = {
    put: (source, meta = {}) => (store ? store.put(source, { ...meta, producer, inputs: inputArtifacts }) : Promise.reject(noLocalStore(def.name))),
    getPath: (ref, dir) => (store ? store.getPath(ref, dir) : Promise.reject(noLocalStore(def.name))),
    getStream: (ref) => (store ? store.getStream(ref) : Promise.reject(noLocalStore(def.name))),
    readSweep: (sweep) => {
      if (!store) throw noLocalStore(def.name);
      return readSweep(store, sweep);
    },
  };
  const emit = hooks.onEvent ?? (() => undefined);
  const secrets = resolveSecrets(def);
  const logAt = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string, meta?: Record<string, unknown>) =>
    emit({ type: 'log', level, message: secrets.redact(message), ...(typeof meta?.stream === 'string' ? { stream: meta.stream } : {}) });
  const log: StepLogger = { debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') };
  // Only a change of progress is an event: runners re-send the same progress with every log-tail heartbeat.
  let last = '';
  const heartbeat = (d?: unknown) => {
    if (typeof d !== 'object' || d === null) return;
    const { fraction, message } = d as { fraction?: unknown; message?: unknown };
    const p = { ...(typeof fraction === 'number' ? { fraction } : {}), ...(typeof message === 'string' && message ? { message } : {}) };
    const text = JSON.stringify(p);
    if (text === '{}' || text === last) return;
    last = text;
    emit({ type: 'progress', ...p });
  };
  const record = createStepRecord(`step "${def.name}" (key ${call.key})`);
  const ctx: StepContext = {
    key: call.key,
    pipeline: call.pipeline,
    runId: call.runId,
    attempt: call.attempt,
    log,
    signal: hooks.signal ?? new AbortController().signal,
    heartbeat,
    progress: (fraction, message) => heartbeat({ fraction, message }),
    artifacts,
    // A local run has no run state: the card is stored (its ref is returned) and linked from nothing.
    card: (c) => storeCard(artifacts.put, c, `card of step "${def.name}" (key ${call.key})`),
    // A local run has no run state or MLflow run: metrics and registrations are validated and shown as log lines.
    metrics: {
      log: (name, value, step) => {
        record.metrics.log(name, value, step);
        emit({ type: 'log', level: 'info', message: `metric ${name}=${value}${step !== undefined ? ` (step ${step})` : ''}` });
      },
    },
    registerModel: (name, model, options) => {
      record.registerModel(name, model, options);
      emit({ type: 'log', level: 'info', message: `model "${name}" would be registered from ${model.uri} (a local run registers nothing)` });
    },
    secrets: secrets.values,
  };
  const output = checkOutput(def, await r.exec(input, ctx).catch((err: unknown) => Promise.reject(redactError(err, secrets.redact))), call.key);
  assertNoSecret(output, secrets.values, `output of step "${def.name}" (key ${call.key})`);
  return { output, inputArtifacts };
}
