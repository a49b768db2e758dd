// The CLI in-process: help, argument errors, project loading and params validation. Nothing here needs a
// Temporal server: bad input fails before any connection.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseParams } from '../../src/cli/params';
import { resolveProject } from '../../src/cli/project';
import { runUrl, uiBaseFor } from '../../src/cli/temporal';
import { formatResult } from '../../src/cli/watch';
import { runCliCaptured, type CliResult } from '../support/cli';
import { ROOT } from '../support/temporal';

const FIXTURE = path.join(ROOT, 'test/fixtures/cli-project');

type Result = CliResult;

const cli = (argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> => runCliCaptured(argv, { cwd: opts.cwd ?? ROOT, env: opts.env ?? {} });

/** Errors are one line, name the command, and carry a fix. */
function assertOneLineError(r: Result, code: number, ...needles: (string | RegExp)[]): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0]!, /^kaon( \w+)?: /);
  for (const n of needles) {
    if (typeof n === 'string') assert.ok(r.stderr.includes(n), `${JSON.stringify(n)} in ${r.stderr}`);
    else assert.match(r.stderr, n);
  }
}

let tmp: string;
before(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'kaon-cli-args-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('help and usage', () => {
  test('kaon / kaon help list every command', async () => {
    for (const argv of [[], ['help'], ['--help']]) {
      const r = await cli(argv);
      assert.equal(r.code, 0);
      for (const verb of ['demo', 'dev', 'worker', 'run', 'status', 'list', 'cancel']) assert.match(r.stdout, new RegExp(`^  ${verb} `, 'm'));
    }
  });

  test('kaon <cmd> --help and kaon help <cmd> print the command usage', async () => {
    const a = await cli(['run', '--help']);
    const b = await cli(['help', 'run']);
    assert.equal(a.code, 0);
    assert.equal(a.stdout, b.stdout);
    assert.match(a.stdout, /^kaon run <pipeline> \[options\]/);
    for (const opt of ['--params <json|@file>', '--run-key <key>', '--no-cache', '--wait', '--watch', '--workflows <file>']) assert.ok(a.stdout.includes(opt), opt);
    const w = await cli(['worker', '-h']);
    assert.ok(w.stdout.includes('--grace <duration>') && w.stdout.includes('--queues <a,b>'));
  });

  test('an unknown command names the known ones', async () => {
    assertOneLineError(await cli(['deploy']), 2, 'no command "deploy"', 'run, status');
    assertOneLineError(await cli(['help', 'deploy']), 2, 'no command "deploy"');
  });

  test('argument mistakes name the option and exit 2', async () => {
    assertOneLineError(await cli(['run']), 2, 'needs a <pipeline> argument', 'To fix:');
    assertOneLineError(await cli(['run', 'ml-demo', '--bogus']), 2, 'unknown option --bogus for kaon run', '--params');
    assertOneLineError(await cli(['run', 'ml-demo', '--params']), 2, 'option --params needs a value');
    assertOneLineError(await cli(['run', 'ml-demo', '--wait=yes']), 2, 'option --wait takes no value');
    assertOneLineError(await cli(['status', 'a', 'b']), 2, 'unexpected argument "b"');
    assertOneLineError(await cli(['list', '--limit', 'ten']), 2, '--limit "ten" is not a whole number');
    assertOneLineError(await cli(['dev', '--port', 'abc']), 2, '--port "abc" is not a port: expected a whole number from 0 to 65535');
  });
});

describe('kaon run: pipeline and params are checked before connecting', () => {
  test('unknown pipeline lists the known ones', async () => {
    assertOneLineError(await cli(['run', 'nope']), 1, 'no pipeline named "nope"', 'known: ml-demo', 'To fix:');
  });

  test('invalid params JSON', async () => {
    assertOneLineError(await cli(['run', 'ml-demo', '--params', '{"seed": 3,']), 1, '--params is not valid JSON', "--params '{\"seed\": 3}'");
  });

  test('params failing the schema name each field', async () => {
    const r = await cli(['run', 'ml-demo', '--params', '{"seed": "x", "rows": 5}']);
    assertOneLineError(r, 1, 'params of pipeline "ml-demo" is invalid', 'field "seed"', 'field "rows"', '>=20', 'received number 5', '[KAON_INVALID_PARAMS]');
    assert.equal(r.stdout, '', 'nothing started');
  });

  test('params from @file and file.json; a missing file is named', async () => {
    const file = path.join(tmp, 'bad.json');
    writeFileSync(file, JSON.stringify({ models: ['svm'] }));
    assertOneLineError(await cli(['run', 'ml-demo', '--params', `@${file}`]), 1, 'field "models[0]"', 'svm');
    assertOneLineError(await cli(['run', 'ml-demo', '--params', 'bad.json', '--workflows', path.join(ROOT, 'workflows/index.ts')], { cwd: tmp }), 1, 'field "models[0]"');
    assertOneLineError(await cli(['run', 'ml-demo', '--params', '@nowhere.json']), 1, `--params file ${path.join(ROOT, 'nowhere.json')} does not exist`);
  });

  test('parseParams: inline, @file, file.json, default {}', () => {
    const file = path.join(tmp, 'p.json');
    writeFileSync(file, '{"seed": 9}');
    assert.deepEqual(parseParams(undefined, tmp), {});
    assert.deepEqual(parseParams(' {"seed": 1} ', tmp), { seed: 1 });
    assert.deepEqual(parseParams('@p.json', tmp), { seed: 9 });
    assert.deepEqual(parseParams('p.json', tmp), { seed: 9 });
    assert.equal(parseParams('42', tmp), 42);
  });

  test('KAON_DEBUG=1 adds the stack trace', async () => {
    const r = await cli(['run', 'nope'], { env: { KAON_DEBUG: '1' } });
    assert.equal(r.code, 1);
    assert.ok(r.stderr.split('\n').length > 2);
    assert.match(r.stderr, /\n\s+at /);
  });
});

describe('project loading', () => {
  test('package.json "kaon" block points at the modules and the demo', () => {
    const p = resolveProject(FIXTURE);
    assert.equal(p.root, FIXTURE);
    assert.equal(p.workflows, path.join(FIXTURE, 'pipelines.ts'));
    assert.equal(p.activities, path.join(FIXTURE, 'steps.ts'));
    assert.deepEqual(p.demo, { pipeline: 'cli-slow', params: { ms: 300 } });
    // Flags win, relative to cwd.
    const q = resolveProject(FIXTURE, { workflows: 'other.ts' });
    assert.equal(q.workflows, path.join(FIXTURE, 'other.ts'));
    // Conventions when there is no block.
    const r = resolveProject(ROOT);
    assert.equal(r.workflows, path.join(ROOT, 'workflows/index.ts'));
    assert.deepEqual(r.demo, { pipeline: 'retrain-recommender', params: {} });
  });

  test('pipelines are found through the block (and by flag)', async () => {
    assertOneLineError(await cli(['run', 'ml-demo'], { cwd: FIXTURE }), 1, 'known: cli-slow', path.join(FIXTURE, 'pipelines.ts'));
    assertOneLineError(await cli(['run', 'cli-slow', '--params', '{"ms": -1}'], { cwd: FIXTURE }), 1, 'field "ms"');
    assertOneLineError(await cli(['run', 'cli-slow', '--params', '{"ms": "x"}', '--workflows', 'test/fixtures/cli-project/pipelines.ts']), 1, 'field "ms"');
  });

  test('a bad "kaon" block or a missing module says what to fix', async () => {
    const proj = path.join(tmp, 'proj');
    mkdirSync(proj, { recursive: true });
    writeFileSync(path.join(proj, 'package.json'), JSON.stringify({ name: 'x', kaon: { workflows: 3 } }));
    assertOneLineError(await cli(['run', 'a'], { cwd: proj }), 1, `the "kaon" block of ${path.join(proj, 'package.json')} is invalid`, 'field "workflows"');
    writeFileSync(path.join(proj, 'package.json'), JSON.stringify({ name: 'x' }));
    assertOneLineError(await cli(['run', 'a'], { cwd: proj }), 1, `no workflows module at ${path.join(proj, 'workflows/index.ts')}`, '--workflows <file>');
    writeFileSync(path.join(proj, 'empty.ts'), 'export const x = 1;\n');
    assertOneLineError(await cli(['run', 'a', '--workflows', 'empty.ts'], { cwd: proj }), 1, 'exports no pipelines', 'definePipeline');
    assertOneLineError(await cli(['worker', '--grace', 'soon']), 2, '--grace "soon" is not a duration', '--grace 30s');
    // kaon demo checks its pipeline and params before starting anything.
    writeFileSync(path.join(proj, 'package.json'), JSON.stringify({ name: 'x', kaon: { workflows: path.join(FIXTURE, 'pipelines.ts'), demo: { pipeline: 'cli-slow', params: { ms: 'soon' } } } }));
    assertOneLineError(await cli(['demo'], { cwd: proj }), 1, 'params of the demo pipeline "cli-slow" is invalid', 'field "ms"', '"kaon": { "demo"');
    writeFileSync(path.join(proj, 'package.json'), JSON.stringify({ name: 'x', kaon: { workflows: path.join(FIXTURE, 'pipelines.ts') } }));
    assertOneLineError(await cli(['demo'], { cwd: proj }), 1, 'no pipeline named "retrain-recommender"', 'known: cli-slow');
  });
});

describe('connection and output helpers', () => {
  test('Web UI links: KAON_UI_URL, the local dev server, or none', () => {
    assert.equal(uiBaseFor('127.0.0.1:7233', {}), 'http://127.0.0.1:8233');
    assert.equal(uiBaseFor('localhost:7233', {}), 'http://127.0.0.1:8233');
    assert.equal(uiBaseFor('127.0.0.1:17300', { KAON_DEV_PORT: '17300', KAON_DEV_UI_PORT: '17301' }), 'http://127.0.0.1:17301');
    assert.equal(uiBaseFor('temporal.prod:7233', {}), undefined);
    assert.equal(uiBaseFor('temporal.prod:7233', { KAON_UI_URL: 'https://ui.example/' }), 'https://ui.example');
    assert.equal(runUrl({ address: 'a', namespace: 'ml team', ui: 'http://u' }, 'ml-demo-1'), 'http://u/namespaces/ml%20team/workflows/ml-demo-1');
    assert.equal(runUrl({ address: 'a', namespace: 'default', ui: undefined }, 'x'), undefined);
  });

  test('results: a `table` with its scalar fields, else pretty JSON', () => {
    assert.equal(formatResult({ table: 'a  b\n1  2', best: 'knn', n: 3, metrics: { x: 1 } }), 'a  b\n1  2\nbest: knn\nn: 3');
    assert.equal(formatResult({ waited: 5 }), '{\n  "waited": 5\n}');
  });

  test('an unreachable server is one line with the address and the fix', async () => {
    const saved = process.env.TEMPORAL_ADDRESS;
    process.env.TEMPORAL_ADDRESS = '127.0.0.1:1';
    try {
      assertOneLineError(await cli(['status', 'some-run']), 1, 'cannot reach Temporal at 127.0.0.1:1', 'kaon dev');
    } finally {
      if (saved === undefined) delete process.env.TEMPORAL_ADDRESS;
      else process.env.TEMPORAL_ADDRESS = saved;
    }
  });
});
