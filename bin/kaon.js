#!/usr/bin/env node
// Kaon's CLI. Runs the compiled package (dist/) when it is built and up to date; in a checkout without a build
// (or with src/ edited since the last build, or KAON_FROM_SOURCE=1) it runs the TypeScript sources through tsx.
// Either way tsx loads your pipeline and step modules when they are TypeScript (src/cli/project.ts).
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const DIST_MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');
const BUILD_STAMP = path.join(ROOT, 'dist', '.built'); // written by npm run build

/** Newest mtime (ms) of the .ts files under dir, stopping early once one is newer than `than`. */
function newerSource(dir, than) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() ? newerSource(p, than) : e.name.endsWith('.ts') && fs.statSync(p).mtimeMs > than) return true;
  }
  return false;
}

function useDist() {
  if (process.env.KAON_FROM_SOURCE === '1' || !fs.existsSync(DIST_MAIN)) return false;
  const src = path.join(ROOT, 'src');
  if (!fs.existsSync(src)) return true; // an installed package: dist only
  // A checkout: the build is only used while it is newer than every source file.
  const built = fs.existsSync(BUILD_STAMP) ? fs.statSync(BUILD_STAMP).mtimeMs : 0;
  return !newerSource(src, built);
}

let main;
if (useDist()) {
  main = require(DIST_MAIN).main;
} else {
  require('tsx/cjs');
  main = require('../src/cli/main.ts').main;
}
main().catch((err) => {
  process.stderr.write(`kaon: ${err && err.message ? err.message : String(err)}\n`);
  process.exit(1);
});
