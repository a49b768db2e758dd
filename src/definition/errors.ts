import type { z } from 'zod';

/**
 * Every Kaon error says what went wrong, where, and how to fix it.
 * `code` is stable and doubles as the Temporal ApplicationFailure type, so a failure is recognisable
 * across the worker → workflow → client boundary.
 */
export interface KaonErrorInit {
  code: string;
  what: string;
  where?: string;
  fix: string;
  retryable?: boolean;
  cause?: unknown;
  details?: unknown;
}

export class KaonError extends Error {
  override readonly name: string = 'KaonError';
  readonly code: string;
  readonly what: string;
  readonly where: string | undefined;
  readonly fix: string;
  readonly retryable: boolean;
  readonly details: unknown;

  constructor(init: KaonErrorInit) {
    super(formatMessage(init), init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.what = init.what;
    this.where = init.where;
    this.fix = init.fix;
    this.retryable = init.retryable ?? false;
    this.details = init.details;
  }
}

function formatMessage(init: KaonErrorInit): string {
  const where = init.where ? ` (${init.where})` : '';
  return `${init.what}${where}. To fix: ${init.fix} [${init.code}]`;
}

/** Error codes; also the ApplicationFailure `type` Kaon raises. */
export const ErrorCode = {
  invalidInput: 'KAON_INVALID_INPUT',
  invalidOutput: 'KAON_INVALID_OUTPUT',
  invalidParams: 'KAON_INVALID_PARAMS',
  invalidDefinition: 'KAON_INVALID_DEFINITION',
  outputTooLarge: 'KAON_OUTPUT_TOO_LARGE',
  noImplementation: 'KAON_NO_IMPLEMENTATION',
  foreachFailed: 'KAON_FOREACH_FAILED',
  mapFailed: 'KAON_MAP_FAILED',
  historyLimit: 'KAON_HISTORY_LIMIT',
  refused: 'KAON_REFUSED',
  stepFailed: 'KAON_STEP_FAILED',
  notFound: 'KAON_NOT_FOUND',
  config: 'KAON_CONFIG',
  temporalCli: 'KAON_TEMPORAL_CLI',
  artifactCorrupt: 'KAON_ARTIFACT_CORRUPT',
  artifactMissing: 'KAON_ARTIFACT_MISSING',
  artifactName: 'KAON_ARTIFACT_NAME',
  badInput: 'KAON_BAD_INPUT',
  processFailed: 'KAON_PROCESS_FAILED',
  timeout: 'KAON_TIMEOUT',
  pipelineError: 'KAON_PIPELINE_ERROR',
  /** A broken invariant in Kaon's own bookkeeping: refused, never papered over. */
  internal: 'KAON_INTERNAL',
  /** A keyed worker got a plaintext payload: it refused it and ran no code. */
  plaintextRefused: 'KAON_PLAINTEXT_REFUSED',
  /** A component without the key was refused in a deployment marked encrypted, before it wrote anything. */
  encryptionRequired: 'KAON_ENCRYPTION_REQUIRED',
} as const;

const MAX_RECEIVED = 80;

function describeReceived(value: unknown): string {
  if (value === undefined) return 'nothing (undefined)';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  if (text.length > MAX_RECEIVED) text = `${text.slice(0, MAX_RECEIVED)}…`;
  return `${typeof value === 'object' && value !== null ? (Array.isArray(value) ? 'array' : 'object') : typeof value} ${text}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

export function fieldPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

/** One line per zod issue: field, what was expected, what was received. */
export function describeZodIssues(error: z.ZodError, value: unknown): string[] {
  return error.issues.map((issue) => {
    const field = fieldPath(issue.path);
    const received = describeReceived(valueAt(value, issue.path));
    return `field "${field}": ${issue.message}; received ${received}`;
  });
}

/** Parse with zod and turn a failure into a KaonError that names each field. Never partially applies. */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  value: unknown,
  ctx: { code: string; subject: string; fix: string },
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const lines = describeZodIssues(result.error, value);
  throw new KaonError({
    code: ctx.code,
    what: `${ctx.subject} is invalid: ${lines.join('; ')}`,
    fix: ctx.fix,
    retryable: false,
    details: { issues: lines },
  });
}
