// Harness for the cross-process race test: builds (or reuses) a Python env and prints its python path.
import { ensurePythonEnv } from '../../../src/execution';

const [home, ...requirements] = process.argv.slice(2);
ensurePythonEnv(requirements, { home: home!, say: () => undefined }).then(
  (p) => process.stdout.write(`${p}\n`),
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  },
);
