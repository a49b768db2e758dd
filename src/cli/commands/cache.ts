import { say, str, usageError, type CommandSpec } from '../command';
import { openStore } from '../store';
import { memoTable } from '../lazy';

export const cacheCommand: CommandSpec = {
  name: 'cache',
  summary: 'clear cached step outputs: kaon cache clear [--step <name>]',
  args: [{ name: 'action', required: true, description: 'clear' }],
  options: { step: { type: 'string', value: 'name', description: 'only this step (default: every step)' } },
  notes: ['Artifacts stay in the store; only the memo entries that make later runs reuse outputs are removed.'],
  async run({ io, values, positionals }) {
    if (positionals[0] !== 'clear') throw usageError('cache', `unknown action "${positionals[0]}"`, 'use `kaon cache clear [--step <name>]`');
    const step = str(values, 'step');
    const { createMemoTable } = memoTable();
    const n = await createMemoTable(await openStore(io)).clear(step ? { step } : {});
    say(io.stdout, `cleared ${n} cache ${n === 1 ? 'entry' : 'entries'}${step ? ` of step ${step}` : ''}`);
    return 0;
  },
};
