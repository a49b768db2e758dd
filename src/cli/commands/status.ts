import { renderTable } from '../../observe/terminal';
import { escapeRunState } from '../echo';
import { flag, say, type CommandSpec } from '../command';
import { connectClient, displayStatus, isClosed, runUrl } from '../temporal';
import { queryFallbackNote, snapshot, watchRun } from '../watch';

export const statusCommand: CommandSpec = {
  name: 'status',
  summary: "show a run's status and its steps; --watch follows it until it ends",
  args: [{ name: 'run', required: true, description: 'the run id (as printed by kaon run / kaon list)' }],
  options: {
    watch: { type: 'boolean', short: 'w', description: 'refresh until the run ends (bars in a terminal, plain lines otherwise)' },
    json: { type: 'boolean', description: 'print status and run state as JSON' },
  },
  notes: ['Exit code with --watch: 0 if the run succeeded, 1 otherwise.'],
  async run({ io, values, positionals }) {
    const id = positionals[0]!;
    const { kaon, target, close } = await connectClient(io.env);
    try {
      const run = kaon.run(id);
      const watchOpts = { io, namespace: target.namespace };
      if (flag(values, 'watch') && !flag(values, 'json')) {
        const last = await watchRun(run, watchOpts);
        return displayStatus(last.info) === 'succeeded' ? 0 : 1;
      }
      const snap = flag(values, 'watch') ? await watchRun(run, { ...watchOpts, io: { ...io, stdout: { write: () => true } } }) : await snapshot(run, target.namespace);
      const { info, state } = snap;
      const url = runUrl(target, id);
      if (flag(values, 'json')) {
        say(io.stdout, JSON.stringify({ ...info, status: displayStatus(info), ...(url ? { url } : {}), progress: state ?? null, ...(snap.queryError ? { progressError: snap.queryError } : {}) }, null, 2));
        return 0;
      }
      const took = info.closeTime ? ` · took ${((info.closeTime.getTime() - info.startTime.getTime()) / 1000).toFixed(1)}s` : '';
      say(io.stdout, `run     ${info.id} (${info.pipeline})`);
      say(io.stdout, `status  ${displayStatus(info)} · started ${info.startTime.toISOString()}${took}`);
      if (url) say(io.stdout, `Web UI  ${url}`);
      say(io.stdout);
      if (state) say(io.stdout, renderTable(escapeRunState(state), Date.now()));
      else say(io.stderr, queryFallbackNote(snap));
      if (!state && !isClosed(info)) say(io.stdout, 'steps   unknown until a worker answers');
      return 0;
    } finally {
      await close();
    }
  },
};
