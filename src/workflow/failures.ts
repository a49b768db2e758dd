import { RetryState, TimeoutType } from '@temporalio/common';
import { ActivityFailure, ApplicationFailure, CancelledFailure, ChildWorkflowFailure, TimeoutFailure } from '@temporalio/workflow';
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

/**
 * The attempts a failed step made, when its failure carries no details of the step's own: a timeout the server
 * enforced (START_TO_CLOSE or HEARTBEAT) reaches the workflow before, or instead of, the worker's own "timed out and
 * was killed" error, which says its attempt. The retry state still tells: all `maximumAttempts` ran; a start-to-close
 * or heartbeat timeout means at least one attempt started. Undefined when the failure says neither.
 */
export function attemptsOfFailure(err: unknown, maximumAttempts: number | undefined): number | undefined {
  const details = failureDetails(err)?.attempt;
  if (details !== undefined) return details;
  if (!(err instanceof ActivityFailure)) return undefined;
  if (err.retryState === RetryState.MAXIMUM_ATTEMPTS_REACHED && maximumAttempts) return maximumAttempts;
  const cause = err.cause;
  if (cause instanceof TimeoutFailure && (cause.timeoutType === TimeoutType.START_TO_CLOSE || cause.timeoutType === TimeoutType.HEARTBEAT)) return 1;
  return undefined;
}
