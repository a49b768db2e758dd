// The CLI's settings from flags and KAON_* environment variables, validated in one place: a bad value is an
// error that names the setting it came from (`--port` or `KAON_DEV_PORT`), never a silent default or a raw
// EADDRINUSE/RangeError later on.
import { toMs } from '../definition/duration';
import { KaonError } from '../definition/errors';
import { MAX_QUEUE } from '../definition/internal/ids';
import { USAGE_ERROR, str, type CommandSpec, type OptionSpec, type OptionValues } from './command';

type Kind = 'port' | 'port0' | 'listen' | 'boolean' | 'duration' | 'queue' | 'url' | 'host' | 'logLevel';

/** Every KAON_* variable the CLI, worker or runtime reads that has a format to check. */
export const ENV_SETTINGS: Readonly<Record<string, Kind>> = {
  KAON_DEV_PORT: 'port',
  KAON_DEV_UI_PORT: 'port',
  KAON_BOARD_PORT: 'port0',
  KAON_BOARD_HOST: 'host',
  KAON_METRICS: 'listen',
  KAON_LOG_LEVEL: 'logLevel',
  KAON_DEBUG: 'boolean',
  KAON_DEMO_KEEP: 'boolean',
  KAON_KEEP_WORKDIR: 'boolean',
  KAON_TASK_QUEUE: 'queue',
  KAON_UI_URL: 'url',
  KAON_S3_ENDPOINT: 'url',
};

const LOG_LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

function settingError(setting: string, value: string, what: string, fix: string): KaonError {
  return new KaonError({ code: USAGE_ERROR, what: `${setting} ${JSON.stringify(value)} ${what}`, fix });
}

/** Check one value of a kind; returns the parsed number for ports. `setting` is what the error names. */
export function checkSetting(setting: string, kind: Kind, value: string): number | undefined {
  const example = setting.startsWith('--') ? `${setting} ` : `${setting}=`;
  switch (kind) {
    case 'port':
    case 'port0': {
      const min = kind === 'port0' ? 0 : 1;
      const n = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
      if (!Number.isInteger(n) || n < min || n > 65535) {
        throw settingError(setting, value, `is not a port: expected a whole number from ${min} to 65535`, `pass e.g. ${example}${kind === 'port0' ? '8377 (0 = any free port)' : '7233'}`);
      }
      return n;
    }
    case 'listen': {
      const m = /^(?:(.*):)?(\d+)$/.exec(value.trim());
      const n = m ? Number(m[2]) : Number.NaN;
      if (!m || n > 65535) throw settingError(setting, value, 'is not a listen address: expected [host:]port with a port up to 65535', `pass e.g. ${example}9464 or ${example}0.0.0.0:9464`);
      return n;
    }
    case 'boolean':
      if (!['0', '1', 'true', 'false', ''].includes(value.trim().toLowerCase())) throw settingError(setting, value, 'is not a boolean', `use ${example}1 (on) or ${example}0 (off)`);
      return undefined;
    case 'duration':
      if (!/^\d+$/.test(value.trim())) {
        try {
          toMs(value, setting);
        } catch {
          throw settingError(setting, value, 'is not a duration', `pass e.g. ${example}30s (a number with ms, s, m, h or d)`);
        }
      }
      return undefined;
    case 'queue':
      if (!new RegExp(`^[A-Za-z0-9_.-]{1,${MAX_QUEUE}}$`).test(value)) throw settingError(setting, value, `is not a task queue name`, `use 1-${MAX_QUEUE} letters, digits, '_', '-' or '.', e.g. ${example}kaon-gpu`);
      return undefined;
    case 'url':
      if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) throw settingError(setting, value, 'is not an http(s) URL', `pass e.g. ${example}http://127.0.0.1:9000`);
      return undefined;
    case 'host':
      if (!/^[A-Za-z0-9.:[\]-]{1,253}$/.test(value)) throw settingError(setting, value, 'is not a host name or IP address', `pass e.g. ${example}127.0.0.1 or ${example}0.0.0.0`);
      return undefined;
    case 'logLevel':
      if (!LOG_LEVELS.includes(value.toUpperCase())) throw settingError(setting, value, 'is not a log level', `use one of ${LOG_LEVELS.join(', ')}`);
      return undefined;
  }
}

/** Check every set KAON_* variable of ENV_SETTINGS (an empty value counts as unset). Runs before any command. */
export function checkEnvSettings(env: NodeJS.ProcessEnv): void {
  for (const [name, kind] of Object.entries(ENV_SETTINGS)) {
    const v = env[name];
    if (v !== undefined && v !== '') checkSetting(name, kind, v);
  }
}

/** A port from `--<flag>`, else `$<envName>`, else `fallback`; the error names whichever was given. */
export function portSetting(values: OptionValues, flag: string, env: NodeJS.ProcessEnv, envName: string, fallback: number, allowZero = false): number {
  const fromFlag = str(values, flag);
  const kind = allowZero ? 'port0' : 'port';
  if (fromFlag !== undefined) return checkSetting(`--${flag}`, kind, fromFlag)!;
  const fromEnv = env[envName];
  if (fromEnv !== undefined && fromEnv !== '') return checkSetting(envName, kind, fromEnv)!;
  return fallback;
}

/** How a flag's value is checked, from its usage placeholder (`--port <port>`) or its name (`--task-queue`). */
function flagKind(name: string, o: OptionSpec): Kind | undefined {
  if (name === 'task-queue') return 'queue';
  const byPlaceholder: Partial<Record<string, Kind>> = { port: 'port0', duration: 'duration', host: 'host', url: 'url', '[host]:port': 'listen' };
  return o.value ? byPlaceholder[o.value] : undefined;
}

/** Check the flags of one invocation whose format is known (ports, durations, hosts, URLs, task queues). */
export function checkFlagValues(spec: CommandSpec, values: OptionValues): void {
  for (const [name, o] of Object.entries(spec.options)) {
    const kind = flagKind(name, o);
    const v = values[name];
    if (kind && typeof v === 'string') checkSetting(`--${name}`, kind, v);
    // `--queues a,b`: each one a task queue name.
    if (name === 'queues') for (const q of [v].flat()) for (const part of typeof q === 'string' ? q.split(',') : []) if (part.trim()) checkSetting('--queues', 'queue', part.trim());
  }
}
