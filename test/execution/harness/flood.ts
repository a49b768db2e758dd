// Harness for the memory test: runs flood.py printing N MB through runProcess with a counting logger, then prints
// its own peak RSS. Run in its own process so the measurement is not disturbed by the test runner.
import path from 'node:path';
import { runProcess } from '../../../src/execution';

async function main(): Promise<void> {
  const root = path.resolve(__dirname, '..', '..', '..');
  const mb = Number(process.argv[2] ?? '0');
  let longest = 0;
  let seen = 0;
  const count = (m: string) => {
    seen++;
    longest = Math.max(longest, m.length);
  };
  const started = Date.now();
  const res = await runProcess({
    argv: ['python3', path.join(root, 'test/fixtures/scripts/flood.py'), String(mb)],
    env: { ...process.env, PYTHONPATH: path.join(root, 'python') },
    log: { debug: count, info: count, warn: count, error: count },
  });
  const tail = res.tail;
  process.stdout.write(
    `${JSON.stringify({
      logBytes: res.logBytes,
      logLines: res.logLines,
      logged: seen,
      longest,
      tailLines: tail.length,
      tailBytes: tail.reduce((n, t) => n + Buffer.byteLength(t.line), 0),
      output: res.output,
      seconds: (Date.now() - started) / 1000,
      maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    })}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
