// Every shipped pipeline and how its replay fixtures were recorded (test/replay/record-shipped.ts runs these).
// A fixture is one execution's history; the replay test replays each against its module's current code.
import type { RunHandle } from '../../src/client';
import { viewingHistory } from '../../workflows/events';
import { recommenderLoop } from '../../workflows/recommender-loop';
import { retrainRecommender } from '../../workflows/recommender';
import { wordCount } from '../../examples/first-pipeline/workflows';
import { hyperSweep } from '../../examples/sweep/workflows';
import { retrainForever } from '../../examples/retrain-loop/workflows';
import { countryScores } from '../../examples/debug-step/workflows';

export interface Recorder {
  start(pipeline: unknown, params: unknown): Promise<RunHandle>;
  emit(event: unknown, payload: unknown, id: string): Promise<unknown>;
  save(name: string, workflowId: string, runId?: string): Promise<void>;
  until<T>(fn: () => Promise<T | undefined | false>): Promise<T>;
  taskQueue: string;
}

export interface Shipped {
  /** The workflows module (bundled for replay). */
  module: string;
  activities: string;
  /** Fixture names (test/fixtures/histories/<name>.json) with the workflow id they were recorded under. */
  fixtures: { name: string; workflowId: string }[];
  record(r: Recorder): Promise<void>;
}

const runId = async (run: RunHandle) => (await run.handle.describe()).runId;
const LOOP = 'recommender-loop--replay-fixture';

export const SHIPPED: Shipped[] = [
  {
    module: 'workflows/index.ts',
    activities: 'activities/index.ts',
    fixtures: [
      { name: 'retrain-recommender', workflowId: 'retrain-recommender--replay-fixture' },
      { name: 'recommender-loop-1', workflowId: LOOP },
      { name: 'recommender-loop-2', workflowId: LOOP },
      { name: 'retrain-country', workflowId: `${LOOP}/retrain[2026-11-21]` },
      { name: 'kaon-events', workflowId: 'kaon.events--record' },
    ],
    async record(r) {
      const batch = await r.start(retrainRecommender, {});
      await batch.result();
      await r.save('retrain-recommender', batch.id);
      // Two iterations of the loop: a first champion, then a challenger (approved if it needs a person). An event
      // first, so the events workflow exists and the loop subscribes by signal: a replay runs on another task queue,
      // so a start of the events workflow (its id names the queue) would not match.
      await r.emit(viewingHistory, { country: 'US', date: '2026-11-20' }, 'US-2026-11-20');
      await new Promise((res) => setTimeout(res, 1000));
      const loop = await r.start(recommenderLoop, { country: 'JP', iterations: 2, margin: 1 });
      const first = await runId(loop);
      await r.until(async () => (await loop.progress()).steps.some((s) => s.step === 'waitFor'));
      await new Promise((res) => setTimeout(res, 1000));
      await r.emit(viewingHistory, { country: 'JP', date: '2026-11-21' }, 'JP-2026-11-21');
      const second = await r.until(async () => {
        const id = await runId(loop);
        return id !== first && id;
      });
      await r.emit(viewingHistory, { country: 'JP', date: '2026-11-22' }, 'JP-2026-11-22');
      await r.until(async () => {
        const s = await loop.progress();
        if (s.gates?.some((g) => g.status === 'waiting')) await loop.approve('promote', { by: 'recorder', comment: 'fixture' });
        return s.status === 'succeeded';
      });
      await r.save('recommender-loop-1', loop.id, first);
      await r.save('recommender-loop-2', loop.id, second);
      await r.save('retrain-country', `${loop.id}/retrain[2026-11-21]`);
      await r.save('kaon-events', `kaon.events--${r.taskQueue}`);
    },
  },
  {
    module: 'examples/first-pipeline/workflows.ts',
    activities: 'examples/first-pipeline/index.ts',
    fixtures: [{ name: 'word-count', workflowId: 'word-count--replay-fixture' }],
    async record(r) {
      const run = await r.start(wordCount, { text: 'the cat sat on the mat with the hat' });
      await run.result();
      await r.save('word-count', run.id);
    },
  },
  {
    module: 'examples/sweep/workflows.ts',
    activities: 'examples/sweep/index.ts',
    fixtures: [{ name: 'hyper-sweep', workflowId: 'hyper-sweep--replay-fixture' }],
    async record(r) {
      const run = await r.start(hyperSweep, {});
      await run.result();
      await r.save('hyper-sweep', run.id);
    },
  },
  {
    module: 'examples/retrain-loop/workflows.ts',
    activities: 'examples/retrain-loop/index.ts',
    fixtures: [{ name: 'retrain-forever', workflowId: 'retrain-forever--replay-fixture' }],
    async record(r) {
      // One day: the loop's body up to its timer (a two-day run would sleep a real day in between).
      const run = await r.start(retrainForever, { days: 1 });
      await run.result();
      await r.save('retrain-forever', run.id);
    },
  },
  {
    module: 'examples/debug-step/workflows.ts',
    activities: 'examples/debug-step/index.ts',
    fixtures: [{ name: 'country-scores', workflowId: 'country-scores--replay-fixture' }],
    async record(r) {
      // It fails for JP by design (the README's debugging walk-through): a failed run's history replays too.
      const run = await r.start(countryScores, {});
      await run.result().catch(() => undefined);
      await r.save('country-scores', run.id);
    },
  },
];
