import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { ConnectionOptions } from '@temporalio/client';

export const DEFAULT_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_TASK_QUEUE = (): string => process.env.KAON_TASK_QUEUE || 'kaon';

/**
 * Connection settings through Temporal's envconfig conventions: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TEMPORAL_API_KEY, TEMPORAL_TLS_*, and profiles in temporal.toml (TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE).
 * With nothing set, Kaon talks to the embedded dev server on 127.0.0.1:7233.
 */
export function connectionConfig(): { connectionOptions: ConnectionOptions; namespace: string } {
  const cfg = loadClientConnectConfig();
  return {
    connectionOptions: { address: DEFAULT_ADDRESS, ...cfg.connectionOptions },
    namespace: cfg.namespace ?? 'default',
  };
}
