// Triggers: what starts pipelines besides people and schedules. Pipelines declare them (definePipeline({ triggers }));
// the registry below is filled as the workflow bundle loads, so Kaon's events workflow and a succeeding pipeline
// know every trigger. A triggered run has a deterministic id, and Temporal refuses a second run with that id:
// each (trigger, event id) starts at most one run, whatever the retries and concurrent emits.
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ParentClosePolicy, startChild, WorkflowIdReusePolicy, log, workflowInfo } from '@temporalio/workflow';
import type { z } from 'zod';
import type { Trigger } from '../definition/events';
import { SAKey } from '../definition/internal/protocol';

export interface RegisteredTrigger {
  pipeline: string;
  params: z.ZodType;
  trigger: Trigger;
  /** Stable name: `retrain-loop on viewing-history`, `report after retrain`, `train when features+labels`. */
  id: string;
}

const registry: RegisteredTrigger[] = [];

export function registerTriggers(pipeline: string, params: z.ZodType, triggers: readonly Trigger[]): void {
  for (const trigger of triggers) {
    const id =
      trigger.kind === 'event' ? `${pipeline} on ${trigger.event.name}` : trigger.kind === 'success' ? `${pipeline} after ${trigger.after}` : `${pipeline} when ${trigger.events.map((e) => e.name).join('+')}`;
    registry.push({ pipeline, params, trigger, id });
  }
}

export function triggers(): readonly RegisteredTrigger[] {
  return registry;
}

/** A workflow-id-safe form of a key or event id. */
export function idPart(s: string): string {
  return s.replace(/[^A-Za-z0-9_.:=-]/g, '_').slice(0, 120);
}

export type StartOutcome = { started: string } | { duplicate: string } | { error: string };

/** Start a triggered run with a deterministic id (at most once per id), abandoned so it outlives its starter. */
export async function startTriggered(t: RegisteredTrigger, make: () => unknown, workflowId: string, cause: string): Promise<StartOutcome> {
  let params: unknown;
  try {
    params = t.params.parse(make());
  } catch (err) {
    const error = `trigger "${t.id}" made invalid params for ${cause}: ${err instanceof Error ? err.message : String(err)}`;
    log.warn(error);
    return { error };
  }
  try {
    await startChild(t.pipeline, {
      workflowId,
      taskQueue: workflowInfo().taskQueue,
      args: [params, { cache: 'on' }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      typedSearchAttributes: [{ key: SAKey.pipeline, value: t.pipeline }, { key: SAKey.status, value: 'running' }],
      staticSummary: `${t.pipeline}, started by ${cause}`,
    });
    return { started: workflowId };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return { duplicate: workflowId };
    const error = `trigger "${t.id}" could not start ${workflowId}: ${err instanceof Error ? err.message : String(err)}`;
    log.warn(error);
    return { error };
  }
}
