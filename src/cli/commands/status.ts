import { renderTable } from '../../observe/terminal';
import { escapeRunState } from '../echo';
import { flag, say, str, type CliIo, type CommandSpec } from '../command';
import { KaonError, ErrorCode } from '../../definition/errors';
import { manifestReader, openStore } from '../store';
import { connectClient, displayStatus, isClosed, runUrl } from '../temporal';
import { queryFallbackNote, snapshot, watchRun } from '../watch';

export const statusCommand: CommandSpec = {
  name: 'status',
  summary: "show a run's status and its steps; --watch follows it until it ends",
  args: [{ name: 'run', required: true, description: 'the run id (as printed by kaon run / kaon list)' }],
  options: {
    watch: { type: 'boolean', short: 'w', description: 'refresh until the run ends (bars in a terminal, plain lines otherwise)' },
    json: { type: 'boolean', description: 'print status and run state as JSON' },
    item: { type: 'string', value: 'i', description: "one item of a k.map sweep: its index (the run's only sweep) or its key, e.g. 'score[2]': input, outcome, error" },
  },
  notes: ['Exit code with --watch: 0 if the run succeeded, 1 otherwise.'],
  async run({ io, values, positionals }) {
    const id = positionals[0]!;
    const { kaon, target, close } = await connectClient(io.env);
    try {
      const run = kaon.run(id);
      const item = str(values, 'item');
      if (item !== undefined) return await showItem(io, kaon, run, id, item, flag(values, 'json'));
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

type Client = Awaited<ReturnType<typeof connectClient>>['kaon'];

/** `kaon status <run> --item 2`: one sweep item, read from the sweep's manifests in the workers' store. */
async function showItem(io: CliIo, kaon: Client, run: ReturnType<Client['run']>, id: string, item: string, json: boolean): Promise<number> {
  let key = item;
  if (/^\d+$/.test(item)) {
    const sweeps = ((await run.progress().catch(() => undefined))?.steps ?? []).filter((s) => s.sweep).map((s) => s.key);
    if (sweeps.length !== 1) {
      throw new KaonError({ code: ErrorCode.invalidParams, what: `--item ${item}: run ${id} has ${sweeps.length ? `${sweeps.length} sweeps (${sweeps.join(', ')})` : 'no sweep in its run state'}`, fix: `name the sweep with the index, e.g. --item '${sweeps[0] ?? 'score'}[${item}]'` });
    }
    key = `${sweeps[0]}[${item}]`;
  }
  const call = await kaon.stepCall(id, key, { reader: manifestReader(await openStore(io)) });
  if (json) {
    say(io.stdout, JSON.stringify(call, null, 2));
    return 0;
  }
  say(io.stdout, `item    ${call.key} of run ${id} (step ${call.step})`);
  say(io.stdout, `status  ${call.status}${call.item?.resumed ? ' (reused on resume)' : call.item?.cached ? ' (cached)' : ''}`);
  say(io.stdout, `input   ${JSON.stringify(call.input)}`);
  if (call.item && 'output' in call.item) say(io.stdout, `output  ${JSON.stringify(call.item.output)}`);
  if (call.failure) say(io.stdout, `error   ${call.failure}`);
  say(io.stdout, `rerun   kaon step run --from ${id} --key '${call.key}'`);
  return 0;
}
