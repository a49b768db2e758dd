// Shared set-up of the side-by-side benchmarks (Kaon against plain Temporal): one server (a private dev server
// unless --address is given), connections, a client, and a task queue for each side.
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { connect, type KaonClient } from '../src/client';
import { startDevServer, type DevServer } from '../src/runtime/dev-server';

export function positiveInt(raw: string | undefined, fallback: number, flag: string): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

export interface SideBySide {
  address: string;
  connection: Connection;
  nativeConnection: NativeConnection;
  client: Client;
  kaon: KaonClient;
  kaonQueue: string;
  plainQueue: string;
  close(): Promise<void>;
}

export async function sideBySide(prefix: string, address?: string): Promise<SideBySide> {
  // Worker logs at INFO would interleave with the results.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  let server: DevServer | undefined;
  const addr = address ?? (server = await startDevServer({ port: 0, dbFile: null, headless: true })).address;
  const connection = await Connection.connect({ address: addr });
  const nativeConnection = await NativeConnection.connect({ address: addr });
  const suffix = randomUUID().slice(0, 8);
  const kaonQueue = `${prefix}-kaon-${suffix}`;
  const kaon = await connect({ connection, taskQueue: kaonQueue });
  return {
    address: addr,
    connection,
    nativeConnection,
    client: new Client({ connection }),
    kaon,
    kaonQueue,
    plainQueue: `${prefix}-plain-${suffix}`,
    close: async () => {
      await kaon.close();
      await connection.close();
      await nativeConnection.close();
      await server?.stop();
    },
  };
}
