// Secrets: declared by name, resolved on the worker (env, NAME_FILE, KAON_SECRETS_DIR), seen by the step and by
// nothing else. The worker runs in a child process whose environment also holds TEMPORAL_API_KEY, an AWS key and an
// unrelated variable: the step process sees its secrets and PATH, not those. The steps leak the token to their log,
// their progress and an error on attempt 1; the full history (every event, payloads decoded), the heartbeats, the
// run state, the artifact store and the worker's own log output never hold it: the redacted marker is there instead.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import { RunFailedError } from '../../src/client';
import { defineStep } from '../../src/definition';
import { redactor, resolveSecrets } from '../../src/execution/secrets';
import { stepEnv } from '../../src/execution/step-env';
import type { KaonWorker } from '../../src/runtime/worker';
import { secMain, secMissing, secShLeak, secTsLeak } from '../fixtures/secrets/pipelines';
import { ROOT, testEnv, type TestEnv } from '../support/temporal';

const TOKEN = `hf_${randomUUID().replace(/-/g, '')}`;
const DB_PASSWORD = `pw-${randomUUID()}`;
const MARKER = '[secret HF_TOKEN]';

/**
 * JSON of a Temporal API object with every bytes field (payload data) decoded as UTF-8, so plaintext shows. Walks
 * the fields itself: protobuf messages' toJSON would turn bytes into base64, which no grep for plaintext can see.
 */
function text(obj: unknown): string {
  const plain = (v: unknown): unknown => {
    if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
    if (Array.isArray(v)) return v.map(plain);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
    return v;
  };
  return JSON.stringify(plain(obj));
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe('secrets', () => {
  let env: TestEnv;
  let child: ChildProcess;
  let wf: KaonWorker;
  let wfRunning: Promise<void>;
  let workerLog = '';
  let dir: string;
  let artifacts: string;

  before(async () => {
    env = await testEnv('sec');
    dir = mkdtempSync(path.join(os.tmpdir(), 'kaon-sec-'));
    artifacts = path.join(dir, 'artifacts');
    mkdirSync(path.join(dir, 'secrets'));
    writeFileSync(path.join(dir, 'hf-token'), `${TOKEN}\n`);
    writeFileSync(path.join(dir, 'secrets', 'DB_PASSWORD'), DB_PASSWORD);
    child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/fixtures/secrets/worker.ts')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        KAON_HOME: path.join(dir, 'home'),
        SEC_ADDRESS: env.address,
        SEC_TASK_QUEUE: env.taskQueue,
        SEC_ARTIFACTS: artifacts,
        HF_TOKEN_FILE: path.join(dir, 'hf-token'),
        KAON_SECRETS_DIR: path.join(dir, 'secrets'),
        TEMPORAL_API_KEY: 'temporal-api-key-must-not-leak',
        AWS_SECRET_ACCESS_KEY: 'aws-secret-must-not-leak',
        SEC_TEST_UNRELATED: 'unrelated',
        SEC_TEST_EXTRA: 'visible',
        KAON_STEP_ENV_ALLOW: 'SEC_TEST_EXTRA',
      },
    });
    child.stdout!.on('data', (d: Buffer) => (workerLog += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (workerLog += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const onData = () => workerLog.includes('ready') && resolve();
      child.stdout!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`the worker exited (${code}): ${workerLog}`)));
    });
    wf = await env.worker({ workflowsPath: path.join(ROOT, 'test/fixtures/secrets/pipelines.ts'), activities: [], queues: ['default'] });
    wfRunning = wf.run();
  });

  after(async () => {
    child?.kill('SIGTERM');
    wf?.shutdown();
    await wfRunning;
    await env.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function history(workflowId: string): Promise<string> {
    const events: unknown[] = [];
    let nextPageToken: Uint8Array | undefined;
    do {
      const page = await env.temporal.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId }, ...(nextPageToken ? { nextPageToken } : {}) });
      events.push(...(page.history?.events ?? []));
      nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
    } while (nextPageToken);
    assert.ok(events.length > 5);
    return events.map(text).join('\n');
  }

  test('TS and Python steps get their secrets; logs, progress, errors, history, run state, cards and worker logs never hold them', { timeout: 90_000 }, async () => {
    const run = await env.kaon.start(secMain, {});
    // Heartbeats as the server keeps them (pending activities), sampled while the steps run.
    const beats: string[] = [];
    let done = false;
    const sampling = (async () => {
      while (!done) {
        const d = await env.temporal.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId: run.id } }).catch(() => undefined);
        for (const a of d?.pendingActivities ?? []) if (a.heartbeatDetails) beats.push(text(a));
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    const result = await run.result().finally(() => (done = true));
    await sampling;

    assert.deepEqual(result, {
      ts: { length: TOKEN.length },
      py: { sawSecret: true, helperAgrees: true, dbPasswordLength: DB_PASSWORD.length, hasPath: true, leaked: [], extra: 'visible' },
    });
    const state = await run.progress();
    assert.deepEqual(state.steps.map((s) => [s.key, s.attempts]), [['secTs', 2], ['secPy', 2]], 'each failed once (the error held the token) and then succeeded');

    const h = await history(run.id);
    for (const [where, t] of [['history', h], ['heartbeats', beats.join('\n')], ['run state', JSON.stringify(state)], ['worker log', workerLog]] as const) {
      assert.ok(!t.includes(TOKEN), `the token is in the ${where}: …${t.slice(Math.max(0, t.indexOf(TOKEN) - 300), t.indexOf(TOKEN) + 100)}…`);
      assert.ok(!t.includes(DB_PASSWORD), `the DB password is in the ${where}`);
    }
    assert.ok(beats.length > 0, 'heartbeats were sampled');
    assert.match(beats.join('\n'), /authenticated as \[secret HF_TOKEN\]/, 'the progress message, redacted');
    assert.ok(h.includes(`the hub refused ${MARKER}`), 'the TS error of attempt 1 (lastFailure), redacted');
    assert.ok(h.includes(`python: the hub refused ${MARKER}`), 'the Python traceback of attempt 1, redacted');
    assert.ok(workerLog.includes(`calling the hub with ${MARKER}`), 'ctx.log, redacted');
    assert.ok(workerLog.includes(`python step got ${MARKER}`), "the Python step's print, redacted");
    assert.ok(workerLog.includes(`python logs ${MARKER}`), "the Python step's protocol log line, redacted");
    // The store (the card included) holds no secret either.
    const stored = filesUnder(artifacts).map((f) => readFileSync(f, 'utf8')).join('\n');
    assert.ok(!stored.includes(TOKEN), 'the token is in the artifact store');
    assert.ok(stored.includes(`token: ${MARKER}`), 'the card, redacted');
  });

  for (const [pipeline, step, field] of [[secTsLeak, 'secTsLeak', 'config.token'], [secShLeak, 'secShLeak', 'note']] as const) {
    test(`an output holding a secret is refused, not retried, naming the field (${step})`, { timeout: 60_000 }, async () => {
      const run = await env.kaon.start(pipeline, {});
      const err = await run.result().then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof RunFailedError);
      assert.ok(err.message.includes(`output of step "${step}" (key ${step}) contains the value of secret HF_TOKEN at ${field}`), err.message);
      assert.match(err.message, /To fix: leave the secret out of the output/);
      assert.equal((await run.progress()).steps[0]?.attempts, 1, 'not retried');
      assert.ok(!(await history(run.id)).includes(TOKEN));
    });
  }

  test('a secret no worker has fails at once with the secret, the step and the ways to provide it', { timeout: 60_000 }, async () => {
    const run = await env.kaon.start(secMissing, {});
    const err = await run.result().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof RunFailedError);
    assert.match(err.message, /step "secMissing" needs the secret NOT_ON_ANY_WORKER, and this worker has none/);
    assert.match(err.message, /To fix: set NOT_ON_ANY_WORKER in the worker's environment, or NOT_ON_ANY_WORKER_FILE=\/path\/to\/a\/file holding it, or put a file named NOT_ON_ANY_WORKER in the directory \$KAON_SECRETS_DIR/);
    assert.equal((await run.progress()).steps[0]?.attempts, 1, 'not retried');
  });
});

describe('secrets: definitions, resolution, redaction and the step environment', () => {
  const def = (secrets: unknown) => () => defineStep({ name: 's', version: 1, input: z.object({}), output: z.object({}), secrets: secrets as string[] });

  test('secret names are checked where the step is defined', () => {
    assert.deepEqual(def(['HF_TOKEN', 'db_password'])().secrets, ['HF_TOKEN', 'db_password']);
    assert.deepEqual(def(undefined)().secrets, []);
    assert.throws(def('HF_TOKEN'), /secrets must be a list of names, got "HF_TOKEN".*To fix: pass e\.g\. secrets: \['HF_TOKEN'\]/);
    assert.throws(def(['hf-token']), /secret name "hf-token" is not an environment variable name \(step "s"\)\. To fix: use letters, digits and '_'/);
    assert.throws(def(['1TOKEN']), /is not an environment variable name/);
    assert.throws(def(['KAON_TOKEN']), /secret name "KAON_TOKEN" is reserved/);
    assert.throws(def(['PATH']), /secret name "PATH" is reserved/);
    assert.throws(def(['HF_TOKEN_FILE']), /ends in _FILE.*To fix: declare "HF_TOKEN" and set HF_TOKEN_FILE=\/path on the worker/);
    assert.throws(def(['A_B', 'A_B']), /secret "A_B" is declared twice/);
  });

  test('resolution: the environment, then NAME_FILE, then KAON_SECRETS_DIR; unreadable and too short are clear errors', () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'kaon-sec-unit-'));
    try {
      writeFileSync(path.join(d, 'file'), 'from-file\n');
      writeFileSync(path.join(d, 'TOK'), 'from-dir');
      const step = { name: 'train', secrets: ['TOK'] };
      assert.equal(resolveSecrets(step, { TOK: 'from-env', TOK_FILE: path.join(d, 'file'), KAON_SECRETS_DIR: d }).values.TOK, 'from-env');
      assert.equal(resolveSecrets(step, { TOK_FILE: path.join(d, 'file'), KAON_SECRETS_DIR: d }).values.TOK, 'from-file');
      assert.equal(resolveSecrets(step, { KAON_SECRETS_DIR: d }).values.TOK, 'from-dir');
      assert.throws(() => resolveSecrets(step, { TOK_FILE: path.join(d, 'nope') }), /secret TOK of step "train" could not be read from .*nope \(named by TOK_FILE\): ENOENT/);
      assert.throws(() => resolveSecrets(step, { TOK: 'ab' }), /secret TOK of step "train" is 2 character\(s\) long, too short/);
      assert.throws(() => resolveSecrets(step, {}), (e: Error & { retryable?: boolean }) => /needs the secret TOK/.test(e.message) && e.retryable === false);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  test('redaction covers every occurrence, the JSON-escaped form, and overlapping secrets longest first', () => {
    const r = redactor({ A: 'pa"ss\\word', B: 'pa"ss' });
    assert.equal(r('x pa"ss\\word y pa"ss z'), 'x [secret A] y [secret B] z');
    assert.equal(r(JSON.stringify({ v: 'pa"ss\\word' })), '{"v":"[secret A]"}');
  });

  test('the step environment: the allow-list, the runner kind, KAON_STEP_ENV_ALLOW, then runner vars, declared env, secrets', () => {
    const worker = { PATH: '/bin', HOME: '/h', LC_ALL: 'C', TEMPORAL_API_KEY: 'k', AWS_ACCESS_KEY_ID: 'a', SPARK_LOCAL_IP: '127.0.0.1', R_LIBS_USER: '/r', HF_HOME: '/hf', WANDB_MODE: 'off', WANDB_API_KEY: 'w' };
    assert.deepEqual(stepEnv({ kind: 'python', worker, runner: { KAON_INPUT: '/in' }, secrets: { HF_TOKEN: 't' } }), { PATH: '/bin', HOME: '/h', LC_ALL: 'C', KAON_INPUT: '/in', HF_TOKEN: 't' });
    assert.equal(stepEnv({ kind: 'spark', worker }).SPARK_LOCAL_IP, '127.0.0.1');
    assert.equal(stepEnv({ kind: 'process', worker }).R_LIBS_USER, '/r');
    assert.equal(stepEnv({ kind: 'python', worker }).SPARK_LOCAL_IP, undefined);
    const extended = stepEnv({ kind: 'python', worker: { ...worker, KAON_STEP_ENV_ALLOW: 'HF_HOME, WANDB_MODE' }, declared: { HOME: '/declared' } });
    assert.equal(extended.HF_HOME, '/hf');
    assert.equal(extended.WANDB_MODE, 'off');
    assert.equal(extended.WANDB_API_KEY, undefined);
    assert.equal(extended.HOME, '/declared');
    assert.equal(stepEnv({ kind: 'python', worker: { ...worker, KAON_STEP_ENV_ALLOW: 'WANDB_*' } }).WANDB_API_KEY, 'w');
    assert.throws(() => stepEnv({ kind: 'python', worker: { KAON_STEP_ENV_ALLOW: 'HF-HOME' } }), /KAON_STEP_ENV_ALLOW has the entry "HF-HOME", which is not a variable name or a PREFIX_\*.*To fix: list names and prefixes separated by commas/);
  });
});
