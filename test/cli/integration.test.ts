// The real CLI against the shared Temporal dev server: `kaon worker` children, run/status/list/cancel, plain
// watch output, and graceful shutdown on SIGTERM.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { connect, type KaonClient } from '../../src/client';
import { watchRun } from '../../src/cli/watch';
import { ROOT, testServer } from '../support/temporal';
import { ANSI, CliProcess, cliEnv, kaon } from './cli-process';

const FIXTURE = path.join(ROOT, 'test/fixtures/cli-project');
const FIXTURE_FLAGS = ['--workflows', 'test/fixtures/cli-project/pipelines.ts', '--activities', 'test/fixtures/cli-project/steps.ts'];
const suffix = randomUUID().slice(0, 8);
const Q_DEMO = `cli-demo-${suffix}`;
const Q_SLOW = `cli-slow-${suffix}`;
const Q_TERM = `cli-term-${suffix}`;
const DEMO_STEPS = [
  'generateDataset', 'profileDataset', 'splitDataset',
  'trainModel[logistic]', 'trainModel[naive-bayes]', 'trainModel[knn]',
  'evaluateModel[logistic]', 'evaluateModel[naive-bayes]', 'evaluateModel[knn]', 'reportMetrics',
];

let address: string;
let connection: Connection;
let client: KaonClient;
let tmp: string;
const workers: CliProcess[] = [];

function env(queue: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return cliEnv({ TEMPORAL_ADDRESS: address, KAON_TASK_QUEUE: queue, ...extra });
}

function startedId(stdout: string, pipeline: string): string {
  const m = new RegExp(`^started ${pipeline} run (${pipeline}-[\\w.:=-]+) \\(task queue [\\w-]+\\)$`, 'm').exec(stdout);
  assert.ok(m, `"started … run" line in:\n${stdout}`);
  return m[1]!;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function startWorker(queue: string, args: string[] = []): CliProcess {
  const w = new CliProcess(['worker', ...args], { env: env(queue) });
  workers.push(w);
  return w;
}

describe('kaon CLI against a real server', { timeout: 300_000 }, () => {
  before(async () => {
    address = (await testServer()).address;
    connection = await Connection.connect({ address });
    client = await connect({ connection, taskQueue: Q_SLOW });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-cli-it-'));
    // The project's own pipelines (defaults: workflows/, activities/) and the fixture project, side by side.
    const a = startWorker(Q_DEMO);
    const b = startWorker(Q_SLOW, [...FIXTURE_FLAGS, '--grace', '10s']);
    await Promise.all([a.waitFor(/^kaon worker: ready/m), b.waitFor(/^kaon worker: ready/m)]);
    assert.match(a.stdout, new RegExp(`task queue ${Q_DEMO}: pipelines ml-demo, recommender-loop, retrain-country, retrain-recommender; steps appendChampionHistory, championChallenger, evaluateModel, evaluateRecommender, featurize, generateDataset, ingest, profileDataset, publishModel, reportMetrics, splitDataset, trainModel, trainRecommender, trainRecommenderAls, validateData`));
    assert.match(b.stdout, new RegExp(`task queue ${Q_SLOW}: pipelines cli-slow; steps slowStep`));
  });

  after(async () => {
    for (const w of workers) w.kill();
    await connection?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  let demoRun = '';

  test('kaon run ml-demo --wait completes and prints the metrics', async () => {
    const r = await kaon(['run', 'ml-demo', '--params', '{"seed":3,"rows":300}', '--wait'], { env: env(Q_DEMO) });
    assert.equal(r.code, 0, r.stderr);
    demoRun = startedId(r.stdout, 'ml-demo');
    const result = await client.run<{ table: string; best: string; metrics: Record<string, { auc: number }> }>(demoRun).result();
    // The printed table is the pipeline's own, then its best model, then the run id.
    assert.ok(r.stdout.includes(`\n${result.table}\nbest: ${result.best}\n`), r.stdout);
    assert.match(r.stdout, /^model {8}accuracy {2}precision {2}recall {2}f1 {6}auc$/m);
    for (const m of ['logistic', 'naive-bayes', 'knn']) assert.match(r.stdout, new RegExp(`^${m}\\s+0\\.\\d{4}\\s+0\\.\\d{4}\\s+0\\.\\d{4}\\s+0\\.\\d{4}\\s+0\\.\\d{4}$`, 'm'));
    assert.match(r.stdout, new RegExp(`^run: {4}${demoRun}$`, 'm'));
    assert.ok(!r.stdout.includes('Web UI'), 'no UI link for a non-local address without KAON_UI_URL');
  });

  test('kaon run --run-key is idempotent and --no-cache reaches the run', async () => {
    const key = `k-${suffix}`;
    const first = await kaon(['run', 'ml-demo', '--params', '{"seed":4,"rows":200}', '--run-key', key, '--no-cache'], { env: env(Q_DEMO) });
    assert.equal(first.code, 0, first.stderr);
    const id = startedId(first.stdout, 'ml-demo');
    assert.equal(id, `ml-demo--${key}`);
    const d = await client.run(id).handle.describe();
    assert.deepEqual(d.memo?.kaon, { pipeline: 'ml-demo', cache: 'off' });
    const again = await kaon(['run', 'ml-demo', '--params', '{"seed":4,"rows":200}', '--run-key', key, '--wait'], { env: env(Q_DEMO) });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`^run key "${key}" already has run ${id}; not starting another$`, 'm'));
    assert.match(again.stdout, /^best: /m);
  });

  test('kaon status shows every step succeeded (table and JSON), with the Web UI link', async () => {
    assert.ok(demoRun);
    const r = await kaon(['status', demoRun], { env: env(Q_DEMO, { KAON_UI_URL: 'http://ui.test/' }) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^status {2}succeeded · started /m);
    assert.match(r.stdout, new RegExp(`^Web UI  http://ui\\.test/namespaces/default/workflows/${demoRun}$`, 'm'));
    assert.match(r.stdout, /^ml-demo succeeded · 10 steps: 10 succeeded · /m);
    for (const key of DEMO_STEPS) assert.match(r.stdout, new RegExp(`^${key.replace(/[[\]]/g, '\\$&')}\\s+✓ succeeded\\s+1\\s+\\d+\\.\\ds`, 'm'), key);

    const j = await kaon(['status', demoRun, '--json'], { env: env(Q_DEMO) });
    assert.equal(j.code, 0, j.stderr);
    const parsed = JSON.parse(j.stdout) as { status: string; temporal: string; progress: { steps: { key: string; status: string }[] } };
    assert.equal(parsed.status, 'succeeded');
    assert.equal(parsed.temporal, 'COMPLETED');
    assert.deepEqual(parsed.progress.steps.map((s) => s.key).sort(), [...DEMO_STEPS].sort());
    assert.ok(parsed.progress.steps.every((s) => s.status === 'succeeded'));
  });

  test('kaon list --pipeline ml-demo lists the run', async () => {
    assert.ok(demoRun);
    // Visibility is eventually consistent: the run shows up within a moment.
    const out = await until('the run in kaon list', async () => {
      const r = await kaon(['list', '--pipeline', 'ml-demo', '--limit', '500'], { env: env(Q_DEMO) });
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.includes(demoRun) ? r.stdout : undefined;
    });
    assert.match(out, /^RUN\s+PIPELINE\s+STATUS\s+STARTED \(UTC\)\s+TIME$/m);
    assert.match(out, new RegExp(`^${demoRun}\\s+ml-demo\\s+succeeded\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+\\d+\\.\\ds$`, 'm'));
    const j = await kaon(['list', '--pipeline', 'ml-demo', '--status', 'succeeded', '--limit', '500', '--json'], { env: env(Q_DEMO) });
    const runs = JSON.parse(j.stdout) as { id: string; pipeline: string; status: string }[];
    assert.ok(runs.some((x) => x.id === demoRun && x.status === 'succeeded'));
    assert.ok(runs.every((x) => x.pipeline === 'ml-demo'));
  });

  test('kaon status --watch on a non-TTY prints one plain line per change, no ANSI', async () => {
    // Started from the fixture folder: its package.json "kaon" block locates the pipelines.
    const started = await kaon(['run', 'cli-slow', '--params', '{"ms":5000}'], { env: env(Q_SLOW), cwd: FIXTURE });
    assert.equal(started.code, 0, started.stderr);
    const id = startedId(started.stdout, 'cli-slow');
    const r = await kaon(['status', id, '--watch'], { env: env(Q_SLOW) });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, ANSI);
    const lines = r.stdout.trimEnd().split('\n');
    for (const l of lines) assert.match(l, /^\d\d:\d\d:\d\d \S+ (running|waiting|succeeded)/, l);
    assert.equal(new Set(lines.map((l) => l.slice(9))).size, lines.length, 'each line is a change');
    assert.ok(lines.some((l) => /^\d\d:\d\d:\d\d slowStep running \d+% tick \d+\/10$/.test(l)), `progress lines:\n${r.stdout}`);
    assert.match(lines.at(-2)!, /^\d\d:\d\d:\d\d slowStep succeeded in (\d+\.\ds|\d+m\d\ds)$/);
    assert.match(lines.at(-1)!, /^\d\d:\d\d:\d\d cli-slow succeeded in (\d+\.\ds|\d+m\d\ds)$/);
  });

  test('in a TTY the watch redraws bars in place and restores the cursor', async () => {
    const run = await client.start('cli-slow', { ms: 2000 });
    let out = '';
    const last = await watchRun(run, {
      namespace: 'default',
      intervalMs: 100,
      io: { stdout: { isTTY: true, columns: 80, rows: 20, write: (c: string) => (out += c) }, stderr: { write: () => true }, cwd: ROOT, env: {} },
    });
    assert.equal(last.info.temporal, 'COMPLETED');
    assert.ok(out.startsWith('\u001b[?25l'), 'cursor hidden while drawing');
    assert.ok(out.endsWith('\u001b[?25h'), 'cursor shown again');
    // Every redraw moves up over the previous block (header + one step = 2 lines) and clears below.
    assert.ok(out.split('\u001b[2F\u001b[J').length > 2, 'redrawn in place several times');
    const final = out.slice(out.lastIndexOf('\u001b[J') + 3);
    assert.match(final, /^cli-slow succeeded · 1 step: 1 succeeded · \d+\.\ds\n/);
    assert.match(final, /\u001b\[32m✓ \u001b\[0mslowStep \[\u001b\[32m█{10,}/);
  });

  test('kaon status without a worker falls back to Temporal status and says so', async () => {
    const queue = `nobody-${suffix}`;
    const run = await client.start('cli-slow', { ms: 10 }, { taskQueue: queue });
    try {
      const r = await kaon(['status', run.id], { env: env(Q_SLOW) });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^status {2}running · started /m);
      assert.match(r.stdout, /^steps {3}unknown until a worker answers$/m);
      assert.equal(
        r.stderr,
        `note: live step progress is unavailable (progress query: no worker answered within 5s); is a worker running for task queue "${queue}"? Showing Temporal's status only.\n`,
      );
    } finally {
      await run.handle.terminate('test cleanup');
    }
  });

  test('kaon run --wait of a failing run exits 1 with the step error', async () => {
    const r = await kaon(['run', 'cli-slow', '--params', '{"ms":10,"fail":true}', '--wait', ...FIXTURE_FLAGS], { env: env(Q_SLOW) });
    assert.equal(r.code, 1);
    const id = startedId(r.stdout, 'cli-slow');
    assert.match(r.stderr, new RegExp(`^run ${id} failed: slowStep was asked to fail\\. To fix: start it with fail: false`, 'm'));
  });

  test('kaon cancel cancels a running run', async () => {
    const marker = path.join(tmp, 'cancel');
    const started = await kaon(['run', 'cli-slow', '--params', JSON.stringify({ ms: 60_000, marker }), ...FIXTURE_FLAGS], { env: env(Q_SLOW) });
    assert.equal(started.code, 0, started.stderr);
    const id = startedId(started.stdout, 'cli-slow');
    await until('the step to start', async () => (existsSync(`${marker}.started`) ? true : undefined));

    const r = await kaon(['cancel', id, '--wait'], { env: env(Q_SLOW) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `cancellation requested for run ${id}\nrun ${id} cancelled\n`);
    const run = client.run(id);
    assert.equal((await run.status()).temporal, 'CANCELLED');
    const state = await run.progress();
    assert.equal(state.status, 'cancelled');
    assert.equal(state.steps[0]?.status, 'cancelled');
    assert.ok(!existsSync(`${marker}.done`), 'the step stopped instead of finishing');

    const again = await kaon(['cancel', id], { env: env(Q_SLOW) });
    assert.equal(again.code, 0);
    assert.equal(again.stdout, `run ${id} already cancelled; nothing to cancel\n`);
  });

  test('SIGTERM to kaon worker lets the in-flight step finish, then exits 0', async () => {
    const w = startWorker(Q_TERM, [...FIXTURE_FLAGS, '--grace', '30s']);
    await w.waitFor(/^kaon worker: ready; Ctrl-C to stop \(in-flight steps get 30\.0s to finish\)$/m);
    const marker = path.join(tmp, 'term');
    const started = await kaon(['run', 'cli-slow', '--params', JSON.stringify({ ms: 3000, marker }), ...FIXTURE_FLAGS], { env: env(Q_TERM) });
    const id = startedId(started.stdout, 'cli-slow');
    await until('the step to start', async () => (existsSync(`${marker}.started`) ? true : undefined));
    assert.ok(!existsSync(`${marker}.done`));

    const t0 = Date.now();
    w.child.kill('SIGTERM');
    const exit = await w.exited;
    assert.equal(exit.code, 0, exit.stderr);
    assert.ok(Date.now() - t0 > 1000, 'the worker waited for the step');
    assert.equal(readFileSync(`${marker}.done`, 'utf8'), '1', 'the step finished on its first attempt');
    assert.match(exit.stdout, /^kaon worker: shutting down; waiting for in-flight steps \(up to 30\.0s\)…$/m);
    assert.match(exit.stdout, /^kaon worker: stopped$/m);

    // The completion reached the server before the worker left.
    const handle = client.run(id).handle;
    const history = await handle.fetchHistory();
    assert.ok(history.events?.some((e) => e.activityTaskCompletedEventAttributes), 'ActivityTaskCompleted in history');
    await handle.terminate('test cleanup: no worker left on this queue');
  });
});
