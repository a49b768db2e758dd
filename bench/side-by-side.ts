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

/** Where a step's time goes, from one run's history (event times are the server's). Means per step, in ms: they add up. */
export interface Breakdown {
  events: number;
  /** Workflow tasks the run took. */
  wfts: number;
  /** Workflow task scheduled → started: the server handing the next workflow task to a worker. */
  wftWait: number;
  /** Workflow task started → completed: the worker running the workflow code, and the completion RPC. */
  wftRun: number;
  /** Activity scheduled → completed: dispatch, the step itself, its heartbeats and the completion RPC. */
  activity: number;
}

export async function breakdown(client: Client, workflowId: string): Promise<Breakdown> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const at = (e: (typeof events)[number]): number => Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
  const gaps = { wftWait: [] as number[], wftRun: [] as number[], activity: [] as number[] };
  const scheduled = new Map<string, number>();
  let wftScheduled = 0;
  let wftStarted = 0;
  // Event kinds by their attributes field (the SDK decodes each event with exactly one set).
  for (const e of events) {
    if (e.workflowTaskScheduledEventAttributes) wftScheduled = at(e);
    else if (e.workflowTaskStartedEventAttributes) {
      wftStarted = at(e);
      gaps.wftWait.push(wftStarted - wftScheduled);
    } else if (e.workflowTaskCompletedEventAttributes) gaps.wftRun.push(at(e) - wftStarted);
    else if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), at(e));
    else if (e.activityTaskCompletedEventAttributes) {
      const from = scheduled.get(String(e.activityTaskCompletedEventAttributes.scheduledEventId));
      if (from !== undefined) gaps.activity.push(at(e) - from);
    }
  }
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return { events: events.length, wfts: gaps.wftRun.length, wftWait: mean(gaps.wftWait), wftRun: mean(gaps.wftRun), activity: mean(gaps.activity) };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
