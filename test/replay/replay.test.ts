// Replay tests: a history recorded from a real run of the demo replays without a determinism error against
// today's code; a reordered copy of the pipeline fails replay. Catches non-deterministic changes before deploy.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { makeWorkflowExporter } from '@temporalio/interceptors-opentelemetry/lib/worker';
import { Resource } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { DeterminismViolationError } from '@temporalio/workflow';
import { bundlePipelines } from '../../src/runtime/bundle';
import { installTestRuntime, ROOT } from '../support/temporal';
import { SHIPPED } from './shipped';

installTestRuntime();

const history = historyFromJSON(JSON.parse(readFileSync(path.join(ROOT, 'test/fixtures/histories/ml-demo.json'), 'utf8')));

test('the recorded ml-demo history replays against the current pipeline', async () => {
  assert.ok((history.events?.length ?? 0) > 20, 'a real history with the steps in it');
  const workflowBundle = await bundlePipelines(path.join(ROOT, 'workflows/index.ts'));
  await Worker.runReplayHistory({ workflowBundle, replayName: 'ml-demo' }, history, 'ml-demo-recorded');
});

test('a reordered copy of the pipeline fails replay with a determinism error', async () => {
  const workflowBundle = await bundlePipelines(path.join(ROOT, 'test/fixtures/replay/reordered.ts'));
  await assert.rejects(
    Worker.runReplayHistory({ workflowBundle, replayName: 'ml-demo-reordered' }, history, 'ml-demo-recorded'),
    (err: unknown) => err instanceof DeterminismViolationError,
  );
});

// A sharded sweep (recorded by test/replay/record-map.ts): the pipeline, its sweep coordinator and a shard.
const mapRun = 'test-map-manifest--replay-fixture';
for (const [name, what, workflowId] of [['map-parent', 'sweep parent', mapRun], ['map-coordinator', 'sweep coordinator', `${mapRun}/sweep`], ['map-shard', 'sweep shard', `${mapRun}/sweep/shard-1`]] as const) {
  test(`the recorded ${what} history replays against the current code`, async () => {
    const recorded = historyFromJSON(JSON.parse(readFileSync(path.join(ROOT, `test/fixtures/histories/${name}.json`), 'utf8')));
    assert.ok((recorded.events?.length ?? 0) > 20, 'a real history');
    const workflowBundle = await mapBundle;
    await Worker.runReplayHistory({ workflowBundle, replayName: name }, recorded, workflowId);
  });
}
const mapBundle = bundlePipelines(path.join(ROOT, 'test/fixtures/scale/workflows.ts'));

// Every shipped pipeline (workflows/ and examples/), recorded by test/replay/record-shipped.ts from real runs.
for (const s of SHIPPED) {
  const bundle = bundlePipelines(path.join(ROOT, s.module));
  for (const f of s.fixtures) {
    test(`the recorded ${f.name} history (${s.module}) replays against the current code`, async () => {
      const recorded = historyFromJSON(JSON.parse(readFileSync(path.join(ROOT, `test/fixtures/histories/${f.name}.json`), 'utf8')));
      assert.ok((recorded.events?.length ?? 0) > 10, 'a real history');
      await Worker.runReplayHistory({ workflowBundle: await bundle, replayName: f.name }, recorded, f.workflowId);
    });
  }
}

// Traces: the OpenTelemetry workflow interceptors add no commands, so histories recorded without them replay with
// them (a worker turning tracing on needs no new build). Spans of a replay are not exported: the sink is not
// called during replay.
test('recorded histories replay with the OpenTelemetry workflow interceptors in the bundle', async () => {
  const spans = new InMemorySpanExporter();
  const sinks = { exporter: makeWorkflowExporter(new SimpleSpanProcessor(spans), Resource.default()) };
  const demo = await bundlePipelines(path.join(ROOT, 'workflows/index.ts'), { tracing: true });
  await Worker.runReplayHistory({ workflowBundle: demo, replayName: 'ml-demo-traced', sinks }, history, 'ml-demo-recorded');
  const scale = await bundlePipelines(path.join(ROOT, 'test/fixtures/scale/workflows.ts'), { tracing: true });
  for (const [name, workflowId] of [['map-parent', mapRun], ['map-shard', `${mapRun}/sweep/shard-1`]] as const) {
    const recorded = historyFromJSON(JSON.parse(readFileSync(path.join(ROOT, `test/fixtures/histories/${name}.json`), 'utf8')));
    await Worker.runReplayHistory({ workflowBundle: scale, replayName: `${name}-traced`, sinks }, recorded, workflowId);
  }
  assert.deepEqual(spans.getFinishedSpans().map((s) => s.name), [], 'no spans exported from a replay');
  // The same check catches a determinism change with the interceptors too.
  const reordered = await bundlePipelines(path.join(ROOT, 'test/fixtures/replay/reordered.ts'), { tracing: true });
  await assert.rejects(
    Worker.runReplayHistory({ workflowBundle: reordered, replayName: 'ml-demo-reordered-traced', sinks }, history, 'ml-demo-recorded'),
    (err: unknown) => err instanceof DeterminismViolationError,
  );
});
