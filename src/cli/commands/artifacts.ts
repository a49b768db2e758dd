import { ErrorCode, KaonError } from '../../definition/errors';
import { flag, say, type CommandSpec } from '../command';
import { humanSize, openStore } from '../store';

export const artifactsCommand: CommandSpec = {
  name: 'artifacts',
  summary: "list a run's artifacts with their lineage (which step made them, from which inputs)",
  args: [{ name: 'run', required: true, description: 'the run id' }],
  options: { json: { type: 'boolean', description: 'print JSON' } },
  async run({ io, values, positionals }) {
    const runId = positionals[0]!;
    const store = await openStore(io);
    const refs = await store.listByRun(runId);
    if (refs.length === 0) {
      throw new KaonError({
        code: ErrorCode.notFound,
        what: `no artifacts recorded for run ${runId} in ${store.url}`,
        fix: 'check the run id (kaon list), and that KAON_ARTIFACTS names the store the workers wrote to',
      });
    }
    const rows = await Promise.all(
      refs.map(async (ref) => {
        const made = (await store.producedBy(ref)).filter((r) => r.producer.runId === runId);
        const used = (await store.usedBy(ref)).map((r) => `${r.producer.step} (${r.producer.runId})`);
        return { ref, step: made[0]?.producer.step ?? ref.producer.step, inputs: (made[0]?.inputs ?? []).map((i) => i.name ?? i.sha256.slice(0, 12)), usedBy: [...new Set(used)] };
      }),
    );
    rows.sort((a, b) => a.step.localeCompare(b.step) || (a.ref.name ?? '').localeCompare(b.ref.name ?? ''));
    if (flag(values, 'json')) {
      say(io.stdout, JSON.stringify(rows, null, 2));
      return 0;
    }
    say(io.stdout, `${rows.length} artifacts of run ${runId} (${store.url})`);
    for (const r of rows) {
      say(io.stdout, `${r.step.padEnd(24)} ${(r.ref.name ?? '(unnamed)').padEnd(28)} ${humanSize(r.ref.size).padStart(10)}  sha256:${r.ref.sha256.slice(0, 12)}`);
      if (r.inputs.length) say(io.stdout, `${''.padEnd(24)}   from: ${r.inputs.join(', ')}`);
      if (r.usedBy.length) say(io.stdout, `${''.padEnd(24)}   used by: ${r.usedBy.join(', ')}`);
    }
    return 0;
  },
};
