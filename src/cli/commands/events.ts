// `kaon emit` and `kaon triggers`: events into Kaon's events workflow, and what the triggers are waiting for.
import { ErrorCode, KaonError } from '../../definition/errors';
import type { EventDef } from '../../definition/events';
import type { Pipeline } from '../../definition/pipeline';
import { flag, say, str, type CommandSpec } from '../command';
import { parseParams } from '../params';
import { loadEvents, loadPipelines, PROJECT_OPTIONS, resolveProject } from '../project';
import { withClient } from '../temporal';

function declaredEvents(pipelines: ReadonlyMap<string, Pipeline>, exported: readonly EventDef[]): Map<string, EventDef> {
  const out = new Map<string, EventDef>(exported.map((e) => [e.name, e]));
  for (const p of pipelines.values()) {
    for (const t of p.kaon.triggers) {
      if (t.kind === 'event') out.set(t.event.name, t.event);
      if (t.kind === 'join') for (const e of t.events) out.set(e.name, e);
    }
  }
  return out;
}

export const emitCommand: CommandSpec = {
  name: 'emit',
  summary: "emit an event (durable at once, even with no worker running); triggers start their runs once per event id",
  args: [{ name: 'event', required: true, description: 'the event name, e.g. viewing-history' }],
  options: {
    payload: { type: 'string', value: 'json|@file', description: "the event's payload (validated by its schema)" },
    id: { type: 'string', value: 'id', description: 'the event id (default: a hash of the payload); a second emit with the same id starts nothing new' },
    ...PROJECT_OPTIONS,
  },
  notes: ['Example:', `  kaon emit viewing-history --payload '{"country":"JP","date":"2026-11-21"}' --id JP-2026-11-21`],
  async run({ io, values, positionals }) {
    const name = positionals[0]!;
    const project = resolveProject(io.cwd, { workflows: str(values, 'workflows'), activities: str(values, 'activities') });
    const events = declaredEvents(loadPipelines(project.workflows), loadEvents(project.workflows));
    const event = events.get(name);
    if (!event) {
      throw new KaonError({ code: ErrorCode.notFound, what: `${project.workflows} neither exports an event "${name}" nor has a trigger on it (events: ${[...events.keys()].sort().join(', ') || 'none'})`, fix: 'emit one of those events, or export its defineEvent(…) from the workflows module (or add onEvent(…) to a pipeline)' });
    }
    return withClient(io.env, async (kaon) => {
      const id = str(values, 'id');
      const r = await kaon.emit(event, parseParams(str(values, 'payload'), io.cwd) as never, id ? { id } : {});
      say(io.stdout, `emitted ${r.event} ${r.id}`);
      return 0;
    });
  },
};

export const triggersCommand: CommandSpec = {
  name: 'triggers',
  summary: "the project's triggers, the joins still waiting (which key waits for which event), and recent trigger errors",
  options: { json: { type: 'boolean', description: 'print JSON' }, ...PROJECT_OPTIONS },
  async run({ io, values }) {
    const project = resolveProject(io.cwd, { workflows: str(values, 'workflows'), activities: str(values, 'activities') });
    const pipelines = loadPipelines(project.workflows);
    return withClient(io.env, async (kaon) => {
      const state = await kaon.triggers();
      if (flag(values, 'json')) {
        say(io.stdout, JSON.stringify(state, null, 2));
        return 0;
      }
      const lines: string[] = [];
      for (const p of pipelines.values()) {
        for (const t of p.kaon.triggers) {
          lines.push(t.kind === 'event' ? `${p.kaon.name}  on event ${t.event.name}` : t.kind === 'success' ? `${p.kaon.name}  after ${t.after} succeeds` : `${p.kaon.name}  when ${t.events.map((e) => e.name).join(' + ')} arrive for one key`);
        }
      }
      say(io.stdout, lines.length ? lines.join('\n') : 'no triggers declared');
      say(io.stdout, `\n${state.handled} events handled; ${state.joins.length} pending joins`);
      for (const j of state.joins) say(io.stdout, `  ${j.trigger} key ${j.key}: has ${j.arrived.map((a) => `${a.event} (${a.id})`).join(', ')}; waits for ${j.waitingFor.join(', ')}`);
      if (state.waiting.length) say(io.stdout, `${state.waiting.length} runs subscribed (k.waitFor)`);
      for (const w of state.waiting) say(io.stdout, `  ${w.run} waits for ${w.event}${w.where ? ` where ${Object.entries(w.where).map(([k, v]) => `${k}=${String(v)}`).join(', ')}` : ''}`);
      for (const e of state.errors) say(io.stdout, `  error: ${e}`);
      return 0;
    });
  },
};
