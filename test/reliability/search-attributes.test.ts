// A namespace without Kaon's search attributes (a user's own cluster): starting a run or creating a schedule there
// fails at once with the commands that register them, not with Temporal's bare INVALID_ARGUMENT.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { Connection } from '@temporalio/client';
import { connect, type KaonClient } from '../../src/client';
import { KaonError } from '../../src/definition';
import { freePort } from '../../src/runtime/dev-server';
import { ensureTemporalCli } from '../../src/runtime/temporal-cli';
import { pausable } from '../fixtures/control/workflows';

let server: ChildProcess;
let connection: Connection;
let kaon: KaonClient;

before(async () => {
  const port = await freePort();
  // A bare dev server: no --search-attribute flags, like a cluster nobody prepared for Kaon.
  server = spawn(ensureTemporalCli(), ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--headless', '--log-level', 'error', '--ui-port', String(await freePort())], { stdio: 'ignore', detached: true });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      connection = await Connection.connect({ address: `127.0.0.1:${port}`, connectTimeout: 1000 });
      await connection.workflowService.getSystemInfo({});
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  kaon = await connect({ connection, taskQueue: 'sa-test' });
});

after(async () => {
  await connection?.close();
  if (server?.pid) process.kill(-server.pid, 'SIGKILL');
});

const refused = (err: unknown) => {
  assert.ok(err instanceof KaonError, String(err));
  assert.equal(err.code, 'KAON_CONFIG');
  assert.equal(err.retryable, false);
  assert.match(err.message, /namespace "default" has no search attribute Kaon\w+/);
  assert.match(err.message, /temporal operator search-attribute create --namespace default --name KaonPipeline --type Keyword/);
  return true;
};

test('starting a run in a namespace without Kaon\'s search attributes says how to register them', { timeout: 90_000 }, async () => {
  const t0 = Date.now();
  await assert.rejects(kaon.start(pausable, { n: 1, ms: 0 }), refused);
  assert.ok(Date.now() - t0 < 10_000, 'refused at once, not after retries');
});

test('so does creating a schedule there', { timeout: 90_000 }, async () => {
  await assert.rejects(kaon.schedules.create({ id: 'sa-daily', pipeline: pausable, params: { n: 1, ms: 0 }, every: '1 day' }), refused);
});
