// `kaon demo` and `kaon dev` end to end: each starts its own embedded dev server on free ports, with state in
// a fresh KAON_HOME and the already provisioned Temporal CLI (TEMPORAL_CLI), and stops it afterwards.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort } from '../../src/runtime/dev-server';
import { ensureTemporalCli } from '../../src/runtime/temporal-cli';
import { ROOT } from '../support/temporal';
import { ANSI, CliProcess, cliEnv, kaon } from './cli-process';

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

let home: string;
let temporalCli: string;

describe('kaon demo and kaon dev', { timeout: 400_000 }, () => {
  before(() => {
    temporalCli = ensureTemporalCli();
    // Inside the project (git-ignored .kaon/): the workflow bundle entry is generated under KAON_HOME and must
    // resolve @temporalio/* from the project's node_modules (see the report: bundle.ts with an outside KAON_HOME).
    mkdirSync(path.join(ROOT, '.kaon'), { recursive: true });
    home = mkdtempSync(path.join(ROOT, '.kaon', 'test-home-'));
  });
  after(() => {
    if (home) rmSync(home, { recursive: true, force: true });
  });

  test('kaon demo (npm run demo) runs retrain-recommender with live plain progress, prints the results table and the Web UI link, exits 0', async () => {
    const port = await freePort();
    const uiPort = await freePort();
    const r = await kaon(['demo'], {
      // The scientific virtualenv is shared with the other tests (KAON_PYTHON_ENVS); everything else is private.
      env: cliEnv({ TEMPORAL_CLI: temporalCli, KAON_HOME: home, KAON_PYTHON_ENVS: path.join(ROOT, '.kaon', 'venvs'), KAON_DEV_PORT: String(port), KAON_DEV_UI_PORT: String(uiPort), TEMPORAL_ADDRESS: undefined, KAON_TASK_QUEUE: undefined }),
      timeoutMs: 360_000,
    });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^kaon demo: Temporal 127\\.0\\.0\\.1:${port}, Web UI http://127\\.0\\.0\\.1:${uiPort}$`, 'm'));
    const id = /^kaon demo: started retrain-recommender run (retrain-recommender-[0-9a-f]{8})$/m.exec(r.stdout)?.[1];
    assert.ok(id, r.stdout);
    // The board's URL, with the token and the run's page (a pipe: the board closed with the demo).
    assert.match(r.stdout, new RegExp(`^kaon demo: watch its DAG fill in on the board: http://127\\.0\\.0\\.1:\\d+/\\?token=[\\w-]+#/run\\?id=${id}$`, 'm'));
    // Progress: plain timestamped lines (stdout is a pipe), never escape codes; per-epoch progress of training.
    assert.doesNotMatch(r.stdout, ANSI);
    // Live step lines; which heartbeat (environment check or an epoch) a sample catches depends on timing.
    assert.match(r.stdout, /^\d\d:\d\d:\d\d train\[US\] running( preparing the Python environment| \d+% US rank 4 epoch \d\/8 loss 0\.\d{4})?$/m);
    assert.match(r.stdout, /^\d\d:\d\d:\d\d train\[JP\]#3 succeeded in (\d+\.\ds|\d+m\d\ds)$/m);
    assert.match(r.stdout, /^\d\d:\d\d:\d\d retrain-recommender succeeded in (\d+\.\ds|\d+m\d\ds)$/m);
    // The result table: one row per country; JP needed three trainings (the validation loop).
    assert.match(r.stdout, /^country {2}trainings {2}rank {2}recall@20 {2}NDCG@20 {2}baseline NDCG {2}lift {3}published$/m);
    // Published on a fresh registry ("yes (<version>) — no published model yet"); later runs keep the champion.
    for (const c of ['US', 'BR', 'IN']) assert.match(r.stdout, new RegExp(`^${c} +1 +4 +0\\.\\d{4} +0\\.\\d{4} +0\\.\\d{4} +\\+\\d+% +(yes \\([\\d.a-f-]+\\)|no) — `, 'm'));
    assert.match(r.stdout, /^JP +3 +16 +0\.\d{4} +0\.\d{4} +0\.\d{4} +\+\d+% +(yes \([\d.a-f-]+\)|no) — /m);
    assert.match(r.stdout, new RegExp(`^run: {4}${id}$`, 'm'));
    assert.match(r.stdout, new RegExp(`^Web UI: http://127\\.0\\.0\\.1:${uiPort}/namespaces/default/workflows/${id}$`, 'm'));
    // It stopped the server it started, whose state is durable under KAON_HOME.
    assert.equal(await portOpen(port), false);
    assert.ok(existsSync(path.join(home, 'temporal.db')));
  });

  test('kaon dev serves runs until SIGINT, then shuts the worker down and stops its server', async () => {
    const port = await freePort();
    const uiPort = await freePort();
    const queue = `dev-${randomUUID().slice(0, 8)}`;
    const ports = { KAON_DEV_PORT: String(port), KAON_DEV_UI_PORT: String(uiPort), KAON_TASK_QUEUE: queue };
    const dev = new CliProcess(['dev'], { env: cliEnv({ TEMPORAL_CLI: temporalCli, KAON_HOME: home, TEMPORAL_ADDRESS: undefined, ...ports }) });
    try {
      await dev.waitFor(/^kaon dev: ready; Ctrl-C to stop/m, 150_000);
      assert.match(dev.stdout, new RegExp(`^kaon dev: Temporal 127\\.0\\.0\\.1:${port} \\(namespace default\\)$`, 'm'));
      assert.match(dev.stdout, new RegExp(`^kaon dev: Web UI {3}http://127\\.0\\.0\\.1:${uiPort}$`, 'm'));
      assert.match(dev.stdout, new RegExp(`^  task queue ${queue}: pipelines ml-demo, recommender-loop, retrain-country, retrain-recommender; steps `, 'm'));

      // Another shell: the address of the dev server (KAON_DEV_PORT tells the CLI which UI belongs to it).
      const r = await kaon(['run', 'ml-demo', '--params', '{"seed":1,"rows":200}', '--wait'], { env: cliEnv({ TEMPORAL_ADDRESS: `127.0.0.1:${port}`, ...ports }) });
      assert.equal(r.code, 0, r.stderr);
      const id = /^started ml-demo run (ml-demo-[0-9a-f]{8})/m.exec(r.stdout)?.[1];
      assert.ok(id, r.stdout);
      assert.match(r.stdout, new RegExp(`^Web UI: http://127\\.0\\.0\\.1:${uiPort}/namespaces/default/workflows/${id}$`, 'm'));
      assert.match(r.stdout, /^best: /m);
      // kaon dev serves the board too: its URL is printed, and it lists the run.
      const [, boardUrl, boardToken] = /^kaon dev: board {2}(http:\/\/127\.0\.0\.1:\d+\/)\?token=([\w-]+)$/m.exec(dev.stdout) ?? [];
      assert.ok(boardUrl, dev.stdout);
      const listed = (await (await fetch(`${boardUrl}api/runs?q=${id}`, { headers: { authorization: `Bearer ${boardToken}` } })).json()) as { runs: { id: string; status: string }[] };
      assert.deepEqual(listed.runs.map((x) => [x.id, x.status]), [[id, 'succeeded']]);

      dev.child.kill('SIGINT');
      const exit = await dev.exited;
      assert.equal(exit.code, 0, exit.stderr);
      assert.match(exit.stdout, /^kaon dev: stopped$/m);
      assert.match(exit.stdout, /^kaon dev: stopping the Temporal dev server$/m);
      assert.equal(await portOpen(port), false);
    } finally {
      dev.kill();
    }
  });
});
