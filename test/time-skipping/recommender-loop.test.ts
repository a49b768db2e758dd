// The reference retraining loop, 90 days in seconds on the time-skipping server: viewing-history events on some
// days and the daily tick on the others, two approvals and one rejected challenger, a bad day of data, and every
// execution's history small. The loop, its child retrain and the champion-history step are the shipped code; the
// ML steps (Python in production) get fast TS stand-ins that carry the day through real artifacts, so each day's
// metric is known here.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import type { ArtifactRef } from '../../src/definition';
import { implementStep } from '../../src/execution';
import { appendChampionHistoryImpl } from '../../activities/recommender.impl';
import { ChampionEntry, evaluateRecommender, featurize, ingest, publishModel, trainRecommender, validateData } from '../../activities/recommender';
import { viewingHistory } from '../../workflows/events';
import { isoDate, nextTick, recommenderLoop } from '../../workflows/recommender-loop';
import { timeSkippingWorker, type TimeSkipping } from '../support/time-skipping';

const DAY = 86_400_000;
const DAYS = 90;
/** Partition date → day number (1…90), filled before the loop starts. */
const dayOf = new Map<string, number>();

/** The challenger's NDCG on day d: a slow decline (the champion is kept) except on the days below. */
function ndcg(d: number): number {
  const special: Record<number, number> = { 1: 0.4, 10: 0.45, 20: 0.455, 35: 0.2, 50: 0.46, 60: 0.465, 75: 0.52 };
  return special[d] ?? 0.4 - 0.0001 * d;
}
const BAD_DATA_DAY = 80;
const BASELINE = 0.2;

const read = async (ref: ArtifactRef, ctx: { artifacts: { getPath(r: ArtifactRef): Promise<string> } }) => JSON.parse(await readFile(await ctx.artifacts.getPath(ref), 'utf8')) as { date: string; rank?: number };
const put = (ctx: { artifacts: { put(s: { bytes: string }): Promise<ArtifactRef> } }, v: unknown) => ctx.artifacts.put({ bytes: JSON.stringify(v) });

const standIns = [
  implementStep(ingest, async ({ date, countries }, ctx) => ({
    date,
    datasets: Object.fromEntries(await Promise.all(countries.map(async (c) => [c.code, { interactions: await put(ctx, { date }), rows: 10_000, users: c.users, titles: c.titles }] as const))),
  })),
  implementStep(validateData, async ({ date }, ctx) => {
    const bad = dayOf.get(date) === BAD_DATA_DAY;
    return { ok: !bad, problems: bad ? ['JP: 40% of rows have a null title'] : [], report: await put(ctx, { date, ok: !bad }) };
  }),
  implementStep(featurize, async ({ interactions }, ctx) => {
    const { date } = await read(interactions, ctx);
    return { train: await put(ctx, { date, part: 'train' }), holdout: await put(ctx, { date, part: 'holdout' }), trainRows: 8000, holdoutRows: 2000, users: 600, titles: 400 };
  }),
  implementStep(trainRecommender, async ({ train, rank, epochs }, ctx) => ({ model: await put(ctx, { ...(await read(train, ctx)), rank }), rank, epochs, relativeLoss: 0.1 })),
  implementStep(evaluateRecommender, async ({ model, k }, ctx) => {
    const v = ndcg(dayOf.get((await read(model, ctx)).date)!);
    return { recallAtK: v, ndcgAtK: v, baseline: { recallAtK: BASELINE, ndcgAtK: BASELINE }, lift: v / BASELINE - 1, k };
  }),
  implementStep(publishModel, async ({ country, version, registry }, ctx) => ({ country, version, path: `${registry}/${country}/${version}`, card: await put(ctx, { version }) })),
  appendChampionHistoryImpl,
];

let ts: TimeSkipping;
before(async () => {
  ts = await timeSkippingWorker('recommender-loop', { workflows: 'workflows/index.ts', activities: standIns });
});
after(() => ts.stop());

test('recommender-loop: 90 daily iterations with events and ticks, two approvals, a rejected challenger; the champion history and bounded histories', async (t) => {
  const began = Date.now();
  const start = await ts.env.currentTimeMs();
  const firstTick = nextTick(start, 2);
  const tickOf = (d: number) => firstTick + (d - 1) * DAY;
  for (let d = 1; d <= DAYS; d++) dayOf.set(isoDate(tickOf(d) - DAY), d);
  const eventDay = (d: number) => d % 3 === 0;
  const decisions = ['approve', 'approve', 'reject'] as const;
  let asked = 0;

  const run = await ts.kaon.start(recommenderLoop, { country: 'JP', iterations: DAYS, registry: 'unused' }, { runKey: 'JP' });
  const skipTo = async (t: number) => ts.env.sleep(Math.max(0, t - (await ts.env.currentTimeMs())));
  const subscribed = async () => (await ts.kaon.triggers()).waiting.some((w) => w.run === run.id);
  for (let i = 0; i < 100 && !(await subscribed()); i++) await new Promise((r) => setTimeout(r, 50));

  let dayRun = (await run.handle.describe()).runId;
  for (let d = 1; d <= DAYS; d++) {
    const date = isoDate(tickOf(d) - DAY);
    if (eventDay(d)) {
      await skipTo(tickOf(d) - 3_600_000);
      // Another country's data, and the same event twice: the JP loop retrains once, on its own.
      await ts.kaon.emit(viewingHistory, { country: 'US', date }, { id: `US-${date}` });
      await ts.kaon.emit(viewingHistory, { country: 'JP', date }, { id: `JP-${date}` });
      await ts.kaon.emit(viewingHistory, { country: 'JP', date }, { id: `JP-${date}` });
    } else {
      await skipTo(tickOf(d) + 60_000);
    }
    // Until this day's execution has continued as new (or, on the last day, ended), answering its approval.
    // Watched through describe, not queries: the test server can lose a query that meets a continue-as-new.
    for (let decided = false; ;) {
      const desc = await run.handle.describe();
      if (desc.runId !== dayRun || desc.status.name !== 'RUNNING') {
        dayRun = desc.runId;
        break;
      }
      if ((desc.searchAttributes as Record<string, unknown[]>).KaonStatus?.[0] === 'waiting' && !decided) {
        const what = decisions[asked++];
        assert.ok(what, `day ${d}: an approval beyond the plan`);
        await run[what]('promote', { by: 'ana', comment: `${what} on day ${d}` });
        decided = true;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  const result = await run.result();
  assert.equal(asked, 3, 'three challengers were within the margin');
  assert.equal(result.iterations, DAYS);
  assert.deepEqual(result.champion && { version: result.champion.version, ndcgAtK: result.champion.ndcgAtK }, { version: `${isoDate(tickOf(75) - DAY)}.r75`, ndcgAtK: 0.52 });

  const lines = (await readFile(await ts.artifacts.getPath(result.history!), 'utf8')).trim().split('\n').map((l) => ChampionEntry.parse(JSON.parse(l)));
  assert.equal(lines.length, DAYS);
  assert.deepEqual(lines.map((e) => e.iteration), Array.from({ length: DAYS }, (_, i) => i + 1));
  assert.deepEqual(lines.map((e) => e.date), Array.from({ length: DAYS }, (_, i) => isoDate(tickOf(i + 1) - DAY)), 'each day its own partition, once');
  assert.deepEqual(lines.map((e) => e.trigger), Array.from({ length: DAYS }, (_, i) => (eventDay(i + 1) ? `viewing-history ${isoDate(tickOf(i + 1) - DAY)}` : 'daily tick')));
  const notable = lines.filter((e) => e.decision !== 'kept').map((e) => [dayOf.get(e.date), e.decision, e.by ?? null, e.champion?.version.endsWith(`.r${dayOf.get(e.date)}`) ?? false]);
  assert.deepEqual(notable, [
    [1, 'first-champion', null, true],
    [10, 'promoted', null, true],
    [20, 'approved', 'ana', true],
    [35, 'not-accepted', null, false],
    [50, 'approved', 'ana', true],
    [60, 'rejected', 'ana', false],
    [75, 'promoted', null, true],
    [BAD_DATA_DAY, 'failed', null, false],
  ]);
  assert.match(lines[BAD_DATA_DAY - 1]!.reason, /data validation failed: JP: 40% of rows have a null title/);
  assert.equal(lines[34]!.challenger?.trainings, 3, 'the validation loop retrained the weak model twice');
  assert.equal(lines[59]!.comment, 'reject on day 60');
  assert.equal(lines[59]!.champion?.version, lines[49]!.champion?.version, 'a rejected challenger leaves the champion');

  // Every execution of the run (one per day), walked back along the continue-as-new chain: each history stays small.
  const sizes: number[] = [];
  let runId: string | undefined = (await run.handle.describe()).runId;
  while (runId) {
    const h = await ts.env.client.workflow.getHandle(run.id, runId).fetchHistory();
    sizes.push(h.events?.length ?? 0);
    runId = h.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
  }
  assert.equal(sizes.length, DAYS);
  t.diagnostic(`90 days in ${((Date.now() - began) / 1000).toFixed(1)} s of wall time; execution histories ${Math.min(...sizes)}–${Math.max(...sizes)} events`);
  assert.ok(Math.max(...sizes) < 150, `largest execution history ${Math.max(...sizes)} events`);
});
