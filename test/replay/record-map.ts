// Records the replay fixtures of a sharded sweep: the parent's, the coordinator's and a shard's histories from a
// real run. Run it after a deliberate change to the sweep's workflow code: npx tsx test/replay/record-map.ts
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import * as activities from '../fixtures/scale';
import { manifestSweep } from '../fixtures/scale/workflows';
import { ROOT, runningWorker } from '../support/temporal';

async function main(): Promise<void> {
  const { env, stop } = await runningWorker('record', { workflowsPath: path.join(ROOT, 'test/fixtures/scale/workflows.ts'), activities });
  try {
    const run = await env.kaon.start(manifestSweep, { n: 1100, concurrency: 50, batch: 1, failEvery: 250, onFailure: 'ignore' }, { runKey: 'replay-fixture' });
    await run.result();
    for (const [name, id] of [['map-parent', run.id], ['map-coordinator', `${run.id}/sweep`], ['map-shard', `${run.id}/sweep/shard-1`]] as const) {
      const history = await env.temporal.workflow.getHandle(id).fetchHistory();
      writeFileSync(path.join(ROOT, `test/fixtures/histories/${name}.json`), `${JSON.stringify(JSON.parse(historyToJSON(history)), null, 1)}\n`);
      console.log(`${name}: ${history.events?.length} events`);
    }
  } finally {
    await stop();
  }
}

void main().then(() => process.exit(0));
