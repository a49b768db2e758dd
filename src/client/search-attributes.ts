// Kaon's search attributes (KaonPipeline, KaonStatus, KaonStep, KaonRunKey) must exist in a namespace before a run
// can start there. `kaon dev` registers them on its own server; a cluster's operator registers them once.
import { ErrorCode, KaonError } from '../definition/errors';
import { SA } from '../definition/internal/protocol';

/** The commands that register Kaon's search attributes in a namespace (Temporal CLI; Temporal Cloud: tcld). */
export function registerCommands(namespace: string): string {
  return Object.values(SA).map((k) => `temporal operator search-attribute create --namespace ${namespace} --name ${k} --type Keyword`).join('; ');
}

/**
 * Temporal's refusal of a start for a search attribute the namespace lacks, as a KaonError that says how to fix
 * it; undefined for any other error. Not retryable: no retry registers them.
 */
export function missingSearchAttributes(err: unknown, namespace: string): KaonError | undefined {
  const text = [err, (err as { cause?: unknown } | undefined)?.cause].map((e) => (e instanceof Error ? e.message : '')).join(' ');
  const m = /no mapping defined for search attribute (\w+)/i.exec(text);
  if (!m) return undefined;
  return new KaonError({
    code: ErrorCode.config,
    what: `namespace "${namespace}" has no search attribute ${m[1]}: Kaon tags every run with ${Object.values(SA).join(', ')} (Keyword), and they are not registered there`,
    fix: `register them once for the namespace: ${registerCommands(namespace)} (on Temporal Cloud: tcld namespace search-attributes add, with the same names; kaon dev does it for its own server)`,
    retryable: false,
    cause: err,
  });
}
