// Invariant 5: kaon/client is thin. Importing it (by its package name) loads no @temporalio/worker module.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

const ROOT = path.resolve(__dirname, '..');

function loadedModules(specifier: string): string[] {
  const script = `require(${JSON.stringify(specifier)}); process.stdout.write(JSON.stringify(Object.keys(require.cache)));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

test('importing kaon/client loads @temporalio/client but no worker module', () => {
  const mods = loadedModules('kaon/client');
  assert.ok(mods.some((m) => m.includes(`${path.sep}@temporalio${path.sep}client${path.sep}`)), 'sanity: the client itself was loaded');
  const forbidden = mods.filter((m) => /@temporalio[\\/](worker|core-bridge|testing)[\\/]/.test(m) || /[\\/]src[\\/](runtime|execution)[\\/]/.test(m));
  assert.deepEqual(forbidden, []);
});

test('the control check catches a worker import (kaon/worker does load it)', () => {
  const mods = loadedModules('kaon/worker');
  assert.ok(mods.some((m) => /@temporalio[\\/]worker[\\/]/.test(m)));
});
