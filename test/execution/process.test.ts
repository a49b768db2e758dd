// runProcess: argv without a shell, the fd-3 protocol, exit-code classes, timeout, cancellation of the whole
// process group (grandchildren included), cleanup of leftovers, bounded memory under 100 MB of logs.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promisify } from 'node:util';
import { ErrorCode, KaonError } from '../../src/definition/errors';
import { EXIT_BAD_INPUT, runProcess } from '../../src/execution';
import { Tail } from '../../src/execution/process';
import { alive, fakeContext, pidsFrom } from './fake-context';

const ROOT = path.resolve(__dirname, '..', '..');
const script = (name: string) => path.join(ROOT, 'test/fixtures/scripts', name);
const stdoutOf = (ctx: ReturnType<typeof fakeContext>) => ctx.logs.filter((l) => l.meta?.stream === 'stdout').map((l) => l.message);

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  return assert.fail('expected the promise to reject');
}

async function kaonRejection(p: Promise<unknown>): Promise<KaonError> {
  const err = await rejection(p);
  assert.ok(err instanceof KaonError, `expected a KaonError, got ${String(err)}`);
  return err;
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('runProcess', () => {
  test('argv reaches the program intact: spaces, quotes, $HOME, ;, globs, backticks are not interpreted', async () => {
    const ctx = fakeContext();
    const args = ['two words', `it's "quoted"`, '$HOME', 'a; rm -rf /tmp/nothing', '*', '`id`', '', '--flag=x y', 'ünïcode ✓'];
    const res = await runProcess({ argv: [script('print-args.sh'), ...args], log: ctx.log });
    assert.deepEqual(stdoutOf(ctx), args.map((a) => `arg:${a}`));
    assert.equal(res.logLines, args.length);
    assert.equal(res.hasOutput, false);
    assert.deepEqual(res.tail.map((t) => t.line), args.map((a) => `arg:${a}`));
  });

  test('protocol on fd 3: progress, log levels, artifact and output; prints on stdout do not collide', async () => {
    const ctx = fakeContext();
    const progress: [number | undefined, string | undefined][] = [];
    const body = [
      `echo '{"type":"output","value":"a print, not the protocol"}'`,
      `echo '{"type":"progress","fraction":0.4,"message":"epoch 4/10"}' >&3`,
      `echo '{"type":"progress","fraction":null}' >&3`,
      `echo '{"type":"log","level":"warn","message":"low memory"}' >&3`,
      `echo '{"type":"artifact","path":"m.pkl","name":"model"}' >&3`,
      `echo '{"type":"output","value":{"accuracy":0.9,"tags":["a"]}}' >&3`,
    ].join('\n');
    const res = await runProcess({ argv: ['sh', '-c', body], log: ctx.log, onProgress: (f, m) => progress.push([f, m]) });
    assert.deepEqual(progress, [[0.4, 'epoch 4/10'], [undefined, undefined]]);
    assert.equal(res.hasOutput, true);
    assert.deepEqual(res.output, { accuracy: 0.9, tags: ['a'] });
    assert.deepEqual(res.artifacts, [{ type: 'artifact', path: 'm.pkl', name: 'model' }]);
    assert.deepEqual(stdoutOf(ctx), ['{"type":"output","value":"a print, not the protocol"}']);
    assert.deepEqual(ctx.logs.filter((l) => l.meta?.stream === 'protocol'), [{ level: 'warn', message: 'low memory', meta: { stream: 'protocol' } }]);
  });

  test('the child gets KAON_PROTOCOL_FD=3 and only the env it is given', async () => {
    const ctx = fakeContext();
    await runProcess({ argv: ['sh', '-c', 'echo "fd=$KAON_PROTOCOL_FD x=$X home=${HOME:-unset}"'], env: { PATH: process.env.PATH, X: 'y z' }, log: ctx.log });
    assert.deepEqual(stdoutOf(ctx), ['fd=3 x=y z home=unset']);
  });

  test('exit 65 is bad input: non-retryable, with the message the program printed', async () => {
    const err = await kaonRejection(runProcess({ argv: [script('exit-with.sh'), String(EXIT_BAD_INPUT)], label: 'step "t"' }));
    assert.equal(err.code, ErrorCode.badInput);
    assert.equal(err.retryable, false);
    assert.match(err.message, /step "t" rejected its input \(exit 65\)/);
    assert.match(err.message, /stderr: something went wrong \(exit 65\)/);
  });

  test('exit 1 is a retryable failure naming the exit code and the last lines of stdout and stderr', async () => {
    const err = await kaonRejection(runProcess({ argv: [script('exit-with.sh'), '1'] }));
    assert.equal(err.code, ErrorCode.processFailed);
    assert.equal(err.retryable, true);
    assert.match(err.message, /exited with code 1/);
    assert.match(err.message, /stdout before exit 1\nstderr: something went wrong \(exit 1\)/);
    assert.deepEqual((err.details as { exitCode: number }).exitCode, 1);
  });

  test('killed by a signal (not by Kaon) is retryable and names the signal', async () => {
    const err = await kaonRejection(runProcess({ argv: [script('self-kill.sh')] }));
    assert.equal(err.code, ErrorCode.processFailed);
    assert.equal(err.retryable, true);
    assert.match(err.message, /was killed by SIGKILL/);
    assert.match(err.message, /allocating a lot/);
    assert.match(err.fix, /out-of-memory/);
  });

  test('a program that does not exist fails non-retryably and says so', async () => {
    const err = await kaonRejection(runProcess({ argv: ['./definitely-not-here.sh'], cwd: ROOT }));
    assert.equal(err.code, ErrorCode.processFailed);
    assert.equal(err.retryable, false);
    assert.match(err.message, /definitely-not-here\.sh was not found/);
  });

  test('malformed protocol lines fail non-retryably naming the line, even after exit 0', async () => {
    const body = `echo 'not json at all' >&3; echo '{"type":"progress","fraction":7}' >&3; echo '{"type":"output","value":1}' >&3`;
    const err = await kaonRejection(runProcess({ argv: ['sh', '-c', body] }));
    assert.equal(err.code, ErrorCode.processFailed);
    assert.equal(err.retryable, false);
    assert.match(err.message, /exited 0 but wrote 2 malformed protocol line\(s\) on fd 3, the first: line 1: not json at all \(not JSON/);
    assert.deepEqual((err.details as { malformed: string[] }).malformed.length, 2);
    assert.match((err.details as { malformed: string[] }).malformed[1]!, /fraction: Too big|fraction.*1/);
  });

  test('two output lines are a protocol error', async () => {
    const body = `echo '{"type":"output","value":1}' >&3; echo '{"type":"output","value":2}' >&3`;
    const err = await kaonRejection(runProcess({ argv: ['sh', '-c', body] }));
    assert.match(err.message, /a second output line/);
  });

  test('timeout kills the group and fails retryably with ErrorCode.timeout', async () => {
    const ctx = fakeContext();
    const started = Date.now();
    const err = await kaonRejection(runProcess({ argv: [script('sleep.sh'), '30'], timeoutMs: 300, log: ctx.log, label: 'step "slow"' }));
    assert.equal(err.code, ErrorCode.timeout);
    assert.equal(err.retryable, true);
    assert.match(err.message, /step "slow" timed out after 300 ms and was killed/);
    assert.ok(Date.now() - started < 3000, 'the sleeper is killed at once (it does not ignore SIGTERM)');
    const pid = pidsFrom(stdoutOf(ctx)).sleeper!;
    assert.ok(pid > 0);
    assert.equal(alive(pid), false);
  });

  test('cancellation kills the whole process group — a grandchild ignoring SIGTERM too — and rethrows the reason', async () => {
    const ctx = fakeContext();
    const running = runProcess({ argv: [script('process-tree.sh')], signal: ctx.signal, log: ctx.log, killGraceMs: 400 });
    await waitFor(() => Object.keys(pidsFrom(stdoutOf(ctx))).length === 3);
    const pids = pidsFrom(stdoutOf(ctx));
    for (const name of ['leader', 'child', 'grandchild']) assert.ok(alive(pids[name]!), `${name} runs before the cancel`);
    const reason = new Error('cancelled by the test');
    const t0 = Date.now();
    ctx.controller.abort(reason);
    const err = await rejection(running);
    assert.equal(err, reason, 'the abort reason itself is rethrown (Temporal sees its CancelledFailure)');
    const took = Date.now() - t0;
    assert.ok(took >= 350, `the SIGTERM-ignoring grandchild needed the SIGKILL after the grace period (took ${took} ms)`);
    for (const name of ['leader', 'child', 'grandchild']) assert.equal(alive(pids[name]!), false, `${name} (pid ${pids[name]}) is gone`);
  });

  test('an already-aborted signal never starts the program', async () => {
    const c = new AbortController();
    c.abort(new Error('too late'));
    const err = await rejection(runProcess({ argv: ['sh', '-c', 'echo started > /dev/null'], signal: c.signal }));
    assert.equal((err as Error).message, 'too late');
  });

  test('background jobs left behind by a successful program are killed too', async () => {
    const ctx = fakeContext();
    const res = await runProcess({ argv: [script('leave-background.sh')], log: ctx.log, killGraceMs: 500 });
    assert.deepEqual(res.output, { ok: true });
    const pid = pidsFrom(stdoutOf(ctx)).background!;
    assert.ok(pid > 0);
    assert.equal(alive(pid), false);
  });

  test('the tail stays bounded by lines and bytes', () => {
    const tail = new Tail(50, 16 * 1024);
    for (let i = 0; i < 10_000; i++) tail.add({ stream: 'stdout', line: `line ${i} ${'x'.repeat(i % 700)}` });
    const lines = tail.get();
    assert.ok(lines.length <= 50);
    assert.ok(tail.size <= 16 * 1024, `tail holds ${tail.size} bytes`);
    assert.match(lines.at(-1)!.line, /^line 9999 /);
  });

  test('100 MB of logs (and a 20 MB line without newline) run in bounded memory', { timeout: 180_000 }, async () => {
    // Measured in separate processes: the harness's peak RSS with 0 MB vs 100 MB of child output.
    const harness = path.join(__dirname, 'harness', 'flood.ts');
    const run = async (mb: number) => {
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', harness, String(mb)], { cwd: ROOT, maxBuffer: 1024 * 1024 });
      return JSON.parse(stdout.trim().split('\n').at(-1)!) as { logBytes: number; logLines: number; tailBytes: number; tailLines: number; maxRssMiB: number; longest: number; output: unknown; seconds: number };
    };
    const base = await run(0);
    const big = await run(100);
    process.stderr.write(`# flood: baseline maxRSS ${base.maxRssMiB} MiB, with 120 MB of logs ${big.maxRssMiB} MiB (${big.logLines} lines in ${big.seconds} s)\n`);
    assert.equal(big.logBytes, 100 * 1_000_000 + 20 * 1024 * 1024 + 'flood done\n'.length);
    assert.equal(big.logLines, 100 * 10_000 + 2);
    assert.deepEqual(big.output, { mb: 100 });
    assert.ok(big.tailBytes <= 16 * 1024 && big.tailLines <= 50);
    assert.ok(big.longest <= 8 * 1024 + 100, `the longest logged line is cut to 8 KiB (was ${big.longest})`);
    assert.ok(big.maxRssMiB - base.maxRssMiB < 64, `peak RSS grew by ${big.maxRssMiB - base.maxRssMiB} MiB for 120 MB of logs`);
  });
});
