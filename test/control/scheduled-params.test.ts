// Unit tests of the params a schedule fills: marked fields, through .default() wrappers, filled from the nominal time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { fillScheduled, scheduledFields } from '../../src/definition/scheduled';
import { scheduledDate, scheduledTime } from '../../src/definition';
import { retrainRecommender } from '../../workflows/recommender';

test('scheduledDate()/scheduledTime() fields are found, also behind .default(), and filled from the nominal time', () => {
  const params = z.object({ date: scheduledDate().default('2026-11-21'), at: scheduledTime(), rank: z.number() });
  assert.deepEqual(scheduledFields(params), { date: 'date', at: 'time' });
  const at = new Date('2026-11-03T03:00:00Z');
  assert.deepEqual(fillScheduled(params, { rank: 4, date: '1999-01-01' }, at), { rank: 4, date: '2026-11-03', at: '2026-11-03T03:00:00.000Z' });
  assert.deepEqual(params.parse(fillScheduled(params, { rank: 4 }, at)), { date: '2026-11-03', at: '2026-11-03T03:00:00.000Z', rank: 4 });
  assert.throws(() => scheduledDate().parse('03/11/2026'));
  assert.deepEqual(scheduledFields(retrainRecommender.kaon.params), { date: 'date' }, 'the reference pipeline processes its scheduled day');
});
