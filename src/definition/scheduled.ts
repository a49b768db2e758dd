import { z } from 'zod';

/**
 * Params that Kaon fills from a schedule's nominal time: a run started by a schedule (or its backfill) gets the time
 * it was *scheduled* for, so a daily retrain processes its own day's partition even when it runs late or in a
 * backfill. A run started by hand passes the field like any other (`--params '{"date":"2026-11-21"}'`).
 */
export const SCHEDULED_META = 'kaonScheduled';

/** `YYYY-MM-DD` (UTC) of the schedule's nominal time. */
export function scheduledDate() {
  return z.iso.date().meta({ [SCHEDULED_META]: 'date', description: 'filled by Kaon from the schedule time (YYYY-MM-DD, UTC)' });
}

/** ISO 8601 instant of the schedule's nominal time. */
export function scheduledTime() {
  return z.iso.datetime().meta({ [SCHEDULED_META]: 'time', description: 'filled by Kaon from the schedule time (ISO 8601)' });
}

/** The params fields a schedule fills, by kind. */
export function scheduledFields(params: z.ZodType): Record<string, 'date' | 'time'> {
  const shape = (params as unknown as { shape?: Record<string, z.ZodType> }).shape;
  const out: Record<string, 'date' | 'time'> = {};
  for (const [k, v] of Object.entries(shape ?? {})) {
    // Look through .default()/.optional() wrappers: `scheduledDate().default('2026-11-21')` is still scheduled.
    for (let t: z.ZodType | undefined = v; t; t = (t as unknown as { _zod?: { def?: { innerType?: z.ZodType } } })._zod?.def?.innerType) {
      const kind = (t.meta?.() as Record<string, unknown> | undefined)?.[SCHEDULED_META];
      if (kind === 'date' || kind === 'time') {
        out[k] = kind;
        break;
      }
    }
  }
  return out;
}

/** Fill the scheduled fields of raw params from a nominal time (values already given win only outside schedules). */
export function fillScheduled(params: z.ZodType, raw: unknown, at: Date): unknown {
  const fields = scheduledFields(params);
  if (Object.keys(fields).length === 0 || typeof raw !== 'object' || raw === null) return raw;
  const out: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  for (const [k, kind] of Object.entries(fields)) out[k] = kind === 'date' ? at.toISOString().slice(0, 10) : at.toISOString();
  return out;
}
