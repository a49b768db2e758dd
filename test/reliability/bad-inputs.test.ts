// The bad-input suite: one table of inputs over every boundary of issue 10, each with its expected class.
//   refused  — a clear error whose message names the subject and says "To fix: …"; not retryable (unless the row
//              says the environment may heal, e.g. a refused connection); for pipeline rows the run failed fast,
//              every step attempted at most once.
//   accepted — with a documented meaning (the row's `meaning` says what happens, and `check` proves it).
// In-process where possible: one shared worker for the pipeline rows, the CLI through runCli (no processes).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import { RunFailedError } from '../../src/client';
import { escapeForEcho } from '../../src/cli/echo';
import { loadPipelines, resolveProject } from '../../src/cli/project';
import { createArtifactStore } from '../../src/data/store';
import { defineEvent, defineStep, KaonError, python } from '../../src/definition';
import { boundedId, MAX_ID, MAX_RUN_KEY } from '../../src/definition/internal/ids';
import { explainSystemError } from '../../src/definition/system-errors';
import { createRunnerExecutors, implementStep } from '../../src/execution';
import { createStepActivities } from '../../src/execution/activities';
import { kaonHome } from '../../src/runtime/paths';
import { definePipeline } from '../../src/workflow';
import * as activities from '../fixtures/bad-inputs';
import { LONGEST_PIPELINE_NAME, LONGEST_STEP_NAME } from '../fixtures/bad-inputs/steps';
import { labelled, longestRun, returnsWrongOutput } from '../fixtures/bad-inputs/workflows';
import { BAD_KINDS, badValue } from '../fixtures/failures/bad-values';
import { badRetry, badValues, callsForgotten, callsUndefined, lenientParams, throwsPlain, withParams } from '../fixtures/failures/workflows';
import { fakeContext } from '../execution/fake-context';
import { runCliCaptured, type CliResult } from '../support/cli';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

type Expect =
  | { refused: RegExp; fix: RegExp; transient?: true }
  | { accepted: string; check?: (value: unknown) => void | Promise<void> };

interface Row {
  input: string;
  run: () => unknown;
  expect: Expect;
}

let env: TestEnv;
let stop: () => Promise<void>;
let tmp: string;
before(async () => {
  ({ env, stop } = await runningWorker('bad-inputs', { workflowsPath: path.join(ROOT, 'test/fixtures/bad-inputs/workflows.ts'), activities }));
  tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-bad-inputs-'));
  // CLI rows that connect go to the test server through envconfig (this test file is its own process).
  process.env.TEMPORAL_ADDRESS = env.address;
});
after(async () => {
  await stop();
  rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** The message of err and of each cause under it (a run failure wraps the step's failure). */
function errText(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, i = 0; e !== undefined && e !== null && i < 6; e = (e as { cause?: unknown }).cause, i++) parts.push(e instanceof Error ? e.message : String(e));
  return parts.join(' <- ');
}

const cli = (argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> =>
  runCliCaptured(argv, { cwd: opts.cwd ?? ROOT, env: { TEMPORAL_ADDRESS: env.address, KAON_TASK_QUEUE: env.taskQueue, ...opts.env } });

/** A CLI call that must fail: its one-line stderr becomes the error the row checks. */
async function cliFails(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const r = await cli(argv, opts);
  if (r.code === 0) return r;
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, `one line: ${r.stderr}`);
  throw Object.assign(new Error(r.stderr.trim()), { exitCode: r.code });
}

/** A pipeline row: the run fails, fast, and no step of it was attempted twice. */
async function runFails(start: () => Promise<{ id: string; result(): Promise<unknown>; progress(): Promise<{ steps: { key: string; attempts: number }[] }> }>): Promise<unknown> {
  const began = Date.now();
  const run = await start();
  const err = await run.result().then(() => undefined, (e: unknown) => e);
  if (err === undefined) return 'the run succeeded';
  assert.ok(err instanceof RunFailedError, `a failed run (got ${String(err)})`);
  assert.ok(Date.now() - began < 20_000, 'failed fast, not after retries');
  const { steps } = await run.progress();
  for (const s of steps) assert.ok(s.attempts <= 1, `step ${s.key} attempted once (attempts ${s.attempts})`);
  throw err;
}

function makeDir(...parts: string[]): string {
  const dir = path.join(tmp, ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function makeFile(name: string, content = 'x'): string {
  const file = path.join(tmp, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  return file;
}

const FIX = /To fix: \S/;
const counts = new Map<string, { rows: number; refused: number; accepted: number }>();

function boundary(name: string, rows: Row[], opts: { concurrency?: boolean } = {}): void {
  const c = counts.get(name) ?? { rows: 0, refused: 0, accepted: 0 };
  counts.set(name, c);
  describe(name, { concurrency: opts.concurrency ?? false }, () => {
    for (const row of rows) {
      c.rows++;
      if ('refused' in row.expect) c.refused++;
      else c.accepted++;
      test(`${'refused' in row.expect ? 'refused' : 'accepted'}: ${row.input}`, async () => {
        let value: unknown;
        let err: unknown;
        try {
          value = await row.run();
        } catch (e) {
          err = e;
        }
        const ex = row.expect;
        if ('refused' in ex) {
          assert.ok(err !== undefined, `expected a refusal, got ${JSON.stringify(value)?.slice(0, 300)}`);
          const text = errText(err);
          assert.match(text, ex.refused, 'names the subject');
          assert.match(text, FIX, 'says how to fix');
          assert.match(text, ex.fix, 'the fix');
          if (err instanceof KaonError) assert.equal(err.retryable, ex.transient === true, `retryable: ${String(err.retryable)}`);
        } else {
          if (err !== undefined) throw err;
          await ex.check?.(value);
        }
      });
    }
  });
}

after(() => {
  const rows = [...counts.entries()];
  const total = rows.reduce((a, [, c]) => ({ rows: a.rows + c.rows, refused: a.refused + c.refused, accepted: a.accepted + c.accepted }), { rows: 0, refused: 0, accepted: 0 });
  const w = Math.max(...rows.map(([b]) => b.length), 'boundary'.length);
  const line = (b: string, c: { rows: number; refused: number; accepted: number }) => `# ${b.padEnd(w)}  ${String(c.rows).padStart(4)}  ${String(c.refused).padStart(7)}  ${String(c.accepted).padStart(8)}\n`;
  process.stdout.write(`# ${'boundary'.padEnd(w)}  rows  refused  accepted\n`);
  for (const [b, c] of rows) process.stdout.write(line(b, c));
  process.stdout.write(line('total', total));
});

// ---------------------------------------------------------------------------------------------------------
// Client params

const KIND_FIELD: Record<(typeof BAD_KINDS)[number], RegExp> = {
  bigint: /n is a BigInt/,
  function: /fn is a function/,
  symbol: /s is a Symbol/,
  nan: /x is NaN is not JSON/,
  infinity: /x is Infinity is not JSON/,
  negInfinity: /x\[1\] is -Infinity is not JSON/,
  map: /m is a Map/,
  set: /s is a Set/,
  date: /when is a Date object/,
  circular: /self is a circular reference/,
  deep: /nests deeper than 200 levels/,
  throwingGetter: /boom has a getter that throws/,
  classInstance: /u is an instance of URL/,
  symbolKey: /has a Symbol key/,
  bytes: /b is binary data/,
};

boundary('client params', [
  ...BAD_KINDS.map((kind): Row => ({
    input: `params with a ${kind} value`,
    run: () => env.kaon.start(withParams, badValue(kind) as never),
    expect: { refused: new RegExp(`params of pipeline "test-params".*${KIND_FIELD[kind].source}`), fix: /plain JSON data/ },
  })),
  { input: 'unknown key lerning_rate (a typo of a defaulted field)', run: () => env.kaon.start(withParams, { lerning_rate: 0.5 } as never), expect: { refused: /unknown field "lerning_rate" \(did you mean "learning_rate"\?\)/, fix: /unknownParams: 'strip'/ } },
  { input: 'a string where a number is declared', run: () => env.kaon.start(withParams, { learning_rate: 'fast' } as never), expect: { refused: /field "learning_rate": .*received string "fast"/, fix: /match the pipeline schema/ } },
  { input: 'a fraction where an integer is declared', run: () => env.kaon.start(withParams, { epochs: 2.5 } as never), expect: { refused: /field "epochs": .*received number 2\.5/, fix: /match the pipeline schema/ } },
  { input: 'an array instead of an object', run: () => env.kaon.start(withParams, [1, 2] as never), expect: { refused: /params of pipeline "test-params" is invalid: field "\(root\)"/, fix: /match the pipeline schema/ } },
  { input: 'params over 1 MiB', run: () => env.kaon.start(withParams, { rows: 'x'.repeat(1_200_000) } as never), expect: { refused: /are 1\.1 MiB of JSON, over Kaon's 1 MiB limit/, fix: /store the data as an artifact/ } },
  { input: 'an unknown key for a pipeline that opts out (unknownParams: strip)', run: async () => (await env.kaon.start(lenientParams, { learning_rate: 0.2, extra: 1 } as never)).result(), expect: { accepted: 'the unknown key is dropped; the run gets the declared fields', check: (v) => assert.deepEqual(v, { learning_rate: 0.2 }) } },
  { input: 'no params at all (every field defaulted)', run: async () => (await env.kaon.start(withParams, {})).result(), expect: { accepted: 'the schema defaults apply', check: (v) => assert.deepEqual(v, { learning_rate: 0.1, epochs: 3 }) } },
]);

// ---------------------------------------------------------------------------------------------------------
// Run keys

boundary('run keys', [
  { input: 'an empty run key', run: () => env.kaon.start(withParams, {}, { runKey: '' }), expect: { refused: /run key "" is not valid/, fix: /letters, digits/ } },
  { input: 'a run key with a space', run: () => env.kaon.start(withParams, {}, { runKey: 'two words' }), expect: { refused: /run key "two words" is not valid/, fix: /letters, digits/ } },
  { input: 'a run key with a slash', run: () => env.kaon.start(withParams, {}, { runKey: 'a/b' }), expect: { refused: /run key "a\/b" is not valid/, fix: /letters, digits/ } },
  { input: 'a run key with a control character', run: () => env.kaon.start(withParams, {}, { runKey: 'k\u001b[2J' }), expect: { refused: /run key "k\\u001b\[2J" is not valid/, fix: /letters, digits/ } },
  { input: 'a run key starting with "-"', run: () => env.kaon.start(withParams, {}, { runKey: '-x' }), expect: { refused: /run key "-x" is not valid/, fix: /starting with a letter or digit/ } },
  { input: `a run key of ${MAX_RUN_KEY + 1} characters`, run: () => env.kaon.start(withParams, {}, { runKey: 'k'.repeat(MAX_RUN_KEY + 1) }), expect: { refused: /run key "k+" is not valid/, fix: new RegExp(`up to ${MAX_RUN_KEY} .*this one has ${MAX_RUN_KEY + 1} characters`) } },
  {
    input: 'the same run key with other params',
    run: async () => {
      const key = `other-${randomUUID().slice(0, 6)}`;
      await (await env.kaon.start(withParams, { learning_rate: 0.2 }, { runKey: key })).result();
      return env.kaon.start(withParams, { learning_rate: 0.3 }, { runKey: key });
    },
    expect: { refused: /already names run test-params--other-\w+, started with other params: \{"learning_rate":0\.2\}; this start passed \{"learning_rate":0\.3\}/, fix: /use another run key/ },
  },
  {
    input: 'the same run key with the same params',
    run: async () => {
      const key = `same-${randomUUID().slice(0, 6)}`;
      const a = await env.kaon.start(withParams, { learning_rate: 0.2 }, { runKey: key });
      const b = await env.kaon.start(withParams, { learning_rate: 0.2 }, { runKey: key });
      return { a: a.id, b: b.id, existing: b.existing };
    },
    expect: { accepted: 'the second start returns the existing run', check: (v) => assert.deepEqual({ same: (v as { a: string; b: string }).a === (v as { b: string }).b, existing: (v as { existing: boolean }).existing }, { same: true, existing: true }) },
  },
]);

// ---------------------------------------------------------------------------------------------------------
// Events and signals

const payloadEvent = defineEvent('bad-inputs-payload', z.object({ country: z.string() }));
boundary('events', [
  ...(['bigint', 'nan', 'function', 'circular'] as const).map((kind): Row => ({ input: `an event payload with a ${kind}`, run: () => env.kaon.emit(defineEvent(`bad-inputs-any-${kind}`, z.unknown()), badValue(kind)), expect: { refused: KIND_FIELD[kind], fix: /plain JSON data/ } })),
  { input: 'a payload that does not match the event schema', run: () => env.kaon.emit(payloadEvent, { country: 3 } as never), expect: { refused: /payload of event "bad-inputs-payload" is invalid: field "country"/, fix: /matches the event's schema/ } },
  { input: 'an event name with a space (by name)', run: () => env.kaon.emit('two words', {} as never), expect: { refused: /event name "two words" is not valid/, fix: /defineEvent/ } },
  { input: 'an event id with a slash', run: () => env.kaon.emit(payloadEvent, { country: 'US' }, { id: 'a/b' }), expect: { refused: /event id "a\/b" is not valid/, fix: /up to 120 letters/ } },
  { input: 'defineEvent with a reserved kaon. name', run: () => defineEvent('kaon.mine', z.object({})), expect: { refused: /event name "kaon\.mine" starts with "kaon\."/, fix: /pick another name/ } },
  { input: 'defineEvent with a payload that is not zod', run: () => defineEvent('bad-inputs-not-zod', { type: 'object' } as never), expect: { refused: /payload must be a zod schema/, fix: /defineEvent\("viewing-history"/ } },
]);

// ---------------------------------------------------------------------------------------------------------
// Step definitions

const base = { name: 'badInputsStep', version: 1, input: z.object({}), output: z.object({}) };
const stepRow = (input: string, extra: Record<string, unknown>, refused: RegExp, fix: RegExp): Row => ({ input, run: () => defineStep({ ...base, ...extra } as never), expect: { refused, fix } });
boundary('step definitions', [
  stepRow('version 0', { version: 0 }, /version 0 is not a positive whole number \(step "badInputsStep"\)/, /give the step version: 1/),
  stepRow('version 1.5', { version: 1.5 }, /version 1\.5 is not a positive whole number/, /version: 1/),
  stepRow('version "1" (a string)', { version: '1' }, /version "1" is not a positive whole number/, /version: 1/),
  stepRow('no version', { version: undefined }, /version undefined is not a positive whole number/, /version: 1/),
  stepRow('an empty name', { name: '' }, /step name "" is not valid/, /use 1-100 characters/),
  stepRow('a name starting with a digit', { name: '1step' }, /step name "1step" is not valid/, /a letter, then/),
  stepRow('a name with a space', { name: 'my step' }, /step name "my step" is not valid/, /letters, digits/),
  stepRow('a name with a control character', { name: 'step\u0007' }, /step name "step\\u0007" is not valid/, /letters, digits/),
  stepRow('a name of 101 characters', { name: 's'.repeat(101) }, /step name "s+"… \(101 characters, over 100\) is not valid/, /use 1-100 characters/),
  stepRow('a reserved kaon. name', { name: 'kaon.step' }, /starts with "kaon\.", which Kaon reserves/, /pick another name/),
  stepRow('input that is not zod', { input: { type: 'object' } }, /input and output must be zod schemas/, /z\.object/),
  stepRow('retry.backoffCoefficient below 1', { retry: { backoffCoefficient: 0.5 } }, /retry\.backoffCoefficient 0\.5 is below 1/, /use 1 \(a constant interval\) or more/),
  stepRow('retry.maximumAttempts -1', { retry: { maximumAttempts: -1 } }, /retry\.maximumAttempts -1 is not a whole number/, /1 means no retry/),
  stepRow('retry.initialInterval 0', { retry: { initialInterval: 0 } }, /retry\.initialInterval 0 is not positive/, /'1s'/),
  stepRow('retry.maximumInterval below initialInterval', { retry: { initialInterval: '10s', maximumInterval: '1s' } }, /retry\.maximumInterval \(1s\) is below retry\.initialInterval \(10s\)/, /at least initialInterval/),
  stepRow('retry.nonRetryableErrorTypes not a list', { retry: { nonRetryableErrorTypes: 'X' } }, /nonRetryableErrorTypes must be a list/, /KAON_BAD_INPUT/),
  stepRow('retry that is not an object', { retry: 3 }, /retry must be an object/, /maximumAttempts: 5/),
  stepRow('timeout "forever"', { timeout: 'forever' }, /duration "forever" is not understood \(step "badInputsStep", option timeout\)/, /'30s'/),
  stepRow('timeout 0', { timeout: 0 }, /option timeout is 0/, /positive duration/),
  stepRow('heartbeat "0s"', { heartbeat: '0s' }, /option heartbeat is "0s"/, /positive duration/),
  stepRow('a negative scheduleToClose', { scheduleToClose: -5 }, /duration -5 is not understood/, /milliseconds as a number/),
  stepRow('queue "a b"', { queue: 'a b' }, /queue "a b" is not a valid queue name/, /queue: 'gpu'/),
  stepRow('a queue of 101 characters', { queue: 'q'.repeat(101) }, /queue "q+" is not a valid queue name/, /letters, digits/),
  { input: 'the longest step name (100 characters)', run: () => defineStep({ ...base, name: 'S'.padEnd(100, 's') }).name.length, expect: { accepted: 'defined; its activity type is the 100-character name', check: (v) => assert.equal(v, 100) } },
]);

// ---------------------------------------------------------------------------------------------------------
// Pipeline definitions

const pipelineRow = (input: string, config: Record<string, unknown>, refused: RegExp, fix: RegExp): Row => ({ input, run: () => definePipeline({ params: z.object({}), run: async () => 1, ...config } as never), expect: { refused, fix } });
boundary('pipeline definitions', [
  pipelineRow('a name with a space', { name: 'my pipeline' }, /pipeline name "my pipeline" is not valid/, /letters, digits/),
  pipelineRow('a name of 101 characters', { name: 'p'.repeat(101) }, /pipeline name "p+"… \(101 characters, over 100\)/, /use 1-100 characters/),
  pipelineRow('a reserved kaon. name', { name: 'kaon.map' }, /pipeline name "kaon\.map" starts with "kaon\."/, /pick another name/),
  pipelineRow('params that are not zod', { name: 'bad-inputs-not-zod', params: { type: 'object' } }, /params must be a zod schema \(pipeline "bad-inputs-not-zod"\)/, /z\.object/),
  pipelineRow('priority 9', { name: 'bad-inputs-priority', priority: 9 }, /priority 9 is not valid \(pipeline "bad-inputs-priority"\)/, /from 1 \(runs first\) to 5/),
  { input: 'a plain Error thrown in pipeline code', run: () => runFails(() => env.kaon.start(throwsPlain, {})), expect: { refused: /pipeline "test-throws" threw Error: boom in my pipeline \(after step first\)/, fix: /correct the pipeline code/ } },
  { input: 'k.step(undefined) after an import typo', run: () => runFails(() => env.kaon.start(callsUndefined, {})), expect: { refused: /pipeline "test-typo" threw TypeError/, fix: /correct the pipeline code/ } },
  { input: 'a call with retry.backoffCoefficient 0.5', run: () => runFails(() => env.kaon.start(badRetry, {})), expect: { refused: /retry\.backoffCoefficient 0\.5 is below 1 \(step "note", call note\)/, fix: /use 1/ } },
  { input: 'a step no worker implements', run: () => runFails(() => env.kaon.start(callsForgotten, {})), expect: { refused: /step "forgotten" is not implemented on the worker that took it/, fix: /implement it with implementStep/ } },
  { input: 'unknown params that bypass the client (raw Temporal start)', run: () => runFails(async () => env.kaon.run(await env.temporal.workflow.start('test-params', { taskQueue: env.taskQueue, workflowId: `raw-${randomUUID()}`, args: [{ lerning_rate: 1 }] }).then((h) => h.workflowId))), expect: { refused: /unknown field "lerning_rate"/, fix: /unknownParams/ } },
], { concurrency: true });

// ---------------------------------------------------------------------------------------------------------
// Worker start-up

const twice = defineStep({ name: 'badInputsTwice', version: 1, input: z.object({}), output: z.object({}) });
const twiceAgain = defineStep({ name: 'badInputsTwice', version: 1, input: z.object({}), output: z.object({}) });
boundary('worker start-up', [
  { input: 'a step implemented twice', run: () => createStepActivities({ impls: [implementStep(twice, () => ({})), implementStep(twice, () => ({}))] }), expect: { refused: /step "badInputsTwice" is implemented twice/, fix: /\S/ } },
  { input: 'two different steps with one name', run: () => createStepActivities({ impls: [], steps: [twice, twiceAgain] }), expect: { refused: /two different steps are named "badInputsTwice"/, fix: /\S/ } },
  { input: 'two pipelines with one name in a workflows module', run: () => loadPipelines(path.join(ROOT, 'test/fixtures/failures/duplicates.ts')), expect: { refused: /two pipelines in .*duplicates\.ts are named "test-dup" \(one exported as second\)/, fix: /give every pipeline a unique name/ } },
  { input: 'a workflows module that exports no pipeline', run: () => loadPipelines(makeFile('empty-workflows.ts', 'export const x = 1;\n')), expect: { refused: /exports no pipelines/, fix: /definePipeline/ } },
  { input: 'a workflows module that does not exist', run: () => loadPipelines(path.join(tmp, 'nope.ts')), expect: { refused: /no workflows module at .*nope\.ts/, fix: /pass --workflows <file>/ } },
]);

// ---------------------------------------------------------------------------------------------------------
// Step outputs and inputs (TypeScript steps, in a pipeline)

boundary('step outputs (TS)', [
  ...(['nan', 'function', 'map', 'bigint', 'date', 'symbol', 'circular'] as const).map((kind): Row => ({
    input: `a step output with a ${kind}`,
    run: () => runFails(() => env.kaon.start(badValues, { kind, where: 'output' })),
    expect: { refused: KIND_FIELD[kind], fix: /\S/ },
  })),
  ...(['nan', 'infinity', 'set'] as const).map((kind): Row => ({
    input: `a step input with a ${kind}`,
    run: () => runFails(() => env.kaon.start(badValues, { kind, where: 'input' })),
    expect: { refused: KIND_FIELD[kind], fix: /\S/ },
  })),
  { input: 'a step output that does not match its schema', run: () => runFails(() => env.kaon.start(returnsWrongOutput, {})), expect: { refused: /wrongOutput.*field "n"/, fix: /\S/ } },
], { concurrency: true });

// ---------------------------------------------------------------------------------------------------------
// Python steps: the misuse that behaves today (the kaon_step misuse table comes with branch issue10-steps)

const py = (name: string, script: string) => defineStep({ name, version: 1, input: z.object({ rows: z.number() }).partial(), output: z.any(), run: python(script) });
const runPy = (name: string, script: string, input: Record<string, unknown> = {}) => createRunnerExecutors({ root: ROOT }).python(py(name, script), input, fakeContext());
boundary('python steps', [
  { input: 'a malformed (not JSON) protocol line', run: () => runPy('malformed', 'test/fixtures/scripts/malformed.py'), expect: { refused: /Python step "malformed" .*exited 0 but wrote 1 malformed protocol line\(s\) on fd 3.*not JSON/, fix: /The protocol is one UTF-8 JSON object per line/ } },
  { input: 'binary garbage on the protocol fd', run: () => runPy('garbage', 'test/fixtures/bad-inputs/py/binary_garbage.py'), expect: { refused: /Python step "garbage" .*line 1 is not UTF-8 text \(binary data\?\): \\x00/, fix: /one UTF-8 JSON object per line/ } },
  { input: 'kaon_step.output() called twice', run: () => runPy('outputTwice', 'test/fixtures/bad-inputs/py/output_twice.py'), expect: { refused: /kaon_step\.output: output\(\) was already called; a step has exactly one output/, fix: /collect everything into one dict/ } },
  { input: 'NaN in a Python output', run: () => runPy('outputNan', 'test/fixtures/bad-inputs/py/output_nan.py'), expect: { refused: /kaon_step\.output: the output at loss is nan, which is not JSON/, fix: /\S/ } },
  { input: 'progress outside [0, 1]', run: () => runPy('progressOut', 'test/fixtures/bad-inputs/py/progress_out_of_range.py'), expect: { refused: /kaon_step\.progress: the fraction is 1\.5, outside \[0, 1\]/, fix: /pass done \/ total/ } },
  { input: 'a Python output that is not serialisable (a set)', run: () => runPy('notSerialisable', 'test/fixtures/bad-inputs/py/not_serialisable.py'), expect: { refused: /kaon_step\.output: the output at s is a set, which is not JSON/, fix: /pass a list/ } },
  { input: 'a Python script that does not parse', run: () => runPy('doesNotParse', 'test/fixtures/bad-inputs/py/does_not_parse.py'), expect: { refused: /does not parse: SyntaxError at .*does_not_parse\.py line 2/, fix: /correct the code at/ } },
  { input: 'kaon_step.bad_input() from the script', run: () => runPy('badInput', 'test/fixtures/scripts/bad_input.py', { rows: -3 }), expect: { refused: /bad input: field 'rows' must be >= 0, got -3/, fix: /\S/ } },
  { input: 'a script that does not exist', run: () => runPy('missingScript', 'test/fixtures/bad-inputs/py/nope.py'), expect: { refused: /nope\.py/, fix: /\S/ } },
  { input: 'a script that exits 0 without an output', run: () => runPy('noOutput', 'test/fixtures/bad-inputs/py/no_output.py'), expect: { accepted: 'the step returns no value (undefined); an output schema that needs fields then refuses it', check: (v) => assert.equal(v, undefined) } },
]);

// ---------------------------------------------------------------------------------------------------------
// CLI arguments

boundary('CLI arguments', [
  { input: 'an unknown command', run: () => cliFails(['deploy']), expect: { refused: /kaon: no command "deploy"/, fix: /use one of demo, dev/ } },
  { input: 'help for an unknown command', run: () => cliFails(['help', 'deploy']), expect: { refused: /no command "deploy"/, fix: /use one of/ } },
  { input: 'an unknown option', run: () => cliFails(['run', 'test-params', '--bogus']), expect: { refused: /unknown option --bogus for kaon run \(known: .*--params/, fix: /kaon run --help/ } },
  { input: 'a missing required argument', run: () => cliFails(['run']), expect: { refused: /kaon run needs a <pipeline> argument/, fix: /kaon run <pipeline>/ } },
  { input: 'an extra argument', run: () => cliFails(['status', 'a', 'b']), expect: { refused: /unexpected argument "b" for kaon status/, fix: /quote values that contain spaces/ } },
  { input: 'a value for a boolean flag', run: () => cliFails(['run', 'x', '--wait=yes']), expect: { refused: /option --wait takes no value/, fix: /kaon run --help/ } },
  { input: '--params that is not JSON', run: () => cliFails(['run', 'test-params', '--params', '{"a": 1,', '--workflows', 'test/fixtures/failures/workflows.ts']), expect: { refused: /--params is not valid JSON/, fix: /--params '\{"seed": 3\}'/ } },
  { input: '--params @file that does not exist', run: () => cliFails(['run', 'test-params', '--params', '@nope.json', '--workflows', 'test/fixtures/failures/workflows.ts']), expect: { refused: /--params file .*nope\.json does not exist/, fix: /check the path/ } },
  { input: '--params @dir (a folder)', run: () => cliFails(['run', 'test-params', '--params', `@${makeDir('params-dir')}`, '--workflows', 'test/fixtures/failures/workflows.ts']), expect: { refused: /reading the --params file failed: .*params-dir \(set by --params\) is a folder where Kaon needs a file \[EISDIR\]/, fix: /name a file/ } },
  { input: '--params @file that is not JSON', run: () => cliFails(['run', 'test-params', '--params', `@${makeFile('params.txt', 'learning_rate=3')}`, '--workflows', 'test/fixtures/failures/workflows.ts']), expect: { refused: /--params file .*params\.txt is not valid JSON/, fix: /pass a JSON object/ } },
  { input: '--params with an unknown key', run: () => cliFails(['run', 'test-params', '--params', '{"lerning_rate": 1}', '--workflows', 'test/fixtures/failures/workflows.ts']), expect: { refused: /unknown field "lerning_rate" \(did you mean "learning_rate"\?\)/, fix: /correct the field name/ } },
  { input: 'an unknown pipeline', run: () => cliFails(['run', 'nope', '--workflows', 'test/fixtures/failures/workflows.ts']), expect: { refused: /no pipeline named "nope" in .*workflows\.ts \(known: .*test-params/, fix: /use one of the known names/ } },
  { input: '--limit ten', run: () => cliFails(['list', '--limit', 'ten']), expect: { refused: /--limit "ten" is not a whole number ≥ 1/, fix: /--limit 20/ } },
  { input: '--limit 0', run: () => cliFails(['list', '--limit', '0']), expect: { refused: /--limit "0" is not a whole number ≥ 1/, fix: /--limit 20/ } },
  { input: 'list --status with an unknown status', run: () => cliFails(['list', '--status', 'finished']), expect: { refused: /status "finished" is not a run status/, fix: /use one of running, waiting, paused, succeeded, failed, cancelled/ } },
  { input: 'list --status with a typo', run: () => cliFails(['list', '--status', 'succeded']), expect: { refused: /status "succeded" is not a run status \(did you mean "succeeded"\?\)/, fix: /use one of/ } },
  { input: '--port 70000', run: () => cliFails(['dev', '--port', '70000']), expect: { refused: /--port "70000" is not a port: expected a whole number from 0 to 65535/, fix: /--port 8377/ } },
  { input: '--port abc', run: () => cliFails(['dev', '--port', 'abc']), expect: { refused: /--port "abc" is not a port/, fix: /--port / } },
  { input: '--port -1', run: () => cliFails(['board', '--port=-1']), expect: { refused: /--port "-1" is not a port/, fix: /--port / } },
  { input: 'dev --port 0 (the dev server needs a fixed port)', run: () => cliFails(['dev', '--port', '0']), expect: { refused: /--port "0" is not a port: expected a whole number from 1 to 65535/, fix: /--port 7233/ } },
  { input: 'dev --port 65000 (its Web UI would be port 66000)', run: () => cliFails(['dev', '--port', '65000']), expect: { refused: /the Web UI port 66000 \(--port \+ 1000\) is over 65535/, fix: /pass --ui-port/ } },
  { input: '--grace soon', run: () => cliFails(['worker', '--grace', 'soon']), expect: { refused: /--grace "soon" is not a duration/, fix: /--grace 30s/ } },
  { input: '--task-queue with a space', run: () => cliFails(['run', 'test-params', '--task-queue', 'my queue']), expect: { refused: /--task-queue "my queue" is not a task queue name/, fix: /letters, digits/ } },
  { input: '--queues with a bad queue name', run: () => cliFails(['worker', '--queues', 'python,g p u']), expect: { refused: /--queues "g p u" is not a task queue name/, fix: /letters, digits/ } },
  { input: '--metrics with a port over 65535', run: () => cliFails(['worker', '--metrics', ':99999']), expect: { refused: /--metrics ":99999" is not a listen address/, fix: /--metrics 9464/ } },
  { input: 'board --ui-url that is not a URL', run: () => cliFails(['board', '--ui-url', 'localhost 8233']), expect: { refused: /--ui-url "localhost 8233" is not an http\(s\) URL/, fix: /http:\/\// } },
  { input: 'artifact with an unknown action', run: () => cliFails(['artifact', 'put', 'x']), expect: { refused: /unknown action "put"/, fix: /kaon artifact get/ } },
  { input: 'artifact get of something that is no sha256', run: () => cliFails(['artifact', 'get', 'model.pt']), expect: { refused: /"model\.pt" names no artifact/, fix: /64-hex sha256/ } },
  {
    input: 'resume --from a step the run does not have',
    run: async () => {
      const run = await env.kaon.start(throwsPlain, {});
      await run.result().catch(() => undefined);
      return cliFails(['resume', run.id, '--from', 'trian']);
    },
    expect: { refused: /run test-throws-\w+ has no step "trian"; its steps are first/, fix: /pass one of those step keys/ },
  },
  {
    input: 'resume --from a step the run has',
    run: async () => {
      const run = await env.kaon.start(throwsPlain, {});
      await run.result().catch(() => undefined);
      return cli(['resume', run.id, '--from', 'first']);
    },
    expect: { accepted: 'a new run starts, recomputing that step', check: (v) => assert.match((v as CliResult).stdout, /resumed test-throws-\w+ as run .* \(recomputing first\)/) },
  },
  { input: 'status of a run id with terminal escapes', run: () => cliFails(['status', 'run\u001b[2J\u0007']), expect: { refused: /run\\e\[2J\\x07/, fix: /\S/ } },
  {
    input: 'a foreach label with a newline and terminal escapes, shown by kaon status',
    run: async () => {
      const run = await env.kaon.start(labelled, { labels: ['US\nforged row\u001b[31m'] });
      await run.result();
      return cli(['status', run.id]);
    },
    expect: { accepted: 'the run completes; status shows the label escaped (\\n, \\e), so it cannot forge a row or recolour the terminal', check: (v) => {
      const r = v as CliResult;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\[US\\nforged row\\e\[31m\]/);
      assert.doesNotMatch(r.stdout, /\u001b|^forged/m);
    } },
  },
  {
    input: 'control characters in an id echoed by kaon',
    run: () => cli(['status', 'evil\u001b]0;owned\u0007\u202e']),
    expect: { accepted: 'the error echoes the id with every control character escaped', check: (v) => {
      const r = v as CliResult;
      assert.equal(r.code, 1);
      assert.doesNotMatch(r.stderr, /[\u0000-\u0009\u000b-\u001f\u007f\u202e]/);
      assert.match(r.stderr, /evil\\e\]0;owned\\x07\\u\{202e\}/);
    } },
  },
]);

// ---------------------------------------------------------------------------------------------------------
// Environment settings (checked before any command runs, naming the variable)

const envRow = (name: string, value: string, refused: RegExp, fix: RegExp): Row => ({ input: `${name}=${value}`, run: () => cliFails(['list', '--limit', 'x'], { env: { [name]: value } }), expect: { refused, fix } });
boundary('env settings', [
  envRow('KAON_DEV_PORT', 'abc', /KAON_DEV_PORT "abc" is not a port/, /KAON_DEV_PORT=7233/),
  envRow('KAON_DEV_PORT', '70000', /KAON_DEV_PORT "70000" is not a port/, /KAON_DEV_PORT=7233/),
  envRow('KAON_DEV_UI_PORT', '0', /KAON_DEV_UI_PORT "0" is not a port: expected a whole number from 1/, /KAON_DEV_UI_PORT=/),
  envRow('KAON_BOARD_PORT', '-1', /KAON_BOARD_PORT "-1" is not a port/, /KAON_BOARD_PORT=8377/),
  envRow('KAON_METRICS', 'on', /KAON_METRICS "on" is not a listen address/, /KAON_METRICS=9464/),
  envRow('KAON_LOG_LEVEL', 'LOUD', /KAON_LOG_LEVEL "LOUD" is not a log level/, /TRACE, DEBUG, INFO, WARN, ERROR/),
  envRow('KAON_DEBUG', 'maybe', /KAON_DEBUG "maybe" is not a boolean/, /KAON_DEBUG=1/),
  envRow('KAON_DEMO_KEEP', 'yes', /KAON_DEMO_KEEP "yes" is not a boolean/, /KAON_DEMO_KEEP=1/),
  envRow('KAON_TASK_QUEUE', 'my queue', /KAON_TASK_QUEUE "my queue" is not a task queue name/, /KAON_TASK_QUEUE=kaon-gpu/),
  envRow('KAON_UI_URL', 'localhost:8233', /KAON_UI_URL "localhost:8233" is not an http\(s\) URL/, /KAON_UI_URL=http/),
  envRow('KAON_S3_ENDPOINT', 'ftp://minio', /KAON_S3_ENDPOINT "ftp:\/\/minio" is not an http\(s\) URL/, /KAON_S3_ENDPOINT=http/),
  envRow('KAON_BOARD_HOST', 'my host', /KAON_BOARD_HOST "my host" is not a host name/, /KAON_BOARD_HOST=127\.0\.0\.1/),
  { input: '--port 99999 with a valid KAON_DEV_PORT (the flag is named)', run: () => cliFails(['dev', '--port', '99999'], { env: { KAON_DEV_PORT: '7233' } }), expect: { refused: /--port "99999"/, fix: /--port / } },
  { input: 'KAON_BOARD_PORT=0 and KAON_METRICS=:9464', run: () => cli(['list', '--limit', 'x'], { env: { KAON_BOARD_PORT: '0', KAON_METRICS: ':9464' } }), expect: { accepted: 'valid settings pass (0 = any free board port); the command then reports its own mistake', check: (v) => assert.match((v as CliResult).stderr, /--limit "x"/) } },
  { input: 'an empty KAON_DEV_PORT', run: () => cli(['list', '--limit', 'x'], { env: { KAON_DEV_PORT: '' } }), expect: { accepted: 'an empty variable counts as unset', check: (v) => assert.match((v as CliResult).stderr, /--limit "x"/) } },
]);

// ---------------------------------------------------------------------------------------------------------
// Files and paths

const SHA = 'a'.repeat(64);
async function storedArtifact(dir: string): Promise<{ sha256: string; bytes: Buffer }> {
  const store = createArtifactStore(dir, { localDir: dir });
  const bytes = Buffer.alloc(3 * 1024 * 1024, 7);
  const ref = await store.put({ bytes }, { name: 'model.bin', producer: { pipeline: 'p', runId: 'r', step: 's', attempt: 1 } });
  return { sha256: ref.sha256, bytes };
}

boundary('files and paths', [
  { input: 'KAON_ARTIFACTS is a file', run: () => cliFails(['artifact', 'get', SHA], { env: { KAON_ARTIFACTS: makeFile('artifacts-file') } }), expect: { refused: /the artifact store .*artifacts-file failed: .*\(set by KAON_ARTIFACTS\), or a folder on its way, is a file where Kaon needs a folder \[ENOTDIR\]/, fix: /point KAON_ARTIFACTS somewhere else/ } },
  { input: 'KAON_ARTIFACTS under a file', run: () => cliFails(['artifact', 'get', SHA], { env: { KAON_ARTIFACTS: path.join(makeFile('a-file'), 'store') } }), expect: { refused: /a-file.*is a file where Kaon needs a folder \[ENOTDIR\]/, fix: /point KAON_ARTIFACTS somewhere else/ } },
  { input: 'writing to a KAON_ARTIFACTS that is a file', run: () => createArtifactStore(makeFile('store-file'), { localDir: tmp }).put({ bytes: Buffer.from('x') }, { producer: { pipeline: 'p', runId: 'r', step: 's', attempt: 1 } }), expect: { refused: /writing a blob to the artifact store .*store-file failed: .*is a file where Kaon needs a folder \[(ENOTDIR|EEXIST)\]/, fix: /remove or rename that file, or point KAON_ARTIFACTS somewhere else/ } },
  { input: 'KAON_ARTIFACTS with a missing parent folder', run: async () => (await createArtifactStore(path.join(tmp, 'missing', 'parents', 'store'), { localDir: tmp }).put({ bytes: Buffer.from('x') }, { producer: { pipeline: 'p', runId: 'r', step: 's', attempt: 1 } })).size, expect: { accepted: 'the folders are created on first write', check: (v) => assert.equal(v, 1) } },
  { input: 'KAON_ARTIFACTS that is a relative name', run: () => createArtifactStore('artifacts', { localDir: tmp }), expect: { refused: /artifact store "artifacts" is neither a file:\/\/ nor an s3:\/\/ URL \(KAON_ARTIFACTS\)/, fix: /file:\/\/\/absolute\/folder/ } },
  { input: 'KAON_ARTIFACTS with an invalid bucket', run: () => createArtifactStore('s3://B_ad/x', { localDir: tmp }), expect: { refused: /names an invalid bucket "B_ad"/, fix: /s3:\/\/bucket\/prefix/ } },
  { input: 'KAON_HOME is a file (CLI)', run: () => cliFails(['artifact', 'get', SHA], { env: { KAON_HOME: makeFile('home-file') } }), expect: { refused: /opening the Kaon home folder failed: .*home-file \(set by KAON_HOME\).*is a file where Kaon needs a folder/, fix: /point KAON_HOME somewhere else/ } },
  {
    input: 'KAON_HOME is a file (runtime)',
    run: () => {
      const was = process.env.KAON_HOME;
      process.env.KAON_HOME = makeFile('home-file-2');
      try {
        return kaonHome();
      } finally {
        if (was === undefined) delete process.env.KAON_HOME;
        else process.env.KAON_HOME = was;
      }
    },
    expect: { refused: /home-file-2 \(set by KAON_HOME\).*\[ENOTDIR\]/, fix: /point KAON_HOME somewhere else/ },
  },
  { input: 'KAON_HOME that does not exist yet', run: () => cli(['artifact', 'get', SHA], { env: { KAON_HOME: path.join(tmp, 'fresh-home') } }), expect: { accepted: 'a missing home is created on first use; the command reports the missing artifact', check: (v) => assert.match((v as CliResult).stderr, /artifact sha256:aaaaaaaaaaaa is not in/) } },
  {
    input: 'artifact get -o an existing folder',
    run: async () => {
      const store = makeDir('store-o-dir');
      const { sha256 } = await storedArtifact(store);
      return cliFails(['artifact', 'get', sha256, '-o', makeDir('out-dir')], { env: { KAON_ARTIFACTS: store } });
    },
    expect: { refused: /writing artifact sha256:\w+ failed: .*out-dir\/ \(set by -o\) is a folder where Kaon needs a file \[EISDIR\]/, fix: /name a file, e.g. .*out-dir\/<name>/ },
  },
  {
    input: 'artifact get -o under a missing folder',
    run: async () => {
      const store = makeDir('store-o-missing');
      const { sha256 } = await storedArtifact(store);
      return cliFails(['artifact', 'get', sha256, '-o', path.join(tmp, 'no-such-dir', 'model.bin')], { env: { KAON_ARTIFACTS: store } });
    },
    expect: { refused: /no-such-dir \(set by -o\) does not exist/, fix: /create the missing folder \(mkdir -p\)/ },
  },
  {
    input: 'artifact get -o under a file',
    run: async () => {
      const store = makeDir('store-o-file');
      const { sha256 } = await storedArtifact(store);
      return cliFails(['artifact', 'get', sha256, '-o', path.join(makeFile('o-file'), 'model.bin')], { env: { KAON_ARTIFACTS: store } });
    },
    expect: { refused: /o-file.*\(set by -o\).*is a file where Kaon needs a folder \[ENOTDIR\]/, fix: /remove or rename that file/ },
  },
  {
    input: 'ten concurrent artifact get to one output file',
    run: async () => {
      const store = makeDir('store-concurrent');
      const { sha256, bytes } = await storedArtifact(store);
      const out = path.join(makeDir('concurrent-out'), 'model.bin');
      const results = await Promise.all(Array.from({ length: 10 }, () => cli(['artifact', 'get', sha256, '-o', out], { env: { KAON_ARTIFACTS: store } })));
      return { codes: results.map((r) => r.code), same: readFileSync(out).equals(bytes), left: readdirSync(path.dirname(out)) };
    },
    expect: { accepted: 'every get succeeds; the file is whole (renamed from a temp file of its own), and no temp file is left', check: (v) => assert.deepEqual(v, { codes: Array(10).fill(0), same: true, left: ['model.bin'] }) },
  },
  {
    input: 'artifact get -o - (stdout)',
    run: async () => {
      const store = makeDir('store-stdout');
      const { sha256 } = await storedArtifact(store);
      return cli(['artifact', 'get', sha256, '-o', '-'], { env: { KAON_ARTIFACTS: store } });
    },
    expect: { accepted: 'the bytes go to stdout', check: (v) => assert.equal((v as CliResult).stdout.length, 3 * 1024 * 1024) },
  },
  { input: 'an unknown key in the package.json kaon block', run: () => resolveProject(makeProject({ workflow: 'src/flows.ts' })), expect: { refused: /the "kaon" block of .*package\.json has unknown key "workflow" \(did you mean "workflows"\?\); the valid keys are workflows, activities, demo/, fix: /rename or remove the key/ } },
  { input: 'two unknown keys in the kaon block', run: () => resolveProject(makeProject({ activites: 'a.ts', tasks: 'b.ts' })), expect: { refused: /unknown keys "activites" \(did you mean "activities"\?\), "tasks"; the valid keys are/, fix: /rename or remove the key/ } },
  { input: 'a kaon block field of the wrong type', run: () => resolveProject(makeProject({ workflows: 3 })), expect: { refused: /the "kaon" block of .*package\.json is invalid: field "workflows"/, fix: /"kaon": \{ "workflows"/ } },
  { input: 'a package.json that is not JSON', run: () => resolveProject(makeProject('{ "name": ')), expect: { refused: /package\.json is not valid JSON/, fix: /fix the JSON syntax/ } },
  { input: '--workflows naming a missing file', run: () => cliFails(['run', 'x', '--workflows', 'no/such.ts']), expect: { refused: /no workflows module at .*no\/such\.ts/, fix: /create it, pass --workflows <file>/ } },
]);

let projects = 0;
function makeProject(kaon: unknown): string {
  const dir = makeDir(`project-${projects++}`);
  writeFileSync(path.join(dir, 'package.json'), typeof kaon === 'string' ? kaon : JSON.stringify({ name: 'x', kaon }));
  return dir;
}

// ---------------------------------------------------------------------------------------------------------
// Connections (refused addresses; TLS, namespaces and non-Temporal servers are another table)

let closedPort = 0;
before(async () => {
  // A port that was just free: nothing listens there.
  const srv: Server = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  closedPort = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
});

boundary('connections', [
  {
    input: 'an S3 endpoint that refuses connections',
    run: async () => {
      const was = { ...process.env };
      Object.assign(process.env, { KAON_S3_ENDPOINT: `http://127.0.0.1:${closedPort}`, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
      const began = Date.now();
      try {
        await createArtifactStore('s3://bad-inputs-bucket/p', { localDir: tmp }).exists(SHA);
      } catch (err) {
        assert.ok(Date.now() - began < 5000, `fast (${Date.now() - began} ms), not after long retries`);
        throw err;
      } finally {
        for (const k of ['KAON_S3_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) if (was[k] === undefined) delete process.env[k];
        else process.env[k] = was[k];
      }
    },
    expect: { refused: new RegExp(`reaching the artifact store s3://bad-inputs-bucket/p failed: nothing answered at http://127\\.0\\.0\\.1:${'\\d+'} \\(set by KAON_S3_ENDPOINT\\): the connection was refused \\[ECONNREFUSED\\]`), fix: /start the server there, or set KAON_S3_ENDPOINT to its address/, transient: true },
  },
  {
    input: 'kaon artifact get against a refused S3 endpoint',
    run: () => {
      const was = { ...process.env };
      Object.assign(process.env, { KAON_S3_ENDPOINT: `http://127.0.0.1:${closedPort}`, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
      return cliFails(['artifact', 'get', SHA], { env: { KAON_ARTIFACTS: 's3://bad-inputs-bucket/p' } }).finally(() => {
        for (const k of ['KAON_S3_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) if (was[k] === undefined) delete process.env[k];
        else process.env[k] = was[k];
      });
    },
    expect: { refused: /kaon artifact: reaching the artifact store .* the connection was refused \[ECONNREFUSED\]/, fix: /KAON_S3_ENDPOINT/ },
  },
  {
    input: 'a Temporal address that refuses connections',
    run: () => {
      const was = process.env.TEMPORAL_ADDRESS;
      process.env.TEMPORAL_ADDRESS = `127.0.0.1:${closedPort}`;
      return cliFails(['list']).finally(() => {
        process.env.TEMPORAL_ADDRESS = was;
      });
    },
    expect: { refused: new RegExp(`cannot reach Temporal at 127\\.0\\.0\\.1:${'\\d+'}`), fix: /start a local server with `kaon dev`/ },
  },
  {
    input: 'explainSystemError of a bare ECONNREFUSED',
    run: () => {
      throw explainSystemError(Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:9000'), { code: 'ECONNREFUSED', address: '10.0.0.1', port: 9000 }), { doing: 'uploading', setting: 'KAON_S3_ENDPOINT' });
    },
    expect: { refused: /uploading failed: nothing answered at 10\.0\.0\.1:9000 \(set by KAON_S3_ENDPOINT\)/, fix: /set KAON_S3_ENDPOINT to its address/, transient: true },
  },
  {
    input: 'explainSystemError of ENOSPC',
    run: () => {
      throw explainSystemError(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC', path: '/data/kaon/tmp/x' }), { doing: 'writing a blob', setting: 'KAON_ARTIFACTS' });
    },
    expect: { refused: /writing a blob failed: no space left for \/data\/kaon\/tmp\/x \(set by KAON_ARTIFACTS\) \[ENOSPC\]/, fix: /free disk space/, transient: true },
  },
  {
    input: 'explainSystemError of EACCES',
    run: () => {
      throw explainSystemError(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES', path: '/srv/artifacts' }), { doing: 'writing a record', setting: 'KAON_ARTIFACTS' });
    },
    expect: { refused: /permission denied on \/srv\/artifacts \(set by KAON_ARTIFACTS\) \[EACCES\]/, fix: /make it writable for this user/ },
  },
]);

// ---------------------------------------------------------------------------------------------------------
// Ids and lengths: every Temporal id within 255 characters

const LONG_LABEL = `US-${'x'.repeat(500)}`;
boundary('ids and lengths', [
  { input: `a schedule id of 131 characters`, run: () => env.kaon.schedules.create({ id: 's'.repeat(131), pipeline: withParams, params: {}, every: '1 day' }), expect: { refused: /schedule id "s+" is not valid/, fix: /use up to 130 letters/ } },
  { input: 'a pipeline name of 101 characters', run: () => definePipeline({ name: 'p'.repeat(101), params: z.object({}), run: async () => 1 }), expect: { refused: /101 characters, over 100/, fix: /use 1-100 characters/ } },
  { input: `a run key of ${MAX_RUN_KEY + 1} characters`, run: () => env.kaon.start(withParams, {}, { runKey: 'r'.repeat(MAX_RUN_KEY + 1) }), expect: { refused: /run key "r+" is not valid/, fix: /this one has 151 characters/ } },
  { input: 'boundedId of a 600-character id', run: () => [boundedId('k'.repeat(600)), boundedId('k'.repeat(600)), boundedId(`${'k'.repeat(599)}j`)], expect: { accepted: 'shortened to 255 characters (readable start + hash), the same every time, different for different ids', check: (v) => {
    const [a, b, c] = v as string[];
    assert.equal(a!.length, MAX_ID);
    assert.equal(a, b);
    assert.notEqual(a, c);
  } } },
  {
    input: 'a run with the longest names: pipeline and step names of 100, a run key of 150, foreach labels of 503, a child, a sweep',
    run: async () => {
      const runKey = 'K'.repeat(MAX_RUN_KEY);
      const run = await env.kaon.start(longestRun, { labels: [LONG_LABEL, 'short'] }, { runKey });
      const result = await run.result();
      // Every workflow of the run (the run, its children, the sweep's coordinator and shards) and every id in them.
      const ids: string[] = [];
      const seen = new Set<string>();
      const visit = async (workflowId: string): Promise<void> => {
        if (seen.has(workflowId)) return;
        seen.add(workflowId);
        ids.push(workflowId);
        const history = await env.temporal.workflow.getHandle(workflowId).fetchHistory();
        for (const e of history.events ?? []) {
          const a = e.activityTaskScheduledEventAttributes;
          if (a?.activityId) ids.push(a.activityId);
          if (a?.taskQueue?.name) ids.push(a.taskQueue.name);
          const c = e.startChildWorkflowExecutionInitiatedEventAttributes;
          if (c?.workflowId) await visit(c.workflowId);
        }
      };
      await visit(run.id);
      return { result, ids, runId: run.id };
    },
    expect: { accepted: 'the run completes; ids built from long parts are shortened deterministically, every id in every history is ≤ 255', check: (v) => {
      const { result, ids, runId } = v as { result: { each: number[]; swept: number }; ids: string[]; runId: string };
      assert.deepEqual(result, { each: [LONG_LABEL.length * 3 + 1, 16], swept: 2 });
      assert.equal(runId, `${LONGEST_PIPELINE_NAME}--${'K'.repeat(MAX_RUN_KEY)}`);
      assert.ok(ids.some((id) => id.startsWith(`${LONGEST_STEP_NAME}[US-x`) && id.includes('~')), 'a long foreach key was shortened');
      assert.ok(ids.length > 10, `ids seen: ${ids.length}`);
      const long = ids.filter((id) => id.length > MAX_ID);
      assert.deepEqual(long, [], 'no id over 255 characters');
    } },
  },
  { input: 'an escaped echo of every control character', run: () => escapeForEcho('a\u0000b\tc\nd\u001be\u007ff\u009bg\u2066h'), expect: { accepted: 'each control character becomes a visible escape', check: (v) => assert.equal(v, 'a\\x00b\\tc\\nd\\ee\\x7ff\\x9bg\\u{2066}h') } },
]);
