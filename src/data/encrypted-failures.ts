// The failure converter Kaon uses when payloads are encrypted: an error's message and stack trace (which can
// quote params) move into an encoded payload, so the codec encrypts them too. Loaded by path (Temporal's
// failureConverterPath) by the client, the worker and the workflow bundle; sandbox-safe: no Node built-ins.
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
