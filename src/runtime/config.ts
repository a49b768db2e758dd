import type { NativeConnectionOptions } from '@temporalio/worker';
import { connectionConfig } from '../client/connection';

export { connectionConfig, DEFAULT_TASK_QUEUE } from '../client/connection';

/** The envconfig connection, in the shape the worker's native connection takes. */
export function nativeConnectionConfig(): { options: NativeConnectionOptions; namespace: string } {
  const { connectionOptions: c, namespace } = connectionConfig();
  const options: NativeConnectionOptions = { address: c.address ?? '127.0.0.1:7233' };
  if (c.tls !== undefined) options.tls = c.tls as NativeConnectionOptions['tls'];
  if (typeof c.apiKey === 'string') options.apiKey = c.apiKey;
  if (c.metadata) options.metadata = c.metadata as Record<string, string>;
  return { options, namespace };
}
