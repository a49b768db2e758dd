import { flag, say, str, type CommandSpec } from '../command';
import { connectClient, runUrl } from '../temporal';

export const resumeCommand: CommandSpec = {
  name: 'resume',
  summary: "start a new run of a run's pipeline with the same params: what failed or never ran runs again, the rest is reused",
  args: [{ name: 'run', required: true, description: 'the id of the run to resume (usually a failed one)' }],
  options: {
    recompute: { type: 'string', value: 'step', description: 'also recompute this step key (train[US]), step or sweep name (train), and what its change affects' },
    from: { type: 'string', value: 'step', description: 'the same as --recompute' },
    'no-cache': { type: 'boolean', description: "don't use cross-run cache hits (resume reuse still applies)" },
    wait: { type: 'boolean', description: 'wait for the new run and print its result' },
  },
  notes: [
    'Resume re-runs what failed or never ran (steps, foreach items and sweep items alike), whatever code changed: a step or item that succeeded with the same input is reused. Name anything else to redo with --recompute.',
    'The cross-run cache (cache: true) is separate: it is keyed by code and input, so an edited script misses it.',
  ],
  async run({ io, values, positionals }) {
    const { kaon, target, close } = await connectClient(io.env);
    try {
      const from = str(values, 'recompute') ?? str(values, 'from');
      const run = await kaon.resume(positionals[0]!, { ...(from ? { from } : {}), cache: flag(values, 'no-cache') ? 'off' : 'on' });
      say(io.stdout, `resumed ${positionals[0]} as run ${run.id}${from ? ` (recomputing ${from})` : ''}`);
      const url = runUrl(target, run.id);
      if (url) say(io.stdout, `Web UI: ${url}`);
      if (!flag(values, 'wait')) return 0;
      const result = await run.result();
      const state = await run.progress();
      const plain = state.steps.filter((s) => !s.sweep);
      const reused = plain.filter((s) => s.reusedFrom?.from === 'resume').length;
      say(io.stdout, `run ${run.id} succeeded: ${reused} of ${plain.length} steps reused from ${positionals[0]}`);
      for (const s of state.steps) {
        if (!s.sweep) continue;
        const w = s.sweep;
        const resumed = w.resumed ?? 0;
        say(io.stdout, `  sweep ${s.key}: reused ${resumed.toLocaleString('en-US')} of ${w.total.toLocaleString('en-US')} items; re-ran ${(w.succeeded + w.failed - resumed).toLocaleString('en-US')}${w.failed ? ` (${w.failed.toLocaleString('en-US')} failed again)` : ''}`);
      }
      say(io.stdout, typeof (result as { table?: unknown })?.table === 'string' ? (result as { table: string }).table : JSON.stringify(result, null, 2));
      return 0;
    } finally {
      await close();
    }
  },
};
