// Run statuses, in a module of their own: the CLI checks `list --status` before it loads the Temporal client.
import type { RunStatus } from '../observe/run-state';
import { ErrorCode, KaonError } from '../definition/errors';
import { didYouMean } from '../definition/did-you-mean';

/** The statuses a run can have in visibility (KaonStatus). */
const RUN_STATUSES = ['running', 'waiting', 'paused', 'succeeded', 'failed', 'cancelled'] as const satisfies readonly RunStatus[];

/** Refuse a status no run can have (a list filtered by it would be empty, silently). */
export function assertRunStatus(status: string): void {
  if ((RUN_STATUSES as readonly string[]).includes(status)) return;
  throw new KaonError({
    code: ErrorCode.invalidParams,
    what: `status ${JSON.stringify(status)} is not a run status${didYouMean(status, RUN_STATUSES)}`,
    fix: `use one of ${RUN_STATUSES.join(', ')}`,
  });
}
