import { assertRunStatus } from '../../client/run-status';
import { formatDuration } from '../../observe/terminal';
import { flag, int, say, str, type CommandSpec } from '../command';
import { connectClient, displayStatus } from '../temporal';

function when(d: Date): string {
  return d.toISOString().replace('T', ' ').slice(0, 19);
}

export const listCommand: CommandSpec = {
  name: 'list',
  summary: 'list runs, newest first (Temporal visibility: may lag a second behind)',
  options: {
    pipeline: { type: 'string', short: 'p', value: 'name', description: 'only runs of this pipeline' },
    status: { type: 'string', short: 's', value: 'status', description: 'only runs in this status: running, waiting, paused, succeeded, failed, cancelled' },
    limit: { type: 'string', short: 'n', value: 'n', description: 'at most n runs (default 20)' },
    json: { type: 'boolean', description: 'print the runs as JSON' },
  },
  async run({ io, values }) {
    const limit = int('list', values, 'limit', 20, 1);
    const status = str(values, 'status');
    if (status !== undefined) assertRunStatus(status); // before connecting: a typo needs no server
    const { kaon, close } = await connectClient(io.env);
    try {
      const pipeline = str(values, 'pipeline');
      const runs = await kaon.list({ ...(pipeline ? { pipeline } : {}), ...(status ? { status } : {}), limit });
      if (flag(values, 'json')) {
        say(io.stdout, JSON.stringify(runs.map((r) => ({ ...r, status: displayStatus(r) })), null, 2));
        return 0;
      }
      if (runs.length === 0) {
        say(io.stdout, `no runs${pipeline ? ` of ${pipeline}` : ''}${status ? ` with status ${status}` : ''}`);
        return 0;
      }
      const rows = runs.map((r) => [
        r.id,
        r.pipeline,
        displayStatus(r),
        when(r.startTime),
        formatDuration((r.closeTime ?? new Date()).getTime() - r.startTime.getTime()),
      ]);
      const header = ['RUN', 'PIPELINE', 'STATUS', 'STARTED (UTC)', 'TIME'];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [header, ...rows]) say(io.stdout, r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
      return 0;
    } finally {
      await close();
    }
  },
};
