// Python environments: built on first use from PyPI, cached, race-safe; broken requirements fail clearly.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promisify } from 'node:util';
import { z } from 'zod';
import { ErrorCode, KaonError } from '../../src/definition/errors';
import { defineStep, python } from '../../src/definition/step';
import { createRunnerExecutors, ensurePythonEnv } from '../../src/execution';
import { fakeContext } from './fake-context';

const ROOT = path.resolve(__dirname, '..', '..');
const SIX = 'six==1.16.0';

describe('python environments', () => {
  let home: string;
  before(() => {
    home = mkdtempSync(path.join(os.tmpdir(), 'kaon-venvs-test-'));
  });
  after(() => rmSync(home, { recursive: true, force: true }));

  test('no requirements: the base interpreter, nothing built', async () => {
    const exe = await ensurePythonEnv([], { home });
    assert.ok(path.isAbsolute(exe) && existsSync(exe));
    assert.equal(existsSync(path.join(home, 'venvs')), false);
  });

  test('a python() step with requirements builds a cached venv on first use and reuses it', { timeout: 300_000 }, async () => {
    const def = defineStep({
      name: 'usesSix',
      version: 1,
      input: z.object({ x: z.number() }),
      output: z.object({ six: z.string(), prefix: z.string(), x: z.number() }),
      run: python('test/fixtures/scripts/uses_six.py', { requirements: [SIX] }),
    });
    const ctx = fakeContext();
    const ex = createRunnerExecutors({ root: ROOT, pythonEnv: { home } });
    const t0 = Date.now();
    const out = (await ex.python(def, { x: 1 }, ctx)) as { six: string; prefix: string };
    const firstMs = Date.now() - t0;
    assert.equal(out.six, '1.16.0');
    const venvs = readdirSync(path.join(home, 'venvs'));
    assert.equal(venvs.length, 1, `exactly one env and no temp leftovers: ${venvs.join(', ')}`);
    assert.match(venvs[0]!, /^[0-9a-f]{16}$/);
    assert.equal(out.prefix, path.join(home, 'venvs', venvs[0]!));
    assert.ok(ctx.logs.some((l) => l.level === 'info' && /building Python environment for \[six==1\.16\.0\]/.test(l.message)), 'says it is building');
    assert.deepEqual(JSON.parse(readFileSync(path.join(out.prefix, 'kaon-env.json'), 'utf8')).requirements, [SIX]);
    // Scripts in bin/ point at the final folder, not the temp folder the env was built in.
    const pipShebang = readFileSync(path.join(out.prefix, 'bin', 'pip'), 'utf8').split('\n')[0]!;
    assert.ok(pipShebang.startsWith(`#!${path.join(out.prefix, 'bin', 'python')}`), pipShebang);

    const t1 = Date.now();
    const again = (await ex.python(def, { x: 2 }, fakeContext())) as { prefix: string; x: number };
    const secondMs = Date.now() - t1;
    assert.equal(again.prefix, out.prefix);
    assert.equal(again.x, 2);
    process.stderr.write(`# venv: first run ${firstMs} ms (build), second ${secondMs} ms (cached)\n`);
    assert.ok(secondMs < 3000, `cached run took ${secondMs} ms`);
    // Requirement order and duplicates do not matter; concurrent callers in one process share one answer.
    const [a, b] = await Promise.all([ensurePythonEnv([SIX, SIX], { home }), ensurePythonEnv([` ${SIX} `], { home })]);
    assert.equal(a, path.join(out.prefix, 'bin', 'python'));
    assert.equal(b, a);
  });

  test('two processes building the same env at once both end up on one complete env', { timeout: 300_000 }, async () => {
    const raceHome = mkdtempSync(path.join(os.tmpdir(), 'kaon-venvs-race-'));
    try {
      const harness = path.join(__dirname, 'harness', 'ensure-env.ts');
      const run = () => promisify(execFile)(process.execPath, ['--import', 'tsx', harness, raceHome, SIX], { cwd: ROOT });
      const [r1, r2] = await Promise.all([run(), run()]);
      const p1 = r1.stdout.trim();
      assert.equal(p1, r2.stdout.trim());
      assert.deepEqual(readdirSync(path.join(raceHome, 'venvs')).filter((n) => n.startsWith('.')), [], 'the loser cleaned up its temp folder');
      const { stdout } = await promisify(execFile)(p1, ['-c', 'import six; print(six.__version__)']);
      assert.equal(stdout.trim(), '1.16.0');
    } finally {
      rmSync(raceHome, { recursive: true, force: true });
    }
  });

  test('a broken requirement fails non-retryably, quoting pip and saying how to fix it', { timeout: 300_000 }, async () => {
    const def = defineStep({ name: 'broken', version: 1, input: z.object({}), output: z.any(), run: python('test/fixtures/scripts/uses_six.py', { requirements: ['definitely-not-a-package-kaon==1.0'] }) });
    let err: unknown;
    try {
      await createRunnerExecutors({ root: ROOT, pythonEnv: { home } }).python(def, {}, fakeContext());
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof KaonError, String(err));
    assert.equal(err.code, ErrorCode.invalidDefinition);
    assert.equal(err.retryable, false);
    assert.match(err.message, /pip could not install the Python requirements \[definitely-not-a-package-kaon==1\.0\]/);
    assert.match(err.message, /ERROR: No matching distribution found for definitely-not-a-package-kaon==1\.0/);
    assert.match(err.fix, /correct the requirement names\/versions/);
    assert.deepEqual(readdirSync(path.join(home, 'venvs')).filter((n) => n.startsWith('.')), [], 'no half-built env is left');
  });

  test('a requirement that is a pip option is refused before anything runs', async () => {
    await assert.rejects(ensurePythonEnv(['--index-url=http://evil.example/simple', SIX], { home }), (e: unknown) => e instanceof KaonError && e.code === ErrorCode.invalidDefinition && /is not a requirement specifier/.test(e.message));
  });
});
