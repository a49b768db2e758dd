// Argument parsing (node:util parseArgs) and usage text, with errors that name the flag and the fix.
import { parseArgs } from 'node:util';
import { usageError, type CommandSpec, type OptionSpec, type OptionValues } from './command';

export const HELP_OPTION: OptionSpec = { type: 'boolean', short: 'h', description: 'show this help' };

export function parseCommandArgs(spec: CommandSpec, argv: readonly string[]): { values: OptionValues; positionals: string[]; help: boolean } {
  const options = Object.fromEntries(
    Object.entries({ ...spec.options, help: HELP_OPTION }).map(([name, o]) => [
      name,
      { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) },
    ]),
  );
  let parsed: { values: OptionValues; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (err) {
    throw usageError(spec.name, describeParseError(err, spec));
  }
  if (parsed.values.help === true) return { ...parsed, help: true };
  const args = spec.args ?? [];
  const missing = args.find((a, i) => a.required && parsed.positionals[i] === undefined);
  if (missing) {
    throw usageError(spec.name, `kaon ${spec.name} needs ${article(missing.name)} <${missing.name}> argument (${missing.description})`, `run \`kaon ${spec.name} ${args.map((a) => (a.required ? `<${a.name}>` : `[${a.name}]`)).join(' ')}\`; see \`kaon ${spec.name} --help\``);
  }
  if (parsed.positionals.length > args.length) {
    const extra = parsed.positionals.slice(args.length);
    throw usageError(spec.name, `unexpected argument${extra.length > 1 ? 's' : ''} ${extra.map((e) => JSON.stringify(e)).join(' ')} for kaon ${spec.name}`, `quote values that contain spaces (e.g. --params '{"a": 1}'); see \`kaon ${spec.name} --help\``);
  }
  return { ...parsed, help: false };
}

function article(word: string): string {
  return /^[aeiou]/i.test(word) ? 'an' : 'a';
}

function describeParseError(err: unknown, spec: CommandSpec): string {
  const e = err as { code?: string; message?: string };
  const option = /'(-[^']*)'/.exec(e.message ?? '')?.[1];
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const known = Object.keys(spec.options).map((o) => `--${o}`).join(', ');
    return `unknown option ${option ?? ''} for kaon ${spec.name}${known ? ` (known: ${known})` : ''}`;
  }
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const name = /--([\w-]+)/.exec(option ?? '')?.[1] ?? '';
    const o = spec.options[name];
    return o?.type === 'string' ? `option --${name} needs a value (--${name} <${o.value ?? 'value'}>)` : `option --${name} takes no value`;
  }
  return `${(e.message ?? String(err)).split('\n')[0]}`;
}

export function commandUsage(spec: CommandSpec): string {
  const args = (spec.args ?? []).map((a) => (a.required ? `<${a.name}>` : `[${a.name}]`)).join(' ');
  const lines = [`kaon ${spec.name}${args ? ` ${args}` : ''}${Object.keys(spec.options).length ? ' [options]' : ''}`, '', `  ${spec.summary}`];
  if (spec.args?.length) {
    lines.push('', 'Arguments:');
    for (const a of spec.args) lines.push(`  ${`<${a.name}>`.padEnd(24)} ${a.description}`);
  }
  const opts = Object.entries({ ...spec.options, help: HELP_OPTION });
  lines.push('', 'Options:');
  for (const [name, o] of opts) {
    const short = o.short ? `-${o.short}, ` : '';
    const left = `${short}--${name}${o.type === 'string' ? ` <${o.value ?? 'value'}>` : ''}`;
    lines.push(`  ${left.padEnd(24)} ${o.description}`);
  }
  if (spec.notes?.length) lines.push('', ...spec.notes);
  return lines.join('\n');
}

export function globalUsage(commands: readonly CommandSpec[]): string {
  return [
    'kaon — ML pipelines as durable Temporal workflows.',
    '',
    'Usage: kaon <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    `  ${'help'.padEnd(10)} show help for a command: kaon help <command>`,
    '',
    'Connection: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE',
    '(Temporal envconfig); default 127.0.0.1:7233. Task queue: --task-queue or KAON_TASK_QUEUE (default kaon).',
    'KAON_DEBUG=1 prints stack traces with errors.',
  ].join('\n');
}
