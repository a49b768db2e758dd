// Encryption as a property of the deployment. The mark lives in the Temporal namespace's own data (set with
// `kaon encryption require`, or `temporal operator namespace update --data kaon.encryption=required`), so every
// client, CLI, board and worker that can reach the namespace reads it, on any host, before it writes. A host can
// also require encryption locally with KAON_ENCRYPTION=required (for servers where namespace data cannot be set,
// such as Temporal Cloud). A component without the key is then refused before it writes anything.
import type { ScheduleClientInterceptor, WorkflowClientInterceptor } from '@temporalio/client';
import { KEY_FILE_ENV } from '../data/codec';
import { ErrorCode, KaonError } from '../definition/errors';

/** Namespace data key that marks the whole namespace encrypted, with the value `required`. */
export const NAMESPACE_MARK = 'kaon.encryption';
/** Namespace data key prefix that marks one task queue (and its step queues `<queue>.<name>`) encrypted. */
export const QUEUE_MARK_PREFIX = 'kaon.encryption.queue.';
export const MARK_REQUIRED = 'required';
/** Temporal keeps namespace data keys forever (updates merge): unmarking writes this value. */
export const MARK_OFF = 'off';
/** The host-local setting: KAON_ENCRYPTION=required. */
export const ENCRYPTION_ENV = 'KAON_ENCRYPTION';

export interface EncryptionMark {
  namespace: string;
  /** What marks the whole namespace, e.g. `namespace data kaon.encryption=required`; undefined when nothing does. */
  all: string | undefined;
  /** Task queues marked one by one. */
  queues: string[];
  /** False when the namespace could not be described (PERMISSION_DENIED): only the host's setting is known. */
  readable: boolean;
}

/** The host's KAON_ENCRYPTION, checked: `required`, or unset/empty. */
export function requiredByEnv(env: NodeJS.ProcessEnv): boolean {
  const v = (env[ENCRYPTION_ENV] ?? '').trim();
  if (v === '' ) return false;
  if (v === MARK_REQUIRED) return true;
  throw new KaonError({
    code: ErrorCode.config,
    what: `${ENCRYPTION_ENV}=${JSON.stringify(v)} is not a setting Kaon knows`,
    fix: `set ${ENCRYPTION_ENV}=required (this host refuses to write without a key), or unset it (the namespace's mark decides)`,
  });
}

/** The mark from a namespace's data (DescribeNamespace namespaceInfo.data) and the host's setting. */
export function readMark(namespace: string, data: Record<string, string> | null | undefined, env: NodeJS.ProcessEnv, readable = true): EncryptionMark {
  const d = data ?? {};
  const all = requiredByEnv(env) ? `${ENCRYPTION_ENV}=${MARK_REQUIRED}` : d[NAMESPACE_MARK] === MARK_REQUIRED ? `namespace data ${NAMESPACE_MARK}=${MARK_REQUIRED}` : undefined;
  const queues = Object.entries(d)
    .filter(([k, v]) => k.startsWith(QUEUE_MARK_PREFIX) && v === MARK_REQUIRED)
    .map(([k]) => k.slice(QUEUE_MARK_PREFIX.length))
    .sort();
  return { namespace, all, queues, readable };
}

/** The setting that marks `taskQueue` (or the namespace) encrypted, or undefined. A queue mark covers its step queues. */
export function markCovering(mark: EncryptionMark, taskQueue: string | undefined): string | undefined {
  if (mark.all) return mark.all;
  if (taskQueue === undefined) return undefined;
  const q = mark.queues.find((m) => taskQueue === m || taskQueue.startsWith(`${m}.`));
  return q === undefined ? undefined : `namespace data ${QUEUE_MARK_PREFIX}${q}=${MARK_REQUIRED}`;
}

/** The refusal of a component without a key, naming the mark and the fix. */
export function keylessRefusal(o: { who: string; action: string; namespace: string; taskQueue?: string | undefined; setting: string }): KaonError {
  const queueMarked = o.setting.includes(QUEUE_MARK_PREFIX);
  return new KaonError({
    code: ErrorCode.encryptionRequired,
    what: `${o.who} has no encryption key (${KEY_FILE_ENV} is not set), and namespace "${o.namespace}"${o.taskQueue && queueMarked ? `, task queue "${o.taskQueue}",` : ''} is marked encrypted (${o.setting}): it refused to ${o.action} before writing anything`,
    fix: `set ${KEY_FILE_ENV} to the deployment's key file (the one its workers use) and try again${o.setting.startsWith(ENCRYPTION_ENV) ? `; or, if this host should not require encryption, unset ${ENCRYPTION_ENV}` : `; or, if this deployment is not meant to be encrypted, unmark it with \`kaon encryption off${queueMarked ? ` --task-queue ${o.setting.slice(o.setting.indexOf(QUEUE_MARK_PREFIX) + QUEUE_MARK_PREFIX.length).split('=')[0]}` : ''}\``}`,
  });
}

type DescribeNamespace = (req: { namespace: string }) => Promise<{ namespaceInfo?: { data?: Record<string, string> | null } | null }>;

function isPermissionDenied(err: unknown): boolean {
  return (err as { code?: unknown })?.code === 7 || /PERMISSION_DENIED/.test((err as Error)?.message ?? '');
}

/** Read the mark through DescribeNamespace. A credential that may not describe the namespace sees the host's setting only. */
export async function fetchMark(describe: DescribeNamespace, namespace: string, env: NodeJS.ProcessEnv): Promise<EncryptionMark> {
  try {
    const res = await describe({ namespace });
    return readMark(namespace, res.namespaceInfo?.data, env);
  } catch (err) {
    if (isPermissionDenied(err)) return readMark(namespace, {}, env, false);
    throw err;
  }
}

/**
 * The mark of one connection's namespace, cached for `ttlMs` (default 30 s): a client that runs for days still
 * sees a mark set after it started, at the cost of one DescribeNamespace per TTL.
 */
export class EncryptionGuard {
  private cached: { at: number; mark: Promise<EncryptionMark> } | undefined;

  constructor(
    private readonly describe: DescribeNamespace,
    readonly namespace: string,
    private readonly opts: { hasKey: boolean; env: NodeJS.ProcessEnv; who: string; ttlMs?: number },
  ) {
    requiredByEnv(opts.env); // a bad KAON_ENCRYPTION fails at connect
  }

  get hasKey(): boolean {
    return this.opts.hasKey;
  }

  mark(): Promise<EncryptionMark> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > (this.opts.ttlMs ?? 30_000)) {
      const mark = fetchMark(this.describe, this.namespace, this.opts.env);
      this.cached = { at: now, mark };
      mark.catch(() => {
        if (this.cached?.mark === mark) this.cached = undefined;
      });
    }
    return this.cached.mark;
  }

  /**
   * Refuse `action` when this component has no key and the namespace or the run's task queue is marked.
   * `taskQueue` may be a lookup (a signal's run): it is called only when single queues are marked.
   */
  async check(action: string, taskQueue: string | undefined | (() => Promise<string | undefined>)): Promise<void> {
    if (this.opts.hasKey) return;
    const mark = await this.mark();
    if (!mark.all && mark.queues.length === 0) return;
    const q = typeof taskQueue === 'function' ? (mark.all ? undefined : await taskQueue()) : taskQueue;
    const setting = markCovering(mark, q);
    if (setting) throw keylessRefusal({ who: this.opts.who, action, namespace: this.namespace, taskQueue: q, setting });
  }
}

/**
 * Client interceptors that refuse, before the call, every start, signal and update (and schedule creation) of a
 * client without a key in a deployment marked encrypted. `runQueue` finds an existing run's task queue.
 */
export function guardInterceptors(guard: EncryptionGuard, runQueue: (workflowId: string, runId?: string) => Promise<string | undefined>): { workflow: WorkflowClientInterceptor[]; schedule: ScheduleClientInterceptor[] } {
  const ofRun = (e: { workflowId: string; runId?: string | undefined }) => () => runQueue(e.workflowId, e.runId);
  return {
    workflow: [
      {
        startWithDetails: async (input, next) => {
          await guard.check(`start a run of ${input.workflowType}`, input.options.taskQueue);
          return next(input);
        },
        signalWithStart: async (input, next) => {
          await guard.check(`signal-with-start ${input.workflowType} (signal "${input.signalName}")`, input.options.taskQueue);
          return next(input);
        },
        startUpdateWithStart: async (input, next) => {
          await guard.check(`update-with-start ${input.workflowType} (update "${input.updateName}")`, input.workflowStartOptions.taskQueue);
          return next(input);
        },
        signal: async (input, next) => {
          await guard.check(`signal run ${input.workflowExecution.workflowId} ("${input.signalName}")`, ofRun(input.workflowExecution));
          return next(input);
        },
        startUpdate: async (input, next) => {
          await guard.check(`update run ${input.workflowExecution.workflowId} ("${input.updateName}")`, ofRun(input.workflowExecution));
          return next(input);
        },
      },
    ],
    schedule: [
      {
        create: async (input, next) => {
          const action = input.options.action as { taskQueue?: string };
          await guard.check(`create schedule ${input.options.scheduleId}`, action.taskQueue);
          return next(input);
        },
      },
    ],
  };
}
