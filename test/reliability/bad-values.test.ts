// Values that are not JSON, table-driven over the boundaries where they enter: the client's params, an event
// payload, a step's output and a step's input in the pipeline. Each is refused, non-retryably, naming the field;
// nothing is dropped or coerced on the way into history.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { KaonError, defineEvent } from '../../src/definition';
import { assertJsonValue } from '../../src/definition/json-value';
import { RunFailedError } from '../../src/client';
import * as activities from '../fixtures/failures';
import { BAD_KINDS, badValue } from '../fixtures/failures/bad-values';
import { badValues, withParams } from '../fixtures/failures/workflows';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';

/** What the error must name, per kind (the field path, and the reason). */
const EXPECT: Record<(typeof BAD_KINDS)[number], RegExp> = {
  bigint: /n is a BigInt/,
  function: /fn is a function is not JSON|fn is a function/,
  symbol: /s is a Symbol/,
  nan: /x is NaN is not JSON/,
  infinity: /x is Infinity is not JSON/,
  negInfinity: /x\[1\] is -Infinity is not JSON/,
  map: /m is a Map/,
  set: /s is a Set/,
  date: /when is a Date object/,
  circular: /self is a circular reference/,
  deep: /nests deeper than 200 levels/,
  throwingGetter: /boom has a getter that throws \(getter exploded\)/,
  classInstance: /u is an instance of URL/,
  symbolKey: /has a Symbol key/,
  bytes: /b is binary data/,
};

let env: TestEnv;
let stop: () => Promise<void>;
before(async () => {
  ({ env, stop } = await runningWorker('bad-values', { workflowsPath: path.join(ROOT, 'test/fixtures/failures/workflows.ts'), activities }));
});
after(() => stop());

const counts: Record<string, number> = {};
const refused = (boundary: string, err: unknown, kind: (typeof BAD_KINDS)[number]) => {
  const msg = err instanceof Error ? `${err.message} ${String((err as { cause?: unknown }).cause ?? '')}` : String(err);
  assert.match(msg, EXPECT[kind], `${boundary} / ${kind}: ${msg}`);
  counts[boundary] = (counts[boundary] ?? 0) + 1;
};

test('assertJsonValue accepts plain JSON (shared references included) and refuses each bad kind', () => {
  const shared = { a: 1 };
  assertJsonValue({ x: [shared, shared], s: 'é', n: -0.5, b: false, z: null, deep: [[[[1]]]] }, 'ok');
  for (const kind of BAD_KINDS) refused('assertJsonValue', catchIt(() => assertJsonValue(badValue(kind), 'v')), kind);
});

function catchIt(fn: () => void): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

test('client params and event payloads: refused before anything reaches the server', async () => {
  const ev = defineEvent('test-bad-payload', z.unknown());
  for (const kind of BAD_KINDS) {
    const began = Date.now();
    refused('client params', await env.kaon.start(withParams, badValue(kind) as never).then(() => undefined, (e: unknown) => e), kind);
    assert.ok(Date.now() - began < 1000, 'in milliseconds');
    refused('event payload', await env.kaon.emit(ev, badValue(kind)).then(() => undefined, (e: unknown) => e), kind);
  }
  const big = { rows: 'x'.repeat(1_200_000) };
  const err = await env.kaon.start(withParams, big as never).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof KaonError && /are 1\.1 MiB of JSON, over Kaon's 1 MiB limit.*To fix: store the data as an artifact/.test(err.message), String(err));
});

test("a step's output and a step's input in the pipeline: the run fails at once, naming the field", async () => {
  for (const where of ['output', 'input'] as const) {
    await Promise.all(
      BAD_KINDS.map(async (kind) => {
        const run = await env.kaon.start(badValues, { kind, where });
        const err = await run.result().then(() => undefined, (e: unknown) => e);
        assert.ok(err instanceof RunFailedError, `${where} / ${kind}: the run failed`);
        refused(`step ${where}`, err, kind);
      }),
    );
  }
});

after(() => {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  process.stdout.write(`# bad values refused: ${total} (${Object.entries(counts).map(([b, n]) => `${b} ${n}`).join(', ')})\n`);
});
