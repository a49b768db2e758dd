// The README's "Write your first pipeline" is tested line by line: each code block must be the file it names,
// and its commands run for real (kaon dev on free ports + the client script) and print what the README says.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { freePort } from '../src/runtime/dev-server';
import { ensureTemporalCli } from '../src/runtime/temporal-cli';
import { CliProcess, cliEnv } from './cli/cli-process';
import { ROOT } from './support/temporal';

const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

function blockAfter(marker: string): { lang: string; body: string } {
  const re = new RegExp(`${marker.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n\`\`\`(\\w*)\\n([\\s\\S]*?)\`\`\`\\n`);
  const m = re.exec(readme);
  assert.ok(m, `README has a code block after ${marker}`);
  return { lang: m[1]!, body: m[2]! };
}

test('every code block of "Write your first pipeline" is the file it names', () => {
  const files = [...readme.matchAll(/<!-- file: (\S+) -->/g)].map((m) => m[1]!);
  assert.ok(files.length >= 6, `found ${files.length} file blocks`);
  for (const file of files) {
    assert.equal(blockAfter(`<!-- file: ${file} -->`).body, readFileSync(path.join(ROOT, file), 'utf8'), `${file} matches the README`);
  }
});

test('the README commands run the first pipeline and print the README output', async () => {
  const commands = blockAfter('<!-- commands -->').body.trim().split('\n').map((l) => l.replace(/\s+#.*$/, '').trim());
  assert.equal(commands.length, 2);
  const [dev, client] = commands as [string, string];
  assert.match(dev, /^npm run kaon -- dev /);
  assert.match(client, /^npx tsx /);
  const expected = blockAfter('<!-- run-output -->').body.trim();

  const [port, uiPort] = [await freePort(), await freePort()];
  const home = mkdtempSync(path.join(ROOT, '.kaon', 'readme-home-'));
  const env = cliEnv({ KAON_DEV_PORT: String(port), KAON_DEV_UI_PORT: String(uiPort), KAON_HOME: home, TEMPORAL_CLI: ensureTemporalCli(), KAON_TASK_QUEUE: undefined, TEMPORAL_ADDRESS: undefined });
  // `npm run kaon -- <args>` is `node bin/kaon.js <args>` (package.json scripts.kaon).
  const server = new CliProcess(dev.replace(/^npm run kaon -- /, '').split(/\s+/), { env });
  try {
    await server.waitFor(/ready/, 120_000);
    const [cmd, ...args] = client.replace(/^npx tsx /, '').split(/\s+/);
    const r = spawnSync(process.execPath, ['--import', 'tsx', cmd!, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...env, TEMPORAL_ADDRESS: `127.0.0.1:${port}` }, timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), expected);
  } finally {
    server.child.kill('SIGINT');
    await server.exited;
    rmSync(home, { recursive: true, force: true });
  }
});
