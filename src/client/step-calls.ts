// A past step call, read back from a run's Temporal history: the StepCall the workflow scheduled (key, input,
// pipeline) under the activity id = step key, and what became of it. Client-side only: no worker code.
import type { Client } from '@temporalio/client';
import { decodeRaw } from '../data/codec';
import { ErrorCode, KaonError, parseOrThrow } from '../definition/errors';
import type { StepCall } from '../definition/internal/protocol';
import type { StepDef, StepParsedInput } from '../definition/step';
import type { ArtifactRef } from '../definition/artifact-ref';
import { boundedId } from '../definition/internal/ids';
import { applyTemplate, type MapSpec } from '../definition/internal/map';
import type { Sweep, SweepLine } from '../definition/sweep';

export type StepCallStatus = 'scheduled' | 'running' | 'succeeded' | 'failed' | 'timed out' | 'cancelled' | 'not run';

/** One step call of a run, as its history recorded it. */
export interface StepCallRecord {
  /** The run (workflow id). */
  runId: string;
  key: string;
  /** The step's name (the activity type). */
  step: string;
  pipeline: string;
  /** The input exactly as the workflow sent it (before the step's schema parsed it). */
  input: unknown;
  status: StepCallStatus;
  /**
   * Attempts made so far. Temporal keeps one ActivityTaskStarted per call, for its last attempt (earlier retries
   * leave no event), so this is that attempt's number, or the pending activity's while it still retries.
   */
  attempts: number;
  /** The last failure's message (ActivityTaskFailed / timed out, or a pending activity's last failure). */
  failure?: string;
  /** A k.map item (`score[2]`): its sweep, index, and output when it has one. */
  item?: { sweep: string; index: number; output?: unknown; cached?: boolean; resumed?: boolean };
}

/**
 * Reads lines of JSON-lines artifacts (a sweep's items manifest and results manifest) for the client, which holds
 * no artifact store itself: the CLI passes one built on its store (src/cli/store.ts).
 */
export interface ManifestReader {
  /** Line `i` (0-based) of the artifact, parsed; undefined past its end. */
  line(ref: ArtifactRef, i: number): Promise<unknown>;
}

const ITEM_KEY = /^(.+)\[(\d+)\]$/;

interface Failure {
  message?: string | null;
  cause?: Failure | null;
}

function failureText(f: Failure | null | undefined): string | undefined {
  if (!f) return undefined;
  // A timeout wraps the attempt's own failure: the cause says what the step did.
  return f.cause?.message ? `${f.message ?? ''}: ${f.cause.message}` : (f.message ?? undefined);
}

/**
 * Read the step call `key` of run `runId` from its history (the latest execution of that workflow id). A key
 * `<sweep>[i]` that is no step call of the run is item i of its k.map `<sweep>`, at any batch size: its input
 * comes from the sweep's spec (inline) or its items manifest, its outcome from the results (with `reader`).
 */
export async function readStepCall(temporal: Client, runId: string, key: string, reader?: ManifestReader): Promise<StepCallRecord> {
  const handle = temporal.workflow.getHandle(runId);
  let history: Awaited<ReturnType<typeof handle.fetchHistory>>;
  try {
    history = await handle.fetchHistory();
  } catch (err) {
    throw new KaonError({ code: ErrorCode.notFound, what: `run ${runId} was not found: ${(err as Error).message}`, fix: 'pass the id of a Kaon run (`kaon list` shows them) and check TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE', cause: err });
  }
  // With an encryption key, raw history holds ciphertext: decode it (an unknown key id fails here, naming it).
  await decodeRaw(temporal.options.loadedDataConverter, history);
  const convert = temporal.options.loadedDataConverter.payloadConverter;
  const keys: string[] = [];
  let scheduledId: string | undefined;
  let record: StepCallRecord | undefined;
  for (const e of history.events ?? []) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) {
      if (s.activityId) keys.push(s.activityId);
      if (s.activityId !== key || !s.input?.payloads?.[0]) continue;
      const call = convert.fromPayload<StepCall | { items: unknown }>(s.input.payloads[0]);
      if (typeof call !== 'object' || call === null || 'items' in call) continue; // a k.map batch, not a step call
      scheduledId = String(e.eventId);
      record = { runId, key, step: s.activityType?.name ?? '', pipeline: call.pipeline, input: call.input, status: 'scheduled', attempts: 0 };
      continue;
    }
    if (!record) continue;
    const started = e.activityTaskStartedEventAttributes;
    if (started && String(started.scheduledEventId) === scheduledId) {
      record.attempts = started.attempt ?? 1;
      record.status = 'running';
    }
    const done = e.activityTaskCompletedEventAttributes;
    if (done && String(done.scheduledEventId) === scheduledId) record.status = 'succeeded';
    const failed = e.activityTaskFailedEventAttributes;
    if (failed && String(failed.scheduledEventId) === scheduledId) {
      record.status = 'failed';
      const f = failureText(failed.failure);
      if (f) record.failure = f;
    }
    const timedOut = e.activityTaskTimedOutEventAttributes;
    if (timedOut && String(timedOut.scheduledEventId) === scheduledId) {
      record.status = 'timed out';
      const f = failureText(timedOut.failure);
      if (f) record.failure = f;
    }
    const cancelled = e.activityTaskCanceledEventAttributes;
    if (cancelled && String(cancelled.scheduledEventId) === scheduledId) record.status = 'cancelled';
  }
  const item = record ? undefined : ITEM_KEY.exec(key);
  if (item) {
    const found = await readSweepItem(temporal, runId, item[1]!, Number(item[2]), reader);
    if (found) return found;
  }
  if (!record) {
    const known = [...new Set(keys)];
    throw new KaonError({
      code: ErrorCode.notFound,
      what: `run ${runId} has no step call with key ${JSON.stringify(key)} (its step keys: ${known.slice(0, 30).join(', ') || 'none'}${known.length > 30 ? ', …' : ''})`,
      fix: 'use a key that `kaon status <run>` lists, quoted in the shell (\'train[JP]#2\'); steps of a k.child pipeline or k.map items live in that child run',
    });
  }
  if (record.status === 'scheduled' || record.status === 'running') {
    // Still retrying: the attempt number and last failure are on the pending activity, not in history.
    const pending = (await handle.describe()).raw.pendingActivities?.find((p) => p.activityId === key);
    if (pending) {
      record.attempts = Math.max(record.attempts, pending.attempt ?? 0);
      const f = failureText(pending.lastFailure);
      if (f) record.failure = f;
    }
  }
  return record;
}

/** Item `index` of the sweep `sweepKey` of a run, or undefined when the run has no such sweep. */
export async function readSweepItem(temporal: Client, runId: string, sweepKey: string, index: number, reader?: ManifestReader): Promise<StepCallRecord | undefined> {
  const coordinator = temporal.workflow.getHandle(boundedId(`${runId}/${sweepKey}`));
  let history: Awaited<ReturnType<typeof coordinator.fetchHistory>>;
  try {
    history = await coordinator.fetchHistory();
  } catch {
    return undefined;
  }
  await decodeRaw(temporal.options.loadedDataConverter, history);
  const convert = temporal.options.loadedDataConverter.payloadConverter;
  let spec: MapSpec | undefined;
  let sweep: Sweep | undefined;
  for (const e of history.events ?? []) {
    const started = e.workflowExecutionStartedEventAttributes;
    if (started?.input?.payloads?.[0]) spec = convert.fromPayload<MapSpec>(started.input.payloads[0]);
    const done = e.workflowExecutionCompletedEventAttributes;
    if (done?.result?.payloads?.[0]) sweep = convert.fromPayload<Sweep>(done.result.payloads[0]);
  }
  if (!spec || typeof spec !== 'object' || !spec.source) return undefined;
  const where = `item ${index} of sweep "${sweepKey}" in run ${runId}`;
  const total = spec.source.kind === 'inline' ? spec.source.inputs.length : sweep?.total;
  if (total !== undefined && index >= total) {
    throw new KaonError({ code: ErrorCode.notFound, what: `sweep "${sweepKey}" of run ${runId} has ${total} items, so it has no item ${index}`, fix: `pass an index from 0 to ${total - 1}` });
  }
  let input: unknown;
  if (spec.source.kind === 'inline') input = spec.source.inputs[index];
  else {
    if (!reader) throw new KaonError({ code: ErrorCode.config, what: `the input of ${where} is in its items manifest (${spec.source.ref.uri}), and no artifact store was given to read it`, fix: 'use the kaon CLI (it reads the workers\' store: KAON_HOME or KAON_ARTIFACTS), or pass a ManifestReader' });
    const line = await reader.line(spec.source.ref, index);
    if (line === undefined) throw new KaonError({ code: ErrorCode.notFound, what: `the items manifest of sweep "${sweepKey}" has no line ${index + 1}`, fix: `pass an index below the sweep's item count` });
    input = applyTemplate(spec.source.template, line, index);
  }
  const record: StepCallRecord = { runId, key: `${sweepKey}[${index}]`, step: spec.target.name, pipeline: spec.pipeline, input, status: sweep ? 'not run' : 'running', attempts: 0, item: { sweep: sweepKey, index } };
  if (sweep && reader) {
    const l = (await reader.line(sweep.results, index)) as SweepLine | undefined;
    if (l?.ok) {
      record.status = 'succeeded';
      record.attempts = 1;
      record.item = { ...record.item!, output: l.output, ...(l.cached ? { cached: true } : {}), ...(l.resumed ? { resumed: true } : {}) };
    } else if (l) {
      record.status = l.status === 'failed' ? 'failed' : 'not run';
      if (l.status === 'failed') record.attempts = 1;
      record.failure = l.error;
    }
  } else if (sweep) record.status = 'scheduled';
  return record;
}

/**
 * The recorded input, checked against the step's contract as it is now. A contract that changed since the run
 * fails here with every field that no longer validates, one issue per field.
 */
export function checkRecordedInput<S extends StepDef>(step: S, call: StepCallRecord): StepParsedInput<S> {
  if (step.name !== call.step) {
    throw new KaonError({
      code: ErrorCode.invalidParams,
      what: `step key ${JSON.stringify(call.key)} of run ${call.runId} is a call of step "${call.step}", not "${step.name}"`,
      fix: `pass the "${call.step}" step definition, or the key of a "${step.name}" call`,
    });
  }
  return parseOrThrow(step.input, call.input, {
    code: ErrorCode.invalidInput,
    subject: `the input of ${call.key} recorded in run ${call.runId} (checked against step "${step.name}" version ${step.version} as it is now)`,
    fix: "the step's input schema changed since that run: make it accept the recorded input again (a default or an optional field), or pass an edited input with `kaon step run <step> --input @input.json`",
  }) as StepParsedInput<S>;
}
