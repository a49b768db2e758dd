// `kaon <command>`: parse, dispatch to src/cli/commands/<verb>.ts, turn errors into one line and an exit code.
import { KaonError } from '../definition/errors';
import { flushTracing } from '../observe/otel-env';
import { commandUsage, globalUsage, parseCommandArgs } from './args';
import { escapeForEcho } from './echo';
import { checkEnvSettings, checkFlagValues } from './settings';
import { say, USAGE_ERROR, type CliIo, type CommandSpec } from './command';
import { artifactCommand } from './commands/artifact';
import { artifactsCommand } from './commands/artifacts';
import { boardCommand } from './commands/board';
import { cacheCommand } from './commands/cache';
import { cancelCommand } from './commands/cancel';
import { codecServerCommand } from './commands/codec-server';
import { demoCommand } from './commands/demo';
import { deploymentCommand } from './commands/deployment';
import { encryptionCommand } from './commands/encryption';
import { devCommand } from './commands/dev';
import { listCommand } from './commands/list';
import { resumeCommand } from './commands/resume';
import { runCommand } from './commands/run';
import { scheduleCommand } from './commands/schedule';
import { emitCommand, triggersCommand } from './commands/events';
import { statusCommand } from './commands/status';
import { workerCommand } from './commands/worker';
import { approveCommand, pauseCommand, rejectCommand, sendCommand, stepCommand, unpauseCommand } from './commands/steer';

export const COMMANDS: readonly CommandSpec[] = [
  demoCommand, devCommand, boardCommand, workerCommand, runCommand, statusCommand, listCommand, cancelCommand, resumeCommand,
  approveCommand, rejectCommand, pauseCommand, unpauseCommand, sendCommand, stepCommand, scheduleCommand, emitCommand, triggersCommand, deploymentCommand,
  artifactsCommand, artifactCommand, cacheCommand, codecServerCommand, encryptionCommand,
];

function errorLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return escapeForEcho(message.replace(/\s*\n\s*/g, ' ').trim());
}

/** Run one CLI invocation; resolves to the exit code (0 ok, 1 failed, 2 usage error, 130 interrupted). */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === 'help' || verb === '--help' || verb === '-h') {
    const topic = verb === 'help' ? rest[0] : undefined;
    const spec = topic ? COMMANDS.find((c) => c.name === topic) : undefined;
    if (topic && !spec) {
      say(io.stderr, `kaon: no command "${topic}". To fix: use one of ${COMMANDS.map((c) => c.name).join(', ')}`);
      return 2;
    }
    say(io.stdout, spec ? commandUsage(spec) : globalUsage(COMMANDS));
    return 0;
  }
  const spec = COMMANDS.find((c) => c.name === verb);
  if (!spec) {
    say(io.stderr, `kaon: no command "${verb}". To fix: use one of ${COMMANDS.map((c) => c.name).join(', ')} (kaon help lists them)`);
    return 2;
  }
  try {
    const parsed = parseCommandArgs(spec, rest);
    if (parsed.help) {
      say(io.stdout, commandUsage(spec));
      return 0;
    }
    // Settings first: a bad port or env variable is named before anything connects or starts.
    checkFlagValues(spec, parsed.values);
    checkEnvSettings(io.env);
    return await spec.run({ io, values: parsed.values, positionals: parsed.positionals });
  } catch (err) {
    if (io.signal?.aborted) {
      say(io.stderr, `kaon ${spec.name}: interrupted`);
      return 130;
    }
    say(io.stderr, `kaon ${spec.name}: ${errorLine(err)}`);
    if (io.env.KAON_DEBUG === '1' || io.env.KAON_DEBUG === 'true') say(io.stderr, err instanceof Error ? (err.stack ?? String(err)) : String(err));
    return err instanceof KaonError && err.code === USAGE_ERROR ? 2 : 1;
  }
}

/** The process entry (bin/kaon.js): real streams, signals abort the command, exit with its code. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<never> {
  const controller = new AbortController();
  let firstSignalAt = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (firstSignalAt === 0) {
      firstSignalAt = Date.now();
      controller.abort(new Error(`received ${sig}`));
      return;
    }
    // Ctrl-C under `npm run` arrives twice (the terminal's and npm's forward): only a later one means "now".
    if (Date.now() - firstSignalAt < 1000) return;
    process.stderr.write(`kaon: ${sig} again; exiting now\n`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const code = await runCli(argv, { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd(), env: process.env, signal: controller.signal });
  // Spans still buffered (a `kaon run`'s client start) go out first: process.exit skips 'beforeExit'.
  await flushTracing();
  // Native Temporal handles can keep the event loop alive after a clean shutdown; the exit code is decided.
  process.exit(code);
}
