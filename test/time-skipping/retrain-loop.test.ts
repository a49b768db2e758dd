// The README's retrain loop, a year of days in seconds on the time-skipping server: one execution per day.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { retrainDayImpl } from '../../examples/retrain-loop/steps.impl';
import { retrainForever } from '../../examples/retrain-loop/workflows';
import { timeSkippingWorker, type TimeSkipping } from '../support/time-skipping';

let ts: TimeSkipping;
before(async () => {
  ts = await timeSkippingWorker('retrain-loop', { workflows: 'examples/retrain-loop/workflows.ts', activities: [retrainDayImpl] });
});
after(() => ts.stop());

test('retrain-forever runs 365 daily iterations; its final state is the fold over all days', async () => {
  const run = await ts.kaon.start(retrainForever, { days: 365 });
  const result = await run.result();
  let champion = 0;
  let promotions = 0;
  for (let day = 0; day < 365; day++) {
    const ndcg = 0.3 + 0.1 * Math.sin(day / 9) + day / 2000;
    if (ndcg > champion) {
      champion = ndcg;
      promotions++;
    }
  }
  assert.deepEqual(result, { day: 365, days: 365, champion, promotions });
  assert.equal((await run.progress()).loop?.execution, 365);
});
