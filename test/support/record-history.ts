// Records the history of a real run of a pipeline into test/fixtures/histories/, for the replay test.
// Usage: npx tsx test/support/record-history.ts   (re-record after an intentional pipeline change)
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensureTemporalCli } from '../../src/runtime/temporal-cli';
import * as activities from '../../activities';
import { mlDemo } from '../../workflows';
import { ROOT, testEnv } from './temporal';

async function main(): Promise<void> {
  const env = await testEnv('record');
  const worker = await env.worker({ workflowsPath: path.join(ROOT, 'workflows/index.ts'), activities });
  await worker.runUntil(async () => {
    const run = await env.kaon.start(mlDemo, { seed: 5, rows: 300 });
    await run.result();
    // The CLI writes the canonical proto JSON that historyFromJSON reads.
    const show = spawnSync(ensureTemporalCli(), ['workflow', 'show', '--address', env.address, '-w', run.id, '-o', 'json'], { encoding: 'utf8' });
    if (show.status !== 0) throw new Error(show.stderr);
    const file = path.join(ROOT, 'test/fixtures/histories/ml-demo.json');
    writeFileSync(file, show.stdout);
    process.stdout.write(`recorded ${(JSON.parse(show.stdout) as { events: unknown[] }).events.length} events to ${file}\n`);
  });
  await env.close();
}

void main();
