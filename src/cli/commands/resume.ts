import { flag, say, str, type CommandSpec } from '../command';
import { connectClient, runUrl } from '../temporal';

export const resumeCommand: CommandSpec = {
  name: 'resume',
  summary: "start a new run of a run's pipeline with the same params, reusing every step that already succeeded",
  args: [{ name: 'run', required: true, description: 'the id of the run to resume (usually a failed one)' }],
  options: {
    from: { type: 'string', value: 'step', description: 'recompute this step key (train[US]) or step name (train), and what its change affects' },
    'no-cache': { type: 'boolean', description: "don't use cross-run cache hits (resume reuse still applies)" },
    wait: { type: 'boolean', description: 'wait for the new run and print its result' },
  },
  notes: ['Works after the step code was fixed: steps whose key and input match the old run are reused, the rest run.'],
  async run({ io, values, positionals }) {
    const { kaon, target, close } = await connectClient(io.env);
    try {
      const from = str(values, 'from');
      const run = await kaon.resume(positionals[0]!, { ...(from ? { from } : {}), cache: flag(values, 'no-cache') ? 'off' : 'on' });
      say(io.stdout, `resumed ${positionals[0]} as run ${run.id}${from ? ` (recomputing ${from})` : ''}`);
      const url = runUrl(target, run.id);
      if (url) say(io.stdout, `Web UI: ${url}`);
      if (!flag(values, 'wait')) return 0;
      const result = await run.result();
      const state = await run.progress();
      const reused = state.steps.filter((s) => s.reusedFrom?.from === 'resume').length;
      say(io.stdout, `run ${run.id} succeeded: ${reused} of ${state.steps.length} steps reused from ${positionals[0]}`);
      say(io.stdout, typeof (result as { table?: unknown })?.table === 'string' ? (result as { table: string }).table : JSON.stringify(result, null, 2));
      return 0;
    } finally {
      await close();
    }
  },
};
