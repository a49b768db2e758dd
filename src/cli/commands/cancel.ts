import { setTimeout as sleep } from 'node:timers/promises';
import { flag, say, type CommandSpec } from '../command';
import { connectClient, displayStatus, isClosed } from '../temporal';
import { describeRun } from '../watch';

export const cancelCommand: CommandSpec = {
  name: 'cancel',
  summary: 'cancel a run: its running steps see the cancellation at their next heartbeat',
  args: [{ name: 'run', required: true, description: 'the run id' }],
  options: {
    wait: { type: 'boolean', description: 'wait until the run has stopped (needs a running worker)' },
  },
  async run({ io, values, positionals }) {
    const id = positionals[0]!;
    const { kaon, target, close } = await connectClient(io.env);
    try {
      const run = kaon.run(id);
      const before = await describeRun(run, target.namespace);
      if (isClosed(before)) {
        say(io.stdout, `run ${id} already ${displayStatus(before)}; nothing to cancel`);
        return 0;
      }
      await run.cancel();
      say(io.stdout, `cancellation requested for run ${id}`);
      if (!flag(values, 'wait')) return 0;
      for (;;) {
        const info = await describeRun(run, target.namespace);
        if (isClosed(info)) {
          say(io.stdout, `run ${id} ${displayStatus(info)}`);
          return 0;
        }
        await sleep(500, undefined, io.signal ? { signal: io.signal } : {});
      }
    } finally {
      await close();
    }
  },
};
