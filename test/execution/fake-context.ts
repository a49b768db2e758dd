// A StepContext without Temporal: records logs and heartbeats, cancels through an AbortController.
import { readFileSync } from 'node:fs';
import type { StepContext, StepLogger } from '../../src/execution';
import { createStepRecord, type StepRecord } from '../../src/execution/step-record';

export interface FakeContext extends StepContext {
  logs: { level: string; message: string; meta?: Record<string, unknown> }[];
  heartbeats: unknown[];
  controller: AbortController;
  /** What the step logged with ctx.metrics and ctx.registerModel. */
  record: StepRecord;
}

export function fakeContext(key = 'step[test]'): FakeContext {
  const logs: FakeContext['logs'] = [];
  const heartbeats: unknown[] = [];
  const controller = new AbortController();
  const at = (level: string) => (message: string, meta?: Record<string, unknown>) => {
    logs.push({ level, message, ...(meta ? { meta } : {}) });
  };
  const log: StepLogger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  const record = createStepRecord(`fake step (key ${key})`);
  return {
    key,
    pipeline: 'test-pipeline',
    runId: 'run-1',
    attempt: 1,
    log,
    signal: controller.signal,
    heartbeat: (d?: unknown) => void heartbeats.push(d),
    progress: (fraction, message) => void heartbeats.push({ fraction, message }),
    artifacts: {
      put: () => Promise.reject(new Error('fakeContext has no artifact store')),
      getPath: () => Promise.reject(new Error('fakeContext has no artifact store')),
      getStream: () => Promise.reject(new Error('fakeContext has no artifact store')),
      readSweep: () => {
        throw new Error('fakeContext has no artifact store');
      },
    },
    card: () => Promise.reject(new Error('fakeContext has no artifact store')),
    metrics: record.metrics,
    registerModel: (name, model, options) => record.registerModel(name, model, options),
    secrets: {},
    record,
    logs,
    heartbeats,
    controller,
  };
}

/** True while a pid exists (signal 0 probes without killing); a zombie awaiting its reaper counts as dead. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Pids printed as `<label> <pid>` lines. */
export function pidsFrom(lines: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of lines) {
    const m = /^(\w+) (\d+)$/.exec(l);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}
