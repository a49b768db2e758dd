// Invariant 5: kaon/client is thin. Importing it (by its package name) loads no @temporalio/worker module.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

const ROOT = path.resolve(__dirname, '..');

function loadedModules(specifier: string, then = '', env: NodeJS.ProcessEnv = process.env): string[] {
  const script = `(async () => { const m = require(${JSON.stringify(specifier)}); ${then}; process.stdout.write(JSON.stringify(Object.keys(require.cache))); })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, encoding: 'utf8', env });
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

test('with tracing configured, kaon/client loads the OTel SDK only on connect, and still no worker module', () => {
  const env = { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' };
  const otel = (mods: string[]) => mods.filter((m) => /@opentelemetry[\\/]sdk-trace-base[\\/]/.test(m));
  assert.deepEqual(otel(loadedModules('kaon/client', '', env)), [], 'importing it loads no OTel SDK');
  // A lazy connection: connect() builds the client (and its tracing interceptor) without reaching a server.
  const mods = loadedModules('kaon/client', "const { Connection } = require('@temporalio/client'); await m.connect({ connection: Connection.lazy({ address: '127.0.0.1:9' }) })", env);
  assert.ok(otel(mods).length > 0, 'connect() loaded the OTel SDK for the client interceptor');
  assert.deepEqual(mods.filter((m) => /@temporalio[\\/](worker|core-bridge|testing)[\\/]/.test(m) || /[\\/]src[\\/](runtime|execution)[\\/]/.test(m)), []);
});
