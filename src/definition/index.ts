/**
 * kaon — definitions: typed, versioned step and pipeline contracts. Pure (zod + data), importable anywhere:
 * workflow code, workers and clients.
 *
 * @example
 * export const train = defineStep({
 *   name: 'train', version: 1,
 *   input: z.object({ rows: z.number().int() }), output: z.object({ accuracy: z.number() }),
 *   retry: { maximumAttempts: 3 }, timeout: '10m',
 * });
 */
export { defineStep, python, command, spark, isStepDef, type SparkOptions, type SparkApp, type StepDef, type StepConfig, type StepOptions, type StepRunner, type CacheOptions, type StepInput, type StepParsedInput, type StepReturn, type StepOutput } from './step';
export { isPipeline, type Pipeline, type AnyPipeline, type PipelineMeta, type PipelineParams, type PipelineResult } from './pipeline';
export { ArtifactRef, Producer, isArtifactRef } from './artifact-ref';
export { Sweep, isSweep, type SweepLine } from './sweep';
export { scheduledDate, scheduledTime } from './scheduled';
export { defineEvent, isEventDef, onEvent, onSuccess, allOf, type EventDef, type EventPayload, type Trigger } from './events';
export { KaonError, ErrorCode, parseOrThrow, describeZodIssues, type KaonErrorInit } from './errors';
export { toMs, type Duration } from './duration';
export type { RunState, StepState, StepStatus, RunStatus, FailedItem } from '../observe/run-state';
