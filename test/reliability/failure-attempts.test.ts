// The attempts of a failed step when Temporal, not the step, reports the failure: a server-side start-to-close or
// heartbeat timeout carries no details of the step's own (the worker's "timed out and was killed" error loses the
// race under load), yet the run state must not say 0 attempts for a step that ran.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ActivityFailure, ApplicationFailure, RetryState, TimeoutFailure, TimeoutType } from '@temporalio/common';
import { attemptsOfFailure } from '../../src/workflow/failures';

const activityFailure = (retryState: RetryState, cause: Error) => new ActivityFailure('activity failed', 'pySleep', 'cut', retryState, 'worker', cause);

test('a step failure counts its attempts from its own details, else from the retry state and the timeout type', () => {
  const own = ApplicationFailure.create({ message: 'timed out after 3000 ms', details: [{ attempt: 2 }] });
  assert.equal(attemptsOfFailure(activityFailure(RetryState.MAXIMUM_ATTEMPTS_REACHED, own), 3), 2, 'the step\'s own details win');
  const startToClose = new TimeoutFailure('activity StartToClose timeout', undefined, TimeoutType.START_TO_CLOSE);
  assert.equal(attemptsOfFailure(activityFailure(RetryState.MAXIMUM_ATTEMPTS_REACHED, startToClose), 1), 1, 'maximumAttempts 1, timed out by the server');
  assert.equal(attemptsOfFailure(activityFailure(RetryState.MAXIMUM_ATTEMPTS_REACHED, startToClose), 3), 3, 'all 3 attempts ran');
  assert.equal(attemptsOfFailure(activityFailure(RetryState.TIMEOUT, startToClose), 3), 1, 'schedule-to-close ended the retries: at least one attempt started');
  const heartbeat = new TimeoutFailure('activity Heartbeat timeout', undefined, TimeoutType.HEARTBEAT);
  assert.equal(attemptsOfFailure(activityFailure(RetryState.NON_RETRYABLE_FAILURE, heartbeat), 3), 1);
  const neverStarted = new TimeoutFailure('activity ScheduleToStart timeout', undefined, TimeoutType.SCHEDULE_TO_START);
  assert.equal(attemptsOfFailure(activityFailure(RetryState.NON_RETRYABLE_FAILURE, neverStarted), 3), undefined, 'no attempt is proven');
  assert.equal(attemptsOfFailure(new Error('not an activity failure'), 3), undefined);
});
