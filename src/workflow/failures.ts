import { ActivityFailure, ApplicationFailure, CancelledFailure, ChildWorkflowFailure } from '@temporalio/workflow';
import type { StepFailureDetails } from '../definition/internal/protocol';

/** The step's own message: unwraps ActivityFailure → ApplicationFailure. */
export function failureMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

/** A child pipeline's own message: unwraps ChildWorkflowFailure, then the step's failure inside it. */
export function childMessage(err: unknown): string {
  return err instanceof ChildWorkflowFailure && err.cause ? failureMessage(err.cause) : failureMessage(err);
}

export function failureDetails(err: unknown): StepFailureDetails | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure || cause instanceof CancelledFailure) return cause.details?.[0] as StepFailureDetails | undefined;
  return undefined;
}
