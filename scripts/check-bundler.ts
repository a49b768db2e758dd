// Issue 21: check Kaon's workflow bundles under another webpack release than the lockfile's, as a user's fresh
// `npm install` may resolve. Installs webpack@<version> into a temp folder, makes @temporalio/worker's bundler load
// it, bundles test/fixtures/zod-formats (and the shipped workflows), and runs the zod-formats pipeline on a real
// dev server with that bundle. Too slow for `npm test` (an npm install from the registry): run it by hand or in CI.
//
//   npx tsx scripts/check-bundler.ts            # webpack 5.113.0, the release that compiled z.iso.date to z.date
//   npx tsx scripts/check-bundler.ts 5.114.0    # any other release
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import Module from 'node:module';
import os from 'node:os';
import path from 'node:path';

const version = process.argv[2] ?? '5.113.0';
const ROOT = path.resolve(__dirname, '..');

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `kaon-webpack-${version}-`));
  try {
    console.log(`check-bundler: installing webpack@${version} into ${dir} …`);
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--no-save', '--prefix', dir, `webpack@${version}`], { stdio: 'inherit' });
    redirectWebpack(dir);
    const resolved = require.resolve('webpack/package.json', { paths: [require.resolve('@temporalio/worker')] });
    const got = (JSON.parse(readFileSync(resolved, 'utf8')) as { version: string }).version;
    if (got !== version) throw new Error(`@temporalio/worker resolves webpack ${got} (${resolved}), not ${version}`);

    // Imported after the redirect, so Temporal's bundler loads the webpack installed above.
    const { bundlePipelines } = await import('../src/runtime/bundle');
    const { testEnv } = await import('../test/support/temporal');
    const { zodFormats } = await import('../test/fixtures/zod-formats/workflows');

    let t0 = performance.now();
    await bundlePipelines(path.join(ROOT, 'workflows/index.ts'));
    console.log(`check-bundler: workflows/index.ts bundled and probed with webpack ${got} in ${Math.round(performance.now() - t0)} ms`);
    t0 = performance.now();
    const workflowBundle = await bundlePipelines(path.join(ROOT, 'test/fixtures/zod-formats/workflows.ts'));
    console.log(`check-bundler: test/fixtures/zod-formats bundled and probed in ${Math.round(performance.now() - t0)} ms`);

    const env = await testEnv('check-bundler');
    try {
      const worker = await env.worker({ workflowsPath: path.join(ROOT, 'test/fixtures/zod-formats/workflows.ts'), workflowBundle, activities: {} });
      const out = await worker.runUntil(async () => {
        const run = await env.kaon.start(zodFormats, { date: '2026-11-21', at: '2026-11-21T08:30:00Z', contact: 'ada@example.com', site: 'https://example.com/a', id: '123e4567-e89b-42d3-a456-426614174000' });
        return run.result();
      });
      const bad = [...out.failures, ...Object.entries(out.own).filter(([, ok]) => !ok).map(([k]) => `own ${k}`)];
      if (bad.length) throw new Error(`inside the sandbox, with webpack ${got}: ${bad.join('; ')}`);
      console.log(`check-bundler: OK: ${out.cases} format schemas and the pipeline's own z.iso/email/url/uuid checks pass inside the sandbox with webpack ${got}`);
    } finally {
      await env.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Resolve `webpack` (and its subpaths) from `prefix`, whoever asks: Temporal's bundler requires it by name. */
function redirectWebpack(prefix: string): void {
  const mod = Module as unknown as { _resolveFilename(request: string, parent: unknown, isMain?: boolean, options?: { paths: string[] }): string };
  const original = mod._resolveFilename.bind(mod);
  mod._resolveFilename = (request, parent, isMain, options) =>
    request === 'webpack' || request.startsWith('webpack/') ? original(request, parent, isMain, { paths: [prefix] }) : original(request, parent, isMain, options);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`check-bundler: FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
