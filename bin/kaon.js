#!/usr/bin/env node
// Kaon's CLI. Loads TypeScript (Kaon's own sources and your pipelines) through tsx.
require('tsx/cjs');
require('../src/cli/main.ts').main().catch((err) => {
  process.stderr.write(`kaon: ${err && err.message ? err.message : String(err)}\n`);
  process.exit(1);
});
