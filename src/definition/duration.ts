import { KaonError, ErrorCode } from './errors';

/** A duration: milliseconds, or a string like '30s', '5m', '2h', '3 days', '500ms'. */
export type Duration = number | string;

const UNITS: Record<string, number> = {
  ms: 1, millisecond: 1, milliseconds: 1,
  s: 1000, sec: 1000, secs: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hrs: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
};

export function toMs(d: Duration, where: string): number {
  if (typeof d === 'number' && Number.isFinite(d) && d >= 0) return d;
  if (typeof d === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i.exec(d);
    const unit = m?.[2] ? UNITS[m[2].toLowerCase()] : undefined;
    if (m?.[1] && unit !== undefined) return Math.round(Number(m[1]) * unit);
  }
  throw new KaonError({
    code: ErrorCode.invalidDefinition,
    what: `duration ${JSON.stringify(d)} is not understood`,
    where,
    fix: "write milliseconds as a number, or a string such as '500ms', '30s', '5m', '2h' or '3 days'",
  });
}
