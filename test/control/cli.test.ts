// The steering CLI against a real server: status of a waiting run, approve and a refused approval, pause and
// unpause, send, and the schedule commands. The worker runs in this process; the CLI runs as `kaon` processes.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as activities from '../fixtures/control';
import { gated, pausable, tunable } from '../fixtures/control/workflows';
import { cliEnv, kaon } from '../cli/cli-process';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

let env: TestEnv;
let stop: () => Promise<void>;
let cli: (args: string[]) => ReturnType<typeof kaon>;
const project = ['--workflows', 'test/fixtures/control/workflows.ts', '--activities', 'test/fixtures/control/index.ts'];

before(async () => {
  ({ env, stop } = await runningWorker('control-cli', { workflowsPath: path.join(ROOT, 'test/fixtures/control/workflows.ts'), activities }));
  const childEnv = cliEnv({ TEMPORAL_ADDRESS: env.address, KAON_TASK_QUEUE: env.taskQueue, USER: 'ci-user' });
  cli = (args) => kaon(args, { env: childEnv });
});
after(() => stop());

async function until(what: string, fn: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('kaon status shows a waiting gate; kaon approve decides it, kaon reject of it is refused with the reason', async () => {
  const run = await env.kaon.start(gated, {});
  await until('the gate', async () => (await run.progress()).status === 'waiting');
  const status = await cli(['status', run.id]);
  assert.match(status.stdout, /test-gate waiting/);
  assert.match(status.stdout, /waiting for approval: publish — kaon approve\|reject <run> publish/);
  const wrong = await cli(['approve', run.id, 'deploy']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /no gate "deploy" is waiting in this run \(waiting: publish\)/);
  const ok = await cli(['approve', run.id, 'publish', '--comment', 'looks good']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`gate publish of run ${run.id} approved by ci-user: looks good`));
  assert.equal((await run.result()).approved, true);
  const late = await cli(['reject', run.id, 'publish']);
  assert.equal(late.code, 1);
  assert.match(late.stderr, /is not running|already approved/);
});

test('kaon pause, status while paused, kaon unpause; kaon send', async () => {
  // Long enough that a CLI process slowed by a loaded machine still pauses it mid-run.
  const run = await env.kaon.start(pausable, { n: 30, ms: 1000 });
  const paused = await cli(['pause', run.id, '--note', 'inspecting']);
  assert.equal(paused.code, 0, paused.stderr);
  await until('paused', async () => (await run.progress()).status === 'paused');
  const status = await cli(['status', run.id]);
  assert.match(status.stdout, /paused by ci-user — inspecting: no new step starts until kaon unpause <run>/);
  const unpaused = await cli(['unpause', run.id]);
  assert.equal(unpaused.code, 0, unpaused.stderr);
  assert.equal((await run.result()).length, 30);

  const tuned = await env.kaon.start(tunable, {});
  const sent = await cli(['send', tuned.id, 'setThreshold', '--value', '{"value":0.4}']);
  assert.equal(sent.code, 0, sent.stderr);
  assert.deepEqual(JSON.parse(sent.stdout), { accepted: 0.4, count: 1 });
  const bad = await cli(['send', tuned.id, 'setThreshold', '--value', '{"value":"high"}']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /message "setThreshold" is invalid: field "value"/);
  await tuned.send('stop', {});
  await tuned.result();
});

test('kaon schedule create, describe, trigger, pause, list and delete', async () => {
  const id = `cli-${randomUUID().slice(0, 6)}`;
  const created = await cli(['schedule', 'create', id, '--pipeline', 'test-daily', '--every', '1 day', '--overlap', 'buffer-one', ...project]);
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, new RegExp(`schedule ${id}: test-daily every 1 day — processes one day`));
  assert.match(created.stdout, /overlap buffer-one/);
  assert.equal((await cli(['schedule', 'trigger', id])).code, 0);
  await until('the triggered run', async () => (await env.kaon.schedules.describe(id)).actions >= 1);
  const described = await cli(['schedule', 'describe', id]);
  assert.match(described.stdout, /1 runs so far/);
  assert.equal((await cli(['schedule', 'pause', id, '--note', 'holiday'])).code, 0);
  assert.match((await cli(['schedule', 'list'])).stdout, new RegExp(`${id}\\ttest-daily\\tpaused`));
  assert.equal((await cli(['schedule', 'delete', id])).code, 0);
  const gone = await cli(['schedule', 'describe', id]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, new RegExp(`no schedule "${id}"`));
});
