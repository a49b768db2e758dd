// The CLI in-process, its output captured: for tests of arguments and messages that need no process of their own.
import { runCli } from '../../src/cli/main';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCliCaptured(argv: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    cwd: opts.cwd,
    env: opts.env,
  });
  return { code, stdout, stderr };
}
