// Steering a running run: approve or reject a gate, pause and unpause, send a typed message, pause a step's retries.
import { ErrorCode, KaonError } from '../../definition/errors';
import { say, str, usageError, type CommandSpec } from '../command';
import { parseParams } from '../params';
import { withClient } from '../temporal';
import { runStepCommand, STEP_RUN_OPTIONS } from './step-run';

function decision(name: 'approve' | 'reject'): CommandSpec {
  return {
    name,
    summary: `${name} a run's waiting approval gate (recorded with who, when and why)`,
    args: [
      { name: 'run', required: true, description: 'the run id' },
      { name: 'gate', required: true, description: 'the gate, e.g. publish (or publish#2 in a loop)' },
    ],
    options: {
      comment: { type: 'string', value: 'text', description: 'why (kept in the run state and the history)' },
      by: { type: 'string', value: 'who', description: 'who decides (default $USER)' },
    },
    async run({ io, values, positionals }) {
      const [id, gate] = positionals as [string, string];
      return withClient(io.env, async (kaon) => {
        const opts = { ...(str(values, 'comment') ? { comment: str(values, 'comment')! } : {}), ...(str(values, 'by') ? { by: str(values, 'by')! } : {}) };
        const g = name === 'approve' ? await kaon.run(id).approve(gate, opts) : await kaon.run(id).reject(gate, opts);
        say(io.stdout, `gate ${g.gate} of run ${id} ${g.status}${g.by ? ` by ${g.by}` : ''}${g.comment ? `: ${g.comment}` : ''}`);
        return 0;
      });
    },
  };
}

export const approveCommand = decision('approve');
export const rejectCommand = decision('reject');

export const pauseCommand: CommandSpec = {
  name: 'pause',
  summary: 'pause a run: no new step starts (running ones finish); status keeps working',
  args: [{ name: 'run', required: true, description: 'the run id' }],
  options: {
    note: { type: 'string', value: 'text', description: 'why (shown with the paused state)' },
    by: { type: 'string', value: 'who', description: 'who pauses (default $USER)' },
  },
  async run({ io, values, positionals }) {
    const id = positionals[0]!;
    return withClient(io.env, async (kaon) => {
      await kaon.run(id).pause({ ...(str(values, 'note') ? { note: str(values, 'note')! } : {}), ...(str(values, 'by') ? { by: str(values, 'by')! } : {}) });
      say(io.stdout, `run ${id} paused: no new step starts until \`kaon unpause ${id}\``);
      return 0;
    });
  },
};

export const unpauseCommand: CommandSpec = {
  name: 'unpause',
  summary: 'let a paused run start steps again',
  args: [{ name: 'run', required: true, description: 'the run id' }],
  options: {},
  async run({ io, positionals }) {
    const id = positionals[0]!;
    return withClient(io.env, async (kaon) => {
      await kaon.run(id).unpause();
      say(io.stdout, `run ${id} unpaused`);
      return 0;
    });
  },
};

export const sendCommand: CommandSpec = {
  name: 'send',
  summary: "send a typed message to a run (validated by the pipeline's messages schema)",
  args: [
    { name: 'run', required: true, description: 'the run id' },
    { name: 'message', required: true, description: 'the message name, e.g. setThreshold' },
  ],
  options: { value: { type: 'string', value: 'json|@file', description: 'the message value (JSON)' } },
  async run({ io, values, positionals }) {
    const [id, message] = positionals as [string, string];
    return withClient(io.env, async (kaon) => {
      const reply = await kaon.run(id).send(message as never, parseParams(str(values, 'value'), io.cwd) as never);
      say(io.stdout, JSON.stringify(reply ?? null));
      return 0;
    });
  },
};

export const stepCommand: CommandSpec = {
  name: 'step',
  summary: "run one step on this machine (a past call's exact input with --from), or pause/unpause a step's retries",
  args: [
    { name: 'action', required: true, description: 'run | pause | unpause' },
    { name: 'target', required: false, description: 'run: the step name (optional with --from); pause/unpause: the run id' },
    { name: 'key', required: false, description: 'pause/unpause: the step key, e.g. train[JP]' },
  ],
  options: {
    reason: { type: 'string', value: 'text', description: 'pause: why (kept by Temporal)' },
    ...STEP_RUN_OPTIONS,
  },
  notes: [
    'Examples:',
    "  kaon step run --from retrain-recommender-2968d877 --key 'train[JP]#2' --watch",
    "  kaon step run cleanText --input '{\"text\": \"The cat\"}' --output-json",
    "  kaon step pause <run> 'train[JP]'",
    'kaon step run needs no Temporal server (only --from reads the run\'s history); it uses the project\'s activities',
    'module, Python environments and artifact store (KAON_ARTIFACTS) as `kaon worker` does. Its artifacts carry',
    'lineage run id local-<time> and local: true; nothing is cached or recorded for resume.',
  ],
  async run({ io, values, positionals }) {
    const [action, target, key] = positionals as [string, string | undefined, string | undefined];
    if (action === 'run') return runStepCommand(io, values, target, key);
    if (action !== 'pause' && action !== 'unpause') throw new KaonError({ code: ErrorCode.invalidParams, what: `unknown step action "${action}"`, fix: 'use kaon step run [step] …, kaon step pause <run> <key> or kaon step unpause <run> <key>' });
    if (!target || !key) throw usageError('step', `kaon step ${action} needs a <run> and a <step key>`, `run \`kaon step ${action} <run> <step key>\``);
    const id = target;
    return withClient(io.env, async (kaon) => {
      if (action === 'pause') await kaon.run(id).pauseStep(key, str(values, 'reason'));
      else await kaon.run(id).unpauseStep(key);
      say(io.stdout, `step ${key} of run ${id} ${action}d`);
      return 0;
    });
  },
};
