// `kaon step run`: one step on this machine, with an input given here or the exact input of a past run's call.
import type { StepCallRecord } from '../../client';
import { isArtifactRef, type ArtifactRef } from '../../definition/artifact-ref';
import { ErrorCode, KaonError } from '../../definition/errors';
import type { LocalStepEvent } from '../../execution/local';
import { flag, int, say, str, usageError, USAGE_ERROR, type CliIo, type OptionSpec, type OptionValues, type Output } from '../command';
import { parseParams } from '../params';
import { loadActivities, PROJECT_OPTIONS, resolveProject } from '../project';
import { humanSize, manifestReader, openStore } from '../store';
import { withClient } from '../temporal';
import { kaonClient, localStep } from '../lazy';

export const STEP_RUN_OPTIONS: Record<string, OptionSpec> = {
  input: { type: 'string', value: 'json|@file', description: 'run: the step input as JSON or @file (default {})' },
  from: { type: 'string', value: 'run', description: "run: take the input of a past run's step call (with --key)" },
  key: { type: 'string', value: 'step key', description: "run: with --from, the step call, e.g. 'train[JP]#2'" },
  attempt: { type: 'string', value: 'n', description: 'run: the attempt the step sees (default: the last recorded one, else 1)' },
  watch: { type: 'boolean', description: "run: show the step's progress and log lines live" },
  'output-json': { type: 'boolean', description: 'run: print {ok, output, artifacts, error} as JSON; exit 0 only on success' },
  activities: PROJECT_OPTIONS.activities!,
};

const COMMAND = 'step';

function clock(): string {
  return new Date().toISOString().slice(11, 19);
}

function verifiedLine(refs: ArtifactRef[]): string {
  return `input artifacts verified: ${refs.map((r) => `${r.name ?? '(unnamed)'} (sha256:${r.sha256.slice(0, 12)})`).join(', ')}`;
}

function watchLine(out: Output, key: string, e: Exclude<LocalStepEvent, { type: 'verified' }>): void {
  if (e.type === 'progress') {
    const pct = e.fraction !== undefined ? `${Math.round(e.fraction * 100)}%` : '';
    say(out, `${clock()} ${key} running${pct ? ` ${pct}` : ''}${e.message ? ` ${e.message}` : ''}`);
  } else if (e.level !== 'debug') {
    say(out, `${clock()} ${key} | ${e.message}`);
  }
}

interface ErrorJson {
  code: string;
  message: string;
  retryable: boolean;
  issues?: string[];
  logTail?: string[];
}

function errorJson(err: unknown): ErrorJson {
  if (err instanceof KaonError) {
    const d = err.details as { issues?: unknown; tail?: unknown } | undefined;
    return {
      code: err.code,
      message: err.message,
      retryable: err.retryable,
      ...(Array.isArray(d?.issues) ? { issues: d.issues as string[] } : {}),
      ...(Array.isArray(d?.tail) ? { logTail: d.tail as string[] } : {}),
    };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return { code: e.name || 'Error', message: e.message, retryable: true };
}

/** The output for people: artifact refs shortened to name and hash (the artifacts are listed below it). */
function brief(value: unknown): unknown {
  if (isArtifactRef(value)) return `<artifact ${value.name ?? '(unnamed)'} sha256:${value.sha256.slice(0, 12)}>`;
  if (Array.isArray(value)) return value.map(brief);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, brief(v)]));
  return value;
}

function artifactLine(ref: ArtifactRef): string {
  return `  ${(ref.name ?? '(unnamed)').padEnd(28)} ${humanSize(ref.size).padStart(10)}  sha256:${ref.sha256.slice(0, 12)}  ${ref.uri}`;
}

function pastTense(call: StepCallRecord): string {
  const n = `${call.attempts} attempt${call.attempts === 1 ? '' : 's'}`;
  // A sweep item's line says how it ended, not how many attempts its batch call made.
  if (call.item) return call.status === 'failed' ? 'failed' : call.status === 'succeeded' ? `succeeded${call.item.resumed ? ' (reused on resume)' : call.item.cached ? ' (cached)' : ''}` : call.status === 'not run' ? 'did not run' : 'has no outcome yet';
  switch (call.status) {
    case 'failed': return `failed after ${n}`;
    case 'timed out': return `timed out after ${n}`;
    case 'succeeded': return `succeeded in ${n}`;
    case 'cancelled': return 'was cancelled';
    case 'running': return `is running (attempt ${call.attempts})`;
    default: return 'waits for a worker';
  }
}

/** Resolves to the exit code: 0 when the step succeeded, 1 when it (or getting its input) failed, 2 on misuse. */
export async function runStepCommand(io: CliIo, values: OptionValues, stepArg: string | undefined, extra: string | undefined): Promise<number> {
  const json = flag(values, 'output-json');
  const info = json ? io.stderr : io.stdout;
  let report: Record<string, unknown> = {};
  try {
    if (extra !== undefined) throw usageError(COMMAND, `unexpected argument ${JSON.stringify(extra)} for kaon step run`, "run `kaon step run [step] (--input <json|@file> | --from <run> --key <step key>)`");
    const from = str(values, 'from');
    const key = str(values, 'key');
    if (from && str(values, 'input') !== undefined) throw usageError(COMMAND, '--input and --from both give the input', 'pass one: --input for an input of your own, --from <run> --key <step key> for a past call\'s');
    if (from && !key) throw usageError(COMMAND, `--from ${from} needs --key <step key>`, `pass the call to reproduce, e.g. --key 'train[JP]#2' (kaon status ${from} lists the keys)`);
    if (key && !from) throw usageError(COMMAND, '--key is only for --from', 'pass --from <run> too, or drop --key');
    if (!from && !stepArg) throw usageError(COMMAND, 'kaon step run needs a <step> name or --from <run> --key <step key>', "run `kaon step run <step> --input '{…}'` or `kaon step run --from <run> --key 'train[JP]'`");
    const wantedAttempt = str(values, 'attempt') === undefined ? undefined : int(COMMAND, values, 'attempt', 1, 1);

    // The input first (it may come from the server), then nothing below needs Temporal.
    const project = resolveProject(io.cwd, { activities: str(values, 'activities') });
    // The workers' store: without KAON_HOME, <project root>/.kaon (as kaon worker), not <cwd>/.kaon.
    const store = await openStore({ cwd: io.env.KAON_HOME ? io.cwd : project.root, env: io.env });
    let call: StepCallRecord | undefined;
    // A sweep item (`score[2]`) reads its input and outcome from the sweep's manifests in that store.
    if (from) call = await withClient(io.env, (kaon) => kaon.stepCall(from, key!, { reader: manifestReader(store) }));
    const stepName = call?.step ?? stepArg!;
    if (call && stepArg && stepArg !== call.step) {
      throw usageError(COMMAND, `step key ${JSON.stringify(call.key)} of run ${from} is a call of step "${call.step}", not "${stepArg}"`, `drop <step> (the key names its step) or pass ${call.step}`);
    }
    const { localRunId, localSteps } = localStep();
    const { checkRecordedInput } = kaonClient();
    const local = localSteps({ activities: loadActivities(project.activities), artifacts: store, runner: { root: project.root } });
    const def = local.steps.get(stepName);
    if (!def) {
      throw new KaonError({
        code: ErrorCode.notFound,
        what: `no step named "${stepName}" in ${project.activities} (known: ${[...local.steps.keys()].sort().join(', ') || 'none'})`,
        fix: 'pass the activities module `kaon worker` serves (--activities <file>), or a step name it exports',
      });
    }
    // A recorded input runs as recorded (the step parses it, as on a worker), once it passes today's contract.
    if (call) checkRecordedInput(def, call);
    const input = call ? call.input : parseParams(str(values, 'input'), io.cwd);
    const recorded = call ? Math.max(1, call.attempts) : 1;
    if (call && wantedAttempt !== undefined && wantedAttempt > recorded) {
      throw usageError(COMMAND, `--attempt ${wantedAttempt}: run ${from} recorded ${recorded} attempt${recorded === 1 ? '' : 's'} of ${call.key}`, `pass --attempt 1…${recorded} (the input is the same for each; the number is what ctx.attempt / $KAON_ATTEMPT see)`);
    }
    const attempt = wantedAttempt ?? recorded;
    const runId = localRunId();
    const stepKey = call?.key ?? def.name;
    const pipeline = call?.pipeline ?? 'local';
    report = { step: def.name, key: stepKey, attempt, runId, ...(call ? { from: { run: from, status: call.status, attempts: call.attempts, ...(call.failure ? { failure: call.failure } : {}) } } : {}), input };
    say(info, `kaon step run: ${def.name} (key ${stepKey}, attempt ${attempt}) on this machine as ${runId}`);
    if (call) say(info, `input from run ${from}, where ${call.key} ${pastTense(call)}`);

    const started = Date.now();
    const watch = flag(values, 'watch');
    const onEvent = (e: LocalStepEvent) => {
      if (e.type === 'verified') say(info, verifiedLine(e.artifacts));
      else if (watch) watchLine(info, stepKey, e);
    };
    const result = await local.run({ step: def.name, key: stepKey, input, pipeline, runId, attempt }, { ...(io.signal ? { signal: io.signal } : {}), onEvent });
    const ms = Date.now() - started;
    if (json) {
      say(io.stdout, JSON.stringify({ ok: true, ...report, durationMs: ms, inputArtifacts: result.inputArtifacts, output: result.output, artifacts: result.artifacts, error: null }, null, 2));
      return 0;
    }
    say(io.stdout, `step ${stepKey} succeeded in ${(ms / 1000).toFixed(1)}s`);
    say(io.stdout, 'output:');
    say(io.stdout, JSON.stringify(brief(result.output ?? null), null, 2));
    if (result.artifacts.length) {
      say(io.stdout, `artifacts (${store.url}, lineage: run ${runId}, local):`);
      for (const ref of result.artifacts) say(io.stdout, artifactLine(ref));
    }
    if (from) say(io.stdout, `next: kaon resume ${from}   (reuses every step whose input is unchanged)`);
    return 0;
  } catch (err) {
    const usage = err instanceof KaonError && err.code === USAGE_ERROR;
    if (io.signal?.aborted && !usage) {
      if (json) say(io.stdout, JSON.stringify({ ok: false, ...report, output: null, artifacts: [], error: { code: 'KAON_INTERRUPTED', message: 'interrupted', retryable: true } }, null, 2));
      else say(io.stderr, 'kaon step: interrupted');
      return 130;
    }
    if (json) {
      say(io.stdout, JSON.stringify({ ok: false, ...report, output: null, artifacts: [], error: errorJson(err) }, null, 2));
      return usage ? 2 : 1;
    }
    if (usage) throw err;
    const what = 'key' in report ? `step ${String(report.key)} failed: ` : '';
    say(io.stderr, `kaon step: ${what}${err instanceof Error ? err.message : String(err)}`);
    // A changed contract or a bad output: each field that does not validate on a line of its own.
    const issues = errorJson(err).issues ?? [];
    if (issues.length > 1) for (const issue of issues) say(io.stderr, `  ${issue}`);
    return 1;
  }
}
