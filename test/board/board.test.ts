// The board in a real headless Chromium (Debian's chromium driven by playwright-core), against real runs of the
// reference pipeline and of a small pipeline with a sweep, a gate and a failing step, on the real Temporal server.
// No browser is downloaded: if Chromium is missing or cannot start, this suite fails.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import * as activities from '../../activities';
import { buildBoardAssets } from '../../src/observe/board/build';
import { startBoard, type Board } from '../../src/observe/board/server';
import type { RunHandle } from '../../src/client';
import { DEFAULT_COUNTRIES, retrainRecommender } from '../../workflows/recommender';
import * as boardSteps from '../fixtures/board';
import { boardCheck, boardSweep } from '../fixtures/board/workflows';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

const OUT = path.join(ROOT, 'test-output', 'board');
const COUNTRIES = ['US', 'BR', 'JP'];

function chromiumPath(): string {
  const fromEnv = process.env.KAON_CHROMIUM;
  if (fromEnv) return fromEnv;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    } catch {
      // next
    }
  }
  throw new Error('no Chromium found. To fix: apt-get install -y chromium (the .ci/run script does), or set KAON_CHROMIUM to its path');
}

let env: TestEnv;
let stopRecommender: () => Promise<void>;
let stopFixture: () => Promise<void>;
let board: Board;
let browser: Browser;
let registry: string;
const fixtureQueue = `board-fixture-${process.pid}`;

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: false });
}

/** Open a page as a user does: through the printed URL, which sets the token's cookie (each page is its own context). */
async function open(page: Page, hash: string): Promise<void> {
  await page.goto(`${board.tokenUrl}${hash}`);
  await page.waitForSelector('main[data-ready="1"]', { timeout: 60_000 });
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('the Kaon board in headless Chromium', { timeout: 900_000 }, () => {
  before(async () => {
    mkdirSync(OUT, { recursive: true });
    await buildBoardAssets();
    ({ env, stop: stopRecommender } = await runningWorker('board', { workflowsPath: path.join(ROOT, 'workflows/index.ts'), activities }));
    const fixture = await env.worker({ taskQueue: fixtureQueue, workflowsPath: path.join(ROOT, 'test/fixtures/board/workflows.ts'), activities: boardSteps });
    const running = fixture.run();
    stopFixture = async () => {
      fixture.shutdown();
      await running;
    };
    registry = path.join(env.artifactsDir, 'registry');
    board = await startBoard({ kaon: env.kaon, artifacts: env.artifacts, ui: 'http://127.0.0.1:8233', token: 'test-token-123', assetsDir: path.join(ROOT, 'dist', 'board') });
    // Fails the suite (no skip) when Chromium cannot start.
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  });
  after(async () => {
    await browser?.close();
    await board?.close();
    await stopFixture?.();
    await stopRecommender?.();
  });

  let first: RunHandle;
  let second: RunHandle;

  test('the Run page fills in live, then shows the DAG of the run: nodes, edges, one node per foreach with its counts', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    first = await env.kaon.start(retrainRecommender, { registry, countries: DEFAULT_COUNTRIES.filter((c) => COUNTRIES.includes(c.code)) });
    await open(page, `#/run?id=${encodeURIComponent(first.id)}`);
    // Live: the page was loaded once; the status and the DAG change without a reload.
    const navigations: string[] = [];
    page.on('framenavigated', (f) => f === page.mainFrame() && navigations.push(f.url()));
    const seenRunning = await page.locator('#run-status [data-status]').getAttribute('data-status');
    assert.ok(seenRunning === 'running' || seenRunning === 'succeeded', `status ${seenRunning}`);
    await until('a foreach node while the run is live', async () => (await page.locator('[data-node="foreach:0"]').count()) > 0);
    await shot(page, 'run-live');
    await first.result();
    await page.waitForSelector('#run-status [data-status="succeeded"]', { timeout: 60_000 });
    assert.equal(seenRunning, 'running', 'the page saw the run running before it succeeded');
    assert.deepEqual(navigations.filter((u) => !u.includes('#')), [], 'no reload');

    const nodes = await page.locator('svg.dag g.node').evaluateAll((els) => els.map((e) => e.getAttribute('data-node')));
    // ingest → validate → foreach over countries (featurize → train ⟲ evaluate) → championChallenger → foreach publish
    assert.deepEqual([...nodes].sort(), ['championChallenger', 'foreach:0', 'foreach:1', 'ingest', 'validateData'].sort());
    const edges = await page.locator('svg.dag path.edge').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-from')}->${e.getAttribute('data-to')} ${e.getAttribute('class')}`));
    const pairs = edges.map((e) => e.split(' ')[0]);
    for (const e of ['ingest->validateData', 'ingest->foreach:0', 'validateData->foreach:0', 'foreach:0->championChallenger', 'foreach:0->foreach:1', 'championChallenger->foreach:1']) assert.ok(pairs.includes(e), `edge ${e} in ${pairs.join(', ')}`);
    assert.ok(edges.some((e) => e.startsWith('ingest->foreach:0') && e.includes('edge-data')), 'the interactions artifacts flow from ingest into the foreach');
    // The DOM's edges are the API's, collapsed onto the drawn nodes; nothing invented.
    const api = (await (await fetch(`${board.url}api/run?id=${encodeURIComponent(first.id)}`, { headers: { authorization: 'Bearer test-token-123' } })).json()) as { state: { steps: { key: string; foreach?: number }[] }; edges: { from: string; to: string }[] };
    const nodeOf = (k: string) => {
      const st = api.state.steps.find((s) => s.key === k);
      return st?.foreach !== undefined ? `foreach:${st.foreach}` : k;
    };
    const collapsed = new Set(api.edges.map((e) => `${nodeOf(e.from)}->${nodeOf(e.to)}`).filter((e) => e.split('->')[0] !== e.split('->')[1]));
    assert.deepEqual([...new Set(pairs)].sort(), [...collapsed].sort());

    const counts = page.locator('[data-node="foreach:0"] .node-counts');
    assert.equal(await counts.getAttribute('data-total'), String(COUNTRIES.length));
    assert.equal(await counts.getAttribute('data-succeeded'), String(COUNTRIES.length));
    assert.equal(await counts.getAttribute('data-failed'), '0');
    assert.equal(await page.locator('[data-node="foreach:0"] .bar').getAttribute('data-fraction'), '1.000');
    // JP retrains twice: its evaluate[JP]#3 is in the foreach, and the Gantt lists every call with its time split.
    await page.locator('[data-node="foreach:0"]').click();
    await page.waitForSelector('.branch >> text=evaluate[JP]#3');
    const jp = await page.locator('.branch', { hasText: 'evaluate[JP]#3' }).locator('a.chip').allInnerTexts();
    assert.deepEqual(jp, ['featurize[JP]', 'train[JP]', 'evaluate[JP]', 'train[JP]#2', 'evaluate[JP]#2', 'train[JP]#3', 'evaluate[JP]#3'], 'the items of this foreach only (publish[JP] is in the next one)');
    assert.ok((await page.locator('table.gantt tbody tr').count()) >= 5 + 3 * 3 + 4);
    await shot(page, 'run');
    await page.close();
  });

  test('the Step page: input and output, artifacts with lineage both ways; the download has the right sha256', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
    await open(page, `#/step?id=${encodeURIComponent(first.id)}&key=${encodeURIComponent('train[US]')}`);
    const row = page.locator('table.artifacts').first().locator('tr[data-sha256]').first();
    const sha = await row.getAttribute('data-sha256');
    assert.match(sha ?? '', /^[0-9a-f]{64}$/);
    assert.match(await row.locator('.lineage-up').innerText(), /train-US\.npz ← featurize\[US\]/);
    assert.match(await row.locator('.lineage-down').innerText(), /evaluate\[US\]/);
    const [download] = await Promise.all([page.waitForEvent('download'), row.locator('a.download').click()]);
    const file = await download.path();
    assert.equal(createHash('sha256').update(readFileSync(file)).digest('hex'), sha);
    const [ref] = (await env.artifacts.listByRun(first.id)).filter((r) => r.producer.step === 'train[US]');
    assert.equal(ref?.sha256, sha, 'the artifact the store recorded for train[US]');
    assert.match(await page.locator('pre.json').last().innerText(), /"relativeLoss"/);
    await shot(page, 'step');
    await page.close();
  });

  test('the Cards page shows the model cards and the comparison card, and their images load', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await open(page, `#/cards?run=${encodeURIComponent(first.id)}`);
    const titles = await page.locator('article.card h3').allInnerTexts();
    for (const c of COUNTRIES) assert.ok(titles.some((t) => t.startsWith(`Model card ${c}`)), `a model card for ${c} in ${titles.join(', ')}`);
    assert.ok(titles.includes('Challenger vs champion'));
    const images = page.locator('article.card img.card-image');
    assert.ok((await images.count()) >= COUNTRIES.length + 1);
    await until('card images to load', async () => (await images.evaluateAll((els) => els.every((e) => (e as unknown as { complete: boolean }).complete && (e as unknown as { naturalWidth: number }).naturalWidth > 0))) || undefined, 30_000);
    await shot(page, 'cards');
    await page.close();
  });

  test('Metrics: one point per run and country, the champion marked; Compare: cached vs re-run steps and params', async () => {
    // A second run of the same pipeline: every step is a cache hit, and the champion stays (no better challenger).
    second = await env.kaon.start(retrainRecommender, { registry, countries: DEFAULT_COUNTRIES.filter((c) => COUNTRIES.includes(c.code)) });
    await second.result();
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await open(page, `#/metrics?pipeline=retrain-recommender&step=evaluateRecommender&field=ndcgAtK&mark=publish`);
    const plot = page.locator('svg.plot');
    assert.equal(await plot.getAttribute('data-runs'), '2');
    for (const c of COUNTRIES) {
      const pts = await page.locator(`circle.point[data-series="${c}"]`).evaluateAll((els) => els.map((e) => e.getAttribute('data-run')));
      assert.deepEqual(pts.sort(), [first.id, second.id].sort(), `one point per run for ${c}`);
    }
    const champions = await page.locator('circle.point.champion').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-series')} ${e.getAttribute('data-run')}`));
    assert.deepEqual(champions.sort(), COUNTRIES.map((c) => `${c} ${first.id}`).sort(), 'the first run published every champion');
    await shot(page, 'metrics');

    await open(page, `#/compare?ids=${encodeURIComponent(`${first.id},${second.id}`)}`);
    const cache = page.locator('table.cache tr[data-row="train[US]"] td');
    assert.deepEqual(await cache.allInnerTexts(), ['re-run', 'cached']);
    assert.ok((await page.locator('table.artifacts-diff tr[data-row]').count()) >= 1, 'the published model cards differ (another version in the plot title)');
    await shot(page, 'compare');
    await page.close();
  });

  test('a failed step shows its error, attempts and "To fix"; a sweep is one node with its counts', async () => {
    const run = await env.kaon.start(boardCheck, { n: 30, fail: true }, { taskQueue: fixtureQueue });
    await assert.rejects(run.result());
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await open(page, `#/run?id=${encodeURIComponent(run.id)}`);
    const sweep = page.locator('[data-node="boardSquare"][data-kind="sweep"]');
    assert.equal(await sweep.count(), 1, 'the 30 items are one node');
    assert.equal(await sweep.locator('.node-counts').getAttribute('data-total'), '30');
    assert.equal(await sweep.locator('.node-counts').getAttribute('data-succeeded'), '30');
    assert.equal(await page.locator('[data-node="boardExplode"]').getAttribute('data-status'), 'failed');
    assert.ok((await page.locator('svg.dag g.node').count()) < 10, 'not one node per item');
    await page.locator('[data-node="boardExplode"]').click();
    await page.waitForSelector('.failure');
    assert.match(await page.locator('.failure-message').innerText(), /rows\.csv has no header line/);
    assert.match(await page.locator('.to-fix').innerText(), /^To fix: write the header "i,sq"/);
    assert.match(await page.locator('.attempts').innerText(), /^2 attempts$/);
    await shot(page, 'step-failed');
    // The card's raw HTML stayed text.
    await open(page, `#/cards?run=${encodeURIComponent(run.id)}`);
    assert.match(await page.locator('article.card').first().innerText(), /<script>window.__pwned = true<\/script>/);
    assert.equal(await page.evaluate(() => (globalThis as unknown as { __pwned?: boolean }).__pwned), undefined);
    await page.close();
  });

  test('a sweep is an item table: one page of rows, state filters, failures grouped by error, item detail', async () => {
    const N = 60;
    const run = await env.kaon.start(boardSweep, { n: N }, { taskQueue: fixtureQueue });
    const sweep = await run.result();
    assert.deepEqual([sweep.succeeded, sweep.failed], [48, 12]);
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const rows = page.locator('table.sweep-items tbody tr[data-i]');
    const shown = () => rows.evaluateAll((els) => els.map((e) => `${e.getAttribute('data-i')}:${e.getAttribute('data-state')}`));
    const settled = (filter: string) => page.waitForSelector(`table.sweep-items[data-filter="${filter}"]:not([data-busy])`);
    // Clicking the sweep's node opens its item table, not the coordinator's call (step kaon.map and its input).
    await open(page, `#/run?id=${encodeURIComponent(run.id)}`);
    await page.locator('[data-node="boardFlaky"][data-kind="sweep"]').click();
    await page.waitForSelector('table.sweep-items tbody tr[data-i]');
    assert.match(page.url(), /#\/sweep\?id=.*key=boardFlaky/);
    assert.equal(await rows.count(), N, 'a page of 100 holds the 60 items');
    const text = await page.locator('main').innerText();
    assert.ok(!text.includes('kaon.map') && !text.includes('"inputs"'), 'nothing of the coordinator\'s raw call');

    // Paged: one page of rows in the DOM, whatever the sweep's size.
    await open(page, `#/sweep?id=${encodeURIComponent(run.id)}&key=boardFlaky&limit=25`);
    assert.deepEqual(await shown(), Array.from({ length: 25 }, (_, i) => `${i}:${i % 10 === 3 || i % 10 === 7 ? 'failed' : 'ok'}`));
    assert.equal(await page.locator('.state-chips [data-state="failed"]').getAttribute('data-count'), '12');
    assert.equal(await page.locator('.state-chips [data-state="ok"]').getAttribute('data-count'), '48');
    await page.locator('.pager button.next').click();
    await settled('||25');
    assert.deepEqual((await shown()).map((r) => r.split(':')[0]), Array.from({ length: 25 }, (_, i) => String(25 + i)));
    await shot(page, 'sweep');

    // Filter by state.
    await page.locator('.state-chips [data-state="failed"]').click();
    await settled('failed||0');
    assert.deepEqual(await shown(), [3, 7, 13, 17, 23, 27, 33, 37, 43, 47, 53, 57].map((i) => `${i}:failed`));
    await page.locator('.state-chips [data-state="ok"]').click();
    await settled('ok||0');
    assert.equal(await rows.count(), 25);
    assert.ok((await shown()).every((r) => r.endsWith(':ok')));
    assert.equal(await page.locator('.pager .range').getAttribute('data-matched'), '48');

    // Failures grouped by error signature; a group filters the table.
    const groups = await page.locator('li.signature').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-count')} × ${e.querySelector('.sig-text')?.textContent}`));
    assert.deepEqual(groups.sort(), ['6 × ValueError: bad config #', '6 × disk full writing /tmp/item-#.bin'].sort());
    await page.locator('li.signature', { hasText: 'ValueError' }).click();
    const sig = await page.locator('li.signature', { hasText: 'ValueError' }).getAttribute('data-sig');
    await settled(`failed|${sig}|0`);
    assert.deepEqual(await shown(), [3, 13, 23, 33, 43, 53].map((i) => `${i}:failed`));

    // An item: its input, its error and its attempts (the call was retried once).
    await rows.filter({ has: page.locator('td', { hasText: /^13$/ }) }).click();
    await page.waitForSelector('.sweep-item[data-i="13"]');
    assert.deepEqual(JSON.parse(await page.locator('.item-input').innerText()), { i: 13 });
    assert.match(await page.locator('.item-error').innerText(), /ValueError: bad config 13/);
    assert.equal(await page.locator('.item-attempts .attempt-count').getAttribute('data-attempts'), '2');
    assert.match(await page.locator('.item-attempts').innerText(), /boardFlaky\[13\]/);
    await shot(page, 'sweep-failure');

    // An item that succeeded: its output and the artifact in it (linked by sha256, with its producer).
    await open(page, `#/sweep?id=${encodeURIComponent(run.id)}&key=boardFlaky&limit=25&item=40`);
    await page.waitForSelector('.sweep-item[data-i="40"]');
    assert.equal(JSON.parse(await page.locator('.item-output').innerText()).sq, 1600);
    const art = page.locator('.sweep-item table.artifacts tr[data-sha256]');
    assert.equal(await art.count(), 1);
    assert.match(await art.innerText(), /plot-40\.svg/);
    assert.ok((await page.locator('table.sweep-items tbody tr').count()) <= 25, 'never more than a page of rows');

    // The Step page of the sweep's key is its item table too.
    await open(page, `#/step?id=${encodeURIComponent(run.id)}&key=boardFlaky`);
    await page.waitForSelector('table.sweep-items tbody tr[data-i]');
    assert.ok(!(await page.locator('main').innerText()).includes('kaon.map'));
    // The API: a page, and a bad filter refused with how to fix it.
    const api = (await (await fetch(`${board.url}api/sweep?run=${encodeURIComponent(run.id)}&key=boardFlaky&state=failed&limit=5`, { headers: { authorization: 'Bearer test-token-123' } })).json()) as { matched: number; rows: { i: number }[]; counts: { failed: number } };
    assert.deepEqual([api.matched, api.rows.map((r) => r.i), api.counts.failed], [12, [3, 7, 13, 17, 23], 12]);
    const bad = await fetch(`${board.url}api/sweep?run=${encodeURIComponent(run.id)}&key=boardFlaky&state=weird`, { headers: { authorization: 'Bearer test-token-123' } });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /not one of ok, failed, not-run, cached, pending\. To fix/);
    await page.close();
  });

  test('gates: without the token the page shows nothing and a decision is refused (401); with it the gate is approved and the run page updates live', async () => {
    const run = await env.kaon.start(boardCheck, { n: 5, gate: true }, { taskQueue: fixtureQueue });
    await until('the gate to wait', async () => (await run.progress()).gates?.some((g) => g.status === 'waiting'));
    // The API refuses without the token, and with a wrong one.
    for (const headers of [{}, { 'x-kaon-token': 'wrong' }] as Record<string, string>[]) {
      const res = await fetch(`${board.url}api/gates/decide`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ run: run.id, gate: 'ship', decision: 'approve' }) });
      assert.equal(res.status, 401);
      assert.match(((await res.json()) as { error: string }).error, /needs its token, for reads too.*To fix:/);
    }
    // A page of another site that rebinds its name to 127.0.0.1 is not answered.
    const rebound = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(`${board.url}api/runs`);
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, headers: { host: `evil.example:${u.port}` } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(rebound.status, 421);
    assert.match(rebound.body, /answers to 127\.0\.0\.1 or localhost/);
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    // Without the token (the bare address): the page loads, but the API answers nothing, so no gate shows.
    await page.goto(`${board.url}#/gates`);
    await page.waitForSelector('main[data-ready="1"]', { timeout: 60_000 });
    assert.match(await page.locator('main .error').innerText(), /needs its token, for reads too/);
    assert.equal(await page.locator(`.gate[data-run="${run.id}"]`).count(), 0);
    assert.equal((await run.progress()).gates?.[0]?.status, 'waiting');
    // With the token (the printed URL): approve; the run page, open in another tab, turns succeeded by itself.
    const runPage = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await open(runPage, `#/run?id=${encodeURIComponent(run.id)}`);
    assert.equal(await runPage.locator('#run-status [data-status]').getAttribute('data-status'), 'waiting');
    await page.goto(`${board.tokenUrl}#/gates`);
    await page.waitForSelector(`.gate[data-run="${run.id}"]`);
    assert.ok(!page.url().includes('token='), 'the token leaves the address bar');
    assert.ok(page.url().endsWith('#/gates'), `the route survives the redirect: ${page.url()}`);
    await shot(page, 'gates');
    await page.locator(`.gate[data-run="${run.id}"] button.approve`).click();
    await page.waitForSelector(`.gate[data-run="${run.id}"] .decision-result [data-status="approved"]`);
    await run.result();
    await runPage.waitForSelector('#run-status [data-status="succeeded"]', { timeout: 60_000 });
    await page.close();
    await runPage.close();
  });

  test('the Runs page lists and filters runs; the Schedules page answers', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await open(page, '#/runs?pipeline=retrain-recommender');
    const ids = await page.locator('table.runs tr[data-run]').evaluateAll((els) => els.map((e) => e.getAttribute('data-run')));
    assert.deepEqual(ids, [second.id, first.id], 'newest first, only that pipeline');
    assert.ok(await page.locator(`tr[data-run="${first.id}"] a.ui-link`).getAttribute('href').then((h) => h?.startsWith('http://127.0.0.1:8233/namespaces/default/workflows/')));
    await open(page, '#/runs');
    await shot(page, 'runs');
    await open(page, `#/runs?q=${encodeURIComponent(first.id)}`);
    assert.deepEqual(await page.locator('table.runs tr[data-run]').evaluateAll((els) => els.map((e) => e.getAttribute('data-run'))), [first.id]);
    await open(page, '#/schedules');
    assert.equal(await page.locator('main .error').count(), 0);
    await shot(page, 'schedules');
    await page.close();
    assert.ok(existsSync(path.join(OUT, 'run.png')));
  });
});
