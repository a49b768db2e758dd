// Records the replay fixtures of every shipped pipeline (workflows/ and examples/) from real runs with their
// real steps. Run it after a deliberate change to a shipped pipeline's workflow code, and commit the histories:
//   npx tsx test/replay/record-shipped.ts
// test/replay/replay.test.ts replays each against today's code (SHIPPED there lists them).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { Client } from '@temporalio/client';
import { ROOT, runningWorker } from '../support/temporal';
import { SHIPPED } from './shipped';

async function save(temporal: Client, name: string, workflowId: string, runId?: string): Promise<void> {
  const history = await temporal.workflow.getHandle(workflowId, runId).fetchHistory();
  writeFileSync(path.join(ROOT, `test/fixtures/histories/${name}.json`), `${JSON.stringify(JSON.parse(historyToJSON(history)), null, 1)}\n`);
  console.log(`${name}: ${history.events?.length} events (${workflowId})`);
}

async function until<T>(fn: () => Promise<T | undefined | false>): Promise<T> {
  for (let i = 0; i < 1200; i++) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('timed out');
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  for (const s of SHIPPED.filter((x) => only.length === 0 || only.includes(x.module))) {
    const activities = (await import(path.join(ROOT, s.activities))) as Record<string, unknown>;
    const { env, stop } = await runningWorker('record', { workflowsPath: path.join(ROOT, s.module), activities });
    try {
      await s.record({
        start: (pipeline, params) => env.kaon.start(pipeline as never, params as never, { runKey: 'replay-fixture' }),
        emit: (event, payload, id) => env.kaon.emit(event as never, payload as never, { id }),
        save: (name, workflowId, runId) => save(env.temporal, name, workflowId, runId),
        until,
        taskQueue: env.taskQueue,
      });
    } finally {
      await stop();
    }
  }
}

void main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
