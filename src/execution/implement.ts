import type { Readable } from 'node:stream';
import type { ArtifactRef } from '../definition/artifact-ref';
import type { StepDef, StepParsedInput, StepReturn } from '../definition/step';
import type { Sweep, SweepLine } from '../definition/sweep';
import type { CardInput } from './cards';

/** A step's view of the artifact store: producer and lineage (the step's input refs) are filled in. */
export interface StepArtifacts {
  /** Store a file, a stream or bytes; returns the ref to put in the step's output. */
  put(source: { path: string } | { stream: Readable } | { bytes: Uint8Array | string }, meta?: { name?: string; mediaType?: string }): Promise<ArtifactRef>;
  /** A verified local file for the ref (downloaded from S3 when needed). */
  getPath(ref: ArtifactRef, dir?: string): Promise<string>;
  /** A stream of the bytes; errors at the end if they do not match the ref's sha256. */
  getStream(ref: ArtifactRef): Promise<Readable>;
  /** Stream a sweep's results (what k.map returned), line by line: item i's output or error. */
  readSweep<O>(sweep: Sweep<O>): AsyncGenerator<SweepLine<O>>;
}

export interface StepLogger {
  debug(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

/** What a TS step implementation receives besides its input. */
export interface StepContext {
  /** Step key in the run, e.g. `train[US]`. */
  readonly key: string;
  readonly pipeline: string;
  /** Workflow id of the run. */
  readonly runId: string;
  /** 1 on the first attempt, 2 on the first retry… */
  readonly attempt: number;
  /** This attempt's time limit in ms (the step's timeout, or the per-call override), when there is one. */
  readonly timeoutMs?: number;
  readonly log: StepLogger;
  /** Aborted when the run is cancelled or the attempt times out. Pass it to fetch, child processes, loops. */
  readonly signal: AbortSignal;
  /** Report progress; also heartbeats, which is how a cancellation reaches a long step. */
  progress(fraction: number | undefined, message?: string): void;
  heartbeat(details?: unknown): void;
  /** The artifact store (large data goes here; the output carries refs). */
  readonly artifacts: StepArtifacts;
  /**
   * Publish a card (markdown + images, e.g. a model card): stored as artifacts and linked from the run state
   * when the step succeeds, so the board shows it. Returns the card artifact's ref.
   */
  card(card: CardInput): Promise<ArtifactRef>;
  /** Step metrics: land on the step's entry in the run state and, with MLflow configured, on its MLflow run. */
  readonly metrics: StepMetrics;
  /**
   * Register an artifact as a model version (MLflow Model Registry when MLFLOW_TRACKING_URI is set; otherwise
   * only noted in the step log). Recorded when the step succeeds.
   */
  registerModel(name: string, model: ArtifactRef, options?: { description?: string; tags?: Record<string, string> }): void;
  /**
   * The secrets the step declares (`secrets: ['HF_TOKEN']`), resolved on this worker. Their values are redacted from
   * ctx.log, heartbeats and errors; an output containing one is refused. `console` output is not redacted.
   */
  readonly secrets: Readonly<Record<string, string>>;
}

export interface StepMetric {
  name: string;
  value: number;
  step?: number;
}

export interface StepMetrics {
  /** A finite number under a name (letters, digits, `_ - . / ` and spaces); `step` orders a series (epoch, iteration). */
  log(name: string, value: number, step?: number): void;
}

export interface ModelRegistration {
  name: string;
  model: ArtifactRef;
  description?: string;
  tags?: Record<string, string>;
}

export type StepFn<S extends StepDef> = (input: StepParsedInput<S>, ctx: StepContext) => Promise<StepReturn<S>> | StepReturn<S>;

export interface StepImpl<S extends StepDef = StepDef> {
  readonly kind: 'kaon.step-impl';
  readonly def: S;
  readonly fn: StepFn<S>;
}

/** Attach a TS implementation to a step contract. Worker-side only: keep it out of workflow files. */
export function implementStep<S extends StepDef>(def: S, fn: StepFn<S>): StepImpl<S> {
  return Object.freeze({ kind: 'kaon.step-impl', def, fn });
}

export function isStepImpl(v: unknown): v is StepImpl {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'kaon.step-impl';
}
