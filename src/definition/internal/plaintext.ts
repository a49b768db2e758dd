// A plaintext payload that reached a worker holding an encryption key. The worker's codec (src/data/codec.ts)
// replaces it with this marker, which carries no data; the workflow and activity interceptors refuse any input
// holding one before user code runs. Sandbox-safe: shared by the workflow bundle and the worker.
import { ApplicationFailure } from '@temporalio/common';
import { ErrorCode } from '../errors';

/** The key of the marker object a refused plaintext payload decodes to. */
export const REFUSED_PLAINTEXT = 'kaon.refusedPlaintext';

export interface RefusedPlaintext {
  [REFUSED_PLAINTEXT]: { encoding: string };
}

/** The marker's encoding, if `v` is a refused plaintext payload. */
export function refusedEncoding(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null || !(REFUSED_PLAINTEXT in v)) return undefined;
  const inner = (v as RefusedPlaintext)[REFUSED_PLAINTEXT];
  return typeof inner?.encoding === 'string' ? inner.encoding : 'unknown';
}

/** The failure a keyed worker raises for a plaintext input: non-retryable, naming what arrived and the fix. */
export function plaintextRefusal(where: string, encoding: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorCode.plaintextRefused,
    nonRetryable: true,
    message:
      `${where} arrived in plaintext (encoding ${encoding}) at a worker that holds an encryption key: whatever wrote it (a client, the CLI, ` +
      'the board, a Temporal tool) had no key. The worker refused it and ran no code. To fix: give the writer the deployment\'s key file ' +
      '(KAON_ENCRYPTION_KEY_FILE), mark the deployment with `kaon encryption require` so that keyless clients are refused before they write, ' +
      `and start the run again [${ErrorCode.plaintextRefused}]`,
  });
}

/** Throw the refusal if any of `args` is a refused plaintext payload. */
export function refusePlaintextArgs(args: readonly unknown[], where: string): void {
  for (const [i, a] of args.entries()) {
    const encoding = refusedEncoding(a);
    if (encoding !== undefined) throw plaintextRefusal(i > 0 ? `${where} (argument ${i + 1})` : where, encoding);
  }
}
