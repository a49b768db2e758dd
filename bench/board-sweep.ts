// The board's sweep page at scale: a real k.map of 100,000 items (batch 1000, every 37th item fails) on a private
// dev server, then the board's sweep page, timed: the first page rendered in headless Chromium by a fresh board
// (cold: the results manifest is scanned), the API's pages cold and warm, a filtered page, an item's detail.
//
//   npx tsx bench/board-sweep.ts                 # 100,000 items
//   npx tsx bench/board-sweep.ts --items 20000
//
// It reports; it does not gate (the machine may be shared).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { createArtifactStore } from '../src/data';
import { buildBoardAssets, BOARD_ASSETS_DIR } from '../src/observe/board/build';
import { startBoard } from '../src/observe/board/server';
import { createKaonWorker } from '../src/runtime/worker';
import * as activities from '../test/fixtures/scale';
import { manifestSweep } from '../test/fixtures/scale/workflows';
import { positiveInt, sideBySide } from './side-by-side';

function chromiumPath(): string {
  if (process.env.KAON_CHROMIUM) return process.env.KAON_CHROMIUM;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    } catch {
      // next
    }
  }
  throw new Error('no Chromium found. To fix: apt-get install -y chromium, or set KAON_CHROMIUM to its path');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { items: { type: 'string' }, address: { type: 'string' } } });
  const items = positiveInt(values.items, 100_000, 'items');
  const { kaon, nativeConnection, kaonQueue, close } = await sideBySide('board-sweep', values.address);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-board-sweep-'));
  const store = createArtifactStore(dir, { localDir: dir });
  const worker = await createKaonWorker({ workflowsPath: require.resolve('../test/fixtures/scale/workflows'), activities, taskQueue: kaonQueue, connection: nativeConnection, shutdownGraceTime: '2s', artifacts: store });
  const running = worker.run();
  const boards: { close(): Promise<void> }[] = [];
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    await buildBoardAssets();
    let t0 = performance.now();
    const run = await kaon.start(manifestSweep, { n: items, batch: 1000, concurrency: 1000, failEvery: 37 });
    const { sweep } = await run.result();
    console.log(`bench:board-sweep: ${items} items ran in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${sweep.succeeded} ok, ${sweep.failed} failed; results manifest ${(sweep.results.size / 1048576).toFixed(1)} MiB`);
    const fresh = async () => {
      const b = await startBoard({ kaon, artifacts: store, token: 'bench-token-123456', assetsDir: BOARD_ASSETS_DIR });
      boards.push(b);
      return b;
    };
    const ms = (t: number) => `${(performance.now() - t).toFixed(0)} ms`.padStart(8);
    const q = (extra: Record<string, string> = {}) => new URLSearchParams({ run: run.id, key: 'sweep', ...extra });

    // The page in a browser, from a fresh board (nothing indexed): navigation → the first page of rows drawn.
    const a = await fresh();
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    t0 = performance.now();
    await page.goto(`${a.url}#/sweep?id=${encodeURIComponent(run.id)}&key=sweep`);
    await page.waitForSelector('table.sweep-items tbody tr[data-i]', { timeout: 60_000 });
    console.log(`${ms(t0)}  browser: first page drawn, fresh board (cold: scan of the results manifest)   ${await page.locator('table.sweep-items tbody tr').count()} rows in the DOM`);
    t0 = performance.now();
    await page.reload();
    await page.waitForSelector('table.sweep-items tbody tr[data-i]');
    console.log(`${ms(t0)}  browser: the same page reloaded (warm)`);
    t0 = performance.now();
    await page.locator('.state-chips [data-state="failed"]').click();
    await page.waitForSelector('table.sweep-items[data-filter="failed||0"]:not([data-busy])');
    console.log(`${ms(t0)}  browser: click "failed" → its first page`);
    t0 = performance.now();
    await page.locator('table.sweep-items tbody tr[data-i]').nth(5).click();
    await page.waitForSelector('.sweep-item');
    console.log(`${ms(t0)}  browser: click a row → item detail (input from the items manifest, attempts from the shard's history)`);
    await page.close();

    // The API from another fresh board.
    const b = await fresh();
    const get = async (p: string) => {
      const res = await fetch(`${b.url}${p}`);
      if (!res.ok) throw new Error(`${p}: HTTP ${res.status} ${await res.text()}`);
      return res.json() as Promise<{ matched?: number; scanMs?: number; signatures?: { id: string }[] }>;
    };
    t0 = performance.now();
    const first = await get(`api/sweep?${q()}`);
    console.log(`${ms(t0)}  API: first page, cold (of which the scan ${first.scanMs?.toFixed(0)} ms)`);
    t0 = performance.now();
    await get(`api/sweep?${q({ offset: '50000' })}`);
    console.log(`${ms(t0)}  API: page at item 50,000 (warm)`);
    t0 = performance.now();
    const failed = await get(`api/sweep?${q({ state: 'failed', offset: '1000' })}`);
    console.log(`${ms(t0)}  API: failed items, page 11 of ${Math.ceil((failed.matched ?? 0) / 100)}`);
    t0 = performance.now();
    await get(`api/sweep?${q({ state: 'failed', sig: first.signatures?.[0]?.id ?? '' })}`);
    console.log(`${ms(t0)}  API: a signature group`);
    t0 = performance.now();
    await get(`api/sweep/item?${q({ i: String(items - 1) })}`);
    console.log(`${ms(t0)}  API: the last item's detail`);
  } finally {
    await browser.close();
    for (const b of boards) await b.close();
    worker.shutdown();
    await running;
    await close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
