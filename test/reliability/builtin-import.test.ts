// A pipelines module that imports a Node built-in: the worker refuses it with one sentence naming the file and
// the import, instead of webpack's stack trace.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { KaonError } from '../../src/definition';
import { bundlePipelines } from '../../src/runtime';
import { ROOT } from '../support/temporal';

test('bundling a pipelines module that imports node:fs names the file and the import, with the fix', async () => {
  const file = path.join(ROOT, 'test/fixtures/builtin-import/workflows.ts');
  const err = await bundlePipelines(file).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof KaonError, `expected a KaonError, got ${String(err)}`);
  assert.equal(err.code, 'KAON_INVALID_DEFINITION');
  assert.match(err.message, /test\/fixtures\/builtin-import\/workflows\.ts imports the Node built-in 'node:fs'/);
  assert.match(err.message, /To fix: move the code that needs 'node:fs' into a step/);
  assert.doesNotMatch(err.message, /webpack|at .*\.js:\d+/i);
});
