// `kaon schedule <action>`: Temporal Schedules for this project's pipelines.
import { ErrorCode, KaonError } from '../../definition/errors';
import type { OverlapPolicy, ScheduleInfo } from '../../client/schedules';
import { flag, say, str, type CommandSpec } from '../command';
import { parseParams } from '../params';
import { findPipeline, loadPipelines, PROJECT_OPTIONS, resolveProject } from '../project';
import { withClient } from '../temporal';

const ACTIONS = ['create', 'list', 'describe', 'pause', 'unpause', 'trigger', 'backfill', 'delete'] as const;

function show(s: ScheduleInfo): string {
  return [
    `schedule ${s.id}: ${s.summary ?? s.pipeline}${s.paused ? ` — PAUSED${s.note ? ` (${s.note})` : ''}` : ''}`,
    `  overlap ${s.overlap}; ${s.actions} runs so far, ${s.skipped} skipped by overlap; running: ${s.running.join(', ') || 'none'}`,
    `  next: ${s.next.slice(0, 3).map((d) => d.toISOString()).join(', ') || 'none'}`,
    ...s.recent.slice(-5).map((r) => `  ran ${r.runId} for ${r.scheduledAt.toISOString()}`),
  ].join('\n');
}

export const scheduleCommand: CommandSpec = {
  name: 'schedule',
  summary: 'Temporal Schedules for pipelines: create, list, describe, pause, unpause, trigger, backfill, delete',
  args: [
    { name: 'action', required: true, description: ACTIONS.join(' | ') },
    { name: 'id', required: false, description: 'the schedule id (all actions but list)' },
  ],
  options: {
    pipeline: { type: 'string', value: 'name', description: 'create: the pipeline to run' },
    params: { type: 'string', value: 'json|@file', description: 'create: its params (scheduledDate()/scheduledTime() fields are filled per run)' },
    cron: { type: 'string', value: 'expr', description: "create: a cron expression, e.g. '0 3 * * *'" },
    every: { type: 'string', value: 'duration', description: "create: an interval, e.g. '1 day'" },
    overlap: { type: 'string', value: 'policy', description: 'create/trigger/backfill: skip, buffer-one, buffer-all, cancel-other, terminate-other, allow-all' },
    'catchup-window': { type: 'string', value: 'duration', description: 'create: how far back missed runs are caught up' },
    paused: { type: 'boolean', description: 'create: start paused' },
    note: { type: 'string', value: 'text', description: 'create/pause/unpause: a note kept with the schedule' },
    from: { type: 'string', value: 'date', description: 'backfill: first nominal time (inclusive)' },
    to: { type: 'string', value: 'date', description: 'backfill: last nominal time (exclusive)' },
    json: { type: 'boolean', description: 'list/describe: print JSON' },
    ...PROJECT_OPTIONS,
  },
  notes: ['Examples:', "  kaon schedule create retrain-daily --pipeline retrain-recommender --cron '0 3 * * *'", '  kaon schedule backfill retrain-daily --from 2026-11-01 --to 2026-12-01', '  kaon schedule describe retrain-daily'],
  async run({ io, values, positionals }) {
    const [action, id] = positionals as [string, string | undefined];
    if (!(ACTIONS as readonly string[]).includes(action)) throw new KaonError({ code: ErrorCode.invalidParams, what: `unknown schedule action "${action}"`, fix: `use one of ${ACTIONS.join(', ')}` });
    if (action !== 'list' && !id) throw new KaonError({ code: ErrorCode.invalidParams, what: `kaon schedule ${action} needs a schedule id`, fix: `run kaon schedule ${action} <id>` });
    const overlap = str(values, 'overlap') as OverlapPolicy | undefined;
    let pipeline: ReturnType<typeof findPipeline> | undefined;
    if (action === 'create') {
      const name = str(values, 'pipeline');
      if (!name) throw new KaonError({ code: ErrorCode.invalidParams, what: 'kaon schedule create needs --pipeline', fix: 'pass --pipeline <name> of a pipeline your workflows module exports' });
      const project = resolveProject(io.cwd, { workflows: str(values, 'workflows'), activities: str(values, 'activities') });
      pipeline = findPipeline(loadPipelines(project.workflows), name, project.workflows);
    }
    return withClient(io.env, async (kaon) => {
      const s = kaon.schedules;
      switch (action) {
        case 'create': {
          const cron = str(values, 'cron');
          const every = str(values, 'every');
          const catchup = str(values, 'catchup-window');
          const note = str(values, 'note');
          const info = await s.create({
            id: id!,
            pipeline: pipeline!,
            params: parseParams(str(values, 'params'), io.cwd) as never,
            ...(cron ? { cron } : {}),
            ...(every ? { every } : {}),
            ...(overlap ? { overlap } : {}),
            ...(catchup ? { catchupWindow: catchup } : {}),
            ...(note ? { note } : {}),
            paused: flag(values, 'paused'),
          });
          say(io.stdout, show(info));
          return 0;
        }
        case 'list': {
          const all = await s.list();
          say(io.stdout, flag(values, 'json') ? JSON.stringify(all, null, 2) : all.map((x) => `${x.id}\t${x.pipeline}\t${x.paused ? 'paused' : 'active'}\tnext ${x.next[0]?.toISOString() ?? '-'}\t${x.summary ?? ''}`).join('\n') || 'no schedules');
          return 0;
        }
        case 'describe': {
          const info = await s.describe(id!);
          say(io.stdout, flag(values, 'json') ? JSON.stringify(info, null, 2) : show(info));
          return 0;
        }
        case 'pause':
        case 'unpause':
          await (action === 'pause' ? s.pause(id!, str(values, 'note')) : s.unpause(id!, str(values, 'note')));
          say(io.stdout, `schedule ${id} ${action}d`);
          return 0;
        case 'trigger':
          await s.trigger(id!, overlap);
          say(io.stdout, `schedule ${id} triggered: a run starts now`);
          return 0;
        case 'backfill': {
          const from = str(values, 'from');
          const to = str(values, 'to');
          if (!from || !to) throw new KaonError({ code: ErrorCode.invalidParams, what: 'kaon schedule backfill needs --from and --to', fix: 'pass e.g. --from 2026-11-01 --to 2026-12-01' });
          await s.backfill(id!, { from, to, ...(overlap ? { overlap } : {}) });
          say(io.stdout, `schedule ${id}: backfill of ${from} → ${to} requested; each run gets its own nominal date`);
          return 0;
        }
        default:
          await s.delete(id!);
          say(io.stdout, `schedule ${id} deleted`);
          return 0;
      }
    });
  },
};
