// Issue 21: workflow bundles keep zod's format schemas intact whatever webpack a user's install resolves.
// webpack 5.113.0's SideEffectsFlagPlugin rewrote `z.iso.date` to `z.date` (the same-named top-level export), so
// `z.iso.date().safeParse('2026-11-21')` was false inside pipelines. Kaon bundles without that rewriting and checks
// a probe at bundle time; here the formats run inside a real workflow on a real server, and a miscompiled probe is
// refused with a clear error. Other webpack releases: scripts/check-bundler.ts.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { KaonError } from '../../src/definition';
import { checkBundle } from '../../src/runtime/bundle';
import { ROOT, runningWorker, type TestEnv } from '../support/temporal';
import { zodFormats } from '../fixtures/zod-formats/workflows';

let env: TestEnv;
let stop: () => Promise<void>;
before(async () => {
  ({ env, stop } = await runningWorker('zod-formats', { workflowsPath: path.join(ROOT, 'test/fixtures/zod-formats/workflows.ts'), activities: {} }));
});
after(() => stop());

test("zod's format schemas (z.iso.*, z.email, z.url, z.uuid, …) validate correctly inside the workflow sandbox", async () => {
  const params = { date: '2026-11-21', at: '2026-11-21T08:30:00Z', contact: 'ada@example.com', site: 'https://example.com/a', id: '123e4567-e89b-42d3-a456-426614174000' };
  const run = await env.kaon.start(zodFormats, params);
  const out = await run.result();
  assert.deepEqual(out.failures, []);
  assert.ok(out.cases >= 10, `expected the probe to check at least 10 formats, got ${out.cases}`);
  assert.deepEqual(out.own, { date: true, dateIsNotDateObject: true, time: true, duration: true, email: true, url: true, uuid: true });
});

test('a bundle whose probe finds a miscompiled format is refused, naming the format, webpack and the fix', () => {
  // A stand-in bundle with the shape Temporal's bundler emits (modules cached in the worker-provided
  // __webpack_module_cache__), whose probe reports what webpack 5.113.0 produced.
  const code = [
    'var __TEMPORAL__ = { importInterceptors: () => {',
    '  __webpack_module_cache__["./src/workflow/bundle-probe.ts"] = { exports: { formatFailures: () => [\'z.iso.date(): refused "2026-11-21"\'] } };',
    '} };',
  ].join('\n');
  const err = (() => {
    try {
      checkBundle(code, path.join(ROOT, 'workflows/index.ts'));
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  assert.ok(err instanceof KaonError, `expected a KaonError, got ${String(err)}`);
  assert.equal(err.code, 'KAON_CONFIG');
  assert.match(err.message, /workflow bundle of workflows\/index\.ts miscompiles zod's format schemas \(z\.iso\.date\(\): refused "2026-11-21"\)/);
  assert.match(err.message, /bundled by webpack \d+\.\d+\.\d+ \(.*webpack\) with zod \d+\.\d+\.\d+/);
  assert.match(err.message, /To fix: install the webpack version Kaon's lockfile pins/);
});
