// The board answers nothing decrypted without its token (issue #22), on a real server: every /api/ read and write
// is refused without it; the printed URL sets an HttpOnly, SameSite=Strict cookie (as Jupyter does) and reads work
// with it or with a bearer header; a cookie alone cannot write; static assets and /healthz stay open.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Connection } from '@temporalio/client';
import { connect, type KaonClient } from '../../src/client';
import { ENCRYPTED_FAILURES_PATH, kaonDataConverter } from '../../src/data/codec';
import { boardCookieName, startBoard, type Board } from '../../src/observe/board/server';
import { bundlePipelines } from '../../src/runtime/bundle';
import type { KaonWorker } from '../../src/runtime/worker';
import * as activities from '../fixtures/security';
import { secret } from '../fixtures/security/workflows';
import { CliProcess, cliEnv } from '../cli/cli-process';
import { ROOT, testEnv, type TestEnv } from '../support/temporal';

const WORKFLOWS = path.join(ROOT, 'test/fixtures/security/workflows.ts');
const TOKEN = `board-${randomBytes(12).toString('hex')}`;

let dir: string;
let keyFile: string;
let env: TestEnv;
let kaon: KaonClient;
let worker: KaonWorker;
let running: Promise<void>;
let board: Board;
let runId: string;
const marker = `MARK-${randomUUID()}`;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-board-auth-'));
  keyFile = path.join(dir, 'keys');
  writeFileSync(keyFile, `k1:${randomBytes(32).toString('base64')}\n`);
  env = await testEnv('board-auth');
  // An encrypted deployment: what the board would show is decrypted data.
  kaon = await connect({ connection: env.temporal.connection as Connection, taskQueue: env.taskQueue, dataConverter: kaonDataConverter({ keyFile }), env: {} });
  worker = await env.worker({ workflowsPath: WORKFLOWS, workflowBundle: await bundlePipelines(WORKFLOWS, { failureConverterPath: ENCRYPTED_FAILURES_PATH }), activities, workerOptions: { dataConverter: kaonDataConverter({ keyFile }) } });
  running = worker.run();
  const run = await kaon.start(secret, { marker });
  await run.result();
  runId = run.id;
  board = await startBoard({ kaon, artifacts: env.artifacts, token: TOKEN, assetsDir: path.join(ROOT, 'dist', 'board') });
});

after(async () => {
  await board?.close();
  worker?.shutdown();
  await running;
  await env?.close();
  rmSync(dir, { recursive: true, force: true });
});

const at = (p: string) => `${board.url.replace(/\/$/, '')}${p}`;

test('board reads are refused without the token, and answer with it (bearer header or the cookie from the printed URL)', async () => {
  const reads = ['/api/runs', '/api/pipelines', '/api/info', `/api/run?id=${encodeURIComponent(runId)}`, `/api/step?id=${encodeURIComponent(runId)}&key=secEcho`, `/api/run/live?id=${encodeURIComponent(runId)}`, '/api/cards', '/api/gates', `/api/artifact/${'0'.repeat(64)}`];
  for (const p of reads) {
    for (const headers of [{}, { authorization: 'Bearer wrong-token-0123456789' }, { cookie: `${boardCookieName(Number(new URL(board.url).port))}=wrong` }] as Record<string, string>[]) {
      const res = await fetch(at(p), { headers });
      const body = await res.text();
      assert.equal(res.status, 401, `${p} ${JSON.stringify(headers)}: ${body}`);
      assert.ok(!body.includes(marker), `${p} leaks nothing`);
      assert.match(body, /needs its token, for reads too.*To fix: open the board with the URL `kaon board` printed/);
    }
  }
  // With a bearer header: the decrypted run.
  const ok = await fetch(at(`/api/run?id=${encodeURIComponent(runId)}`), { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(ok.status, 200);
  assert.deepEqual(((await ok.json()) as { params: unknown }).params, { marker });

  // The printed URL: a wrong token is refused; the right one sets the cookie and leaves the address bar.
  assert.equal(board.tokenUrl, `${board.url}?token=${TOKEN}`);
  const wrong = await fetch(at('/?token=nope'), { redirect: 'manual' });
  assert.equal(wrong.status, 401);
  const login = await fetch(board.tokenUrl, { redirect: 'manual' });
  assert.equal(login.status, 303);
  assert.equal(login.headers.get('location'), '/');
  const setCookie = login.headers.get('set-cookie') ?? '';
  const port = Number(new URL(board.url).port);
  assert.match(setCookie, new RegExp(`^kaon-board-${port}=${TOKEN}; Path=/; HttpOnly; SameSite=Strict$`));
  const cookie = setCookie.split(';')[0]!;
  const step = await fetch(at(`/api/step?id=${encodeURIComponent(runId)}&key=secEcho`), { headers: { cookie } });
  assert.equal(step.status, 200);
  const s = (await step.json()) as { input: unknown; output: unknown };
  assert.deepEqual(s.input, { text: marker });
  assert.deepEqual(s.output, { echoed: `output ${marker}` });

  // Writes: refused without the token; the cookie alone is not enough (a cross-site form carries it too).
  const decide = (headers: Record<string, string>) => fetch(at('/api/gates/decide'), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ run: runId, gate: 'none', decision: 'approve' }) });
  assert.equal((await decide({})).status, 401);
  const formLike = await decide({ cookie });
  assert.equal(formLike.status, 403);
  assert.match(((await formLike.json()) as { error: string }).error, /cookie alone is refused.*To fix: send the header X-Kaon-Request: board/);
  // Past authentication, the decision itself is judged by the run (it has no such gate): 409, not 401/403.
  assert.equal((await decide({ cookie, 'x-kaon-request': 'board' })).status, 409);
  assert.equal((await decide({ authorization: `Bearer ${TOKEN}` })).status, 409);
});

test('static assets and the health check stay open without the token', async () => {
  const health = await fetch(at('/healthz'));
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { ok: true });
  for (const p of ['/', '/index.html', '/assets/board.js', '/assets/board.css']) {
    const res = await fetch(at(p));
    assert.equal(res.status, 200, p);
    assert.ok(!(await res.text()).includes(marker));
  }
});

test('kaon board prints the URL with the token from KAON_BOARD_TOKEN_FILE, and that URL opens the API', async () => {
  const file = path.join(dir, 'board-token');
  const fileToken = `file-${randomBytes(12).toString('hex')}`;
  writeFileSync(file, `${fileToken}\n`, { mode: 0o600 });
  const p = new CliProcess(['board', '--port', '0'], {
    env: cliEnv({ TEMPORAL_ADDRESS: env.address, KAON_TASK_QUEUE: env.taskQueue, KAON_ARTIFACTS: env.artifactsDir, KAON_ENCRYPTION_KEY_FILE: keyFile, KAON_BOARD_TOKEN: undefined, KAON_BOARD_TOKEN_FILE: file }),
  });
  try {
    await p.waitFor(/kaon board: board {2}http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/, 60_000);
    const url = /board {2}(http:\/\/127\.0\.0\.1:\d+\/)\?token=(\S+)/.exec(p.stdout)!;
    assert.equal(url[2], fileToken);
    assert.equal((await fetch(`${url[1]}api/runs`)).status, 401);
    const login = await fetch(`${url[1]}?token=${fileToken}`, { redirect: 'manual' });
    const runs = await fetch(`${url[1]}api/run?id=${encodeURIComponent(runId)}`, { headers: { cookie: (login.headers.get('set-cookie') ?? '').split(';')[0]! } });
    assert.equal(runs.status, 200);
    assert.deepEqual(((await runs.json()) as { params: unknown }).params, { marker });
  } finally {
    p.kill();
    await p.exited;
  }
});
