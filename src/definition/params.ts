import { z } from 'zod';
import { ErrorCode, KaonError } from './errors';

function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/** ` (did you mean "x"?)` for the known word closest to `word`, or '' when none is close. */
export function didYouMean(word: string, known: readonly string[]): string {
  const best = known.map((n) => [n, distance(word.toLowerCase(), n.toLowerCase())] as const).sort((a, b) => a[1] - b[1])[0];
  return best && best[1] <= Math.max(2, Math.floor(word.length / 3)) ? ` (did you mean "${best[0]}"?)` : '';
}

/**
 * Top-level params a pipeline's object schema does not declare. zod would drop them silently, so a typo of a
 * defaulted field (`lerning_rate`) would run with the default: Kaon refuses them unless the pipeline opts out.
 */
export function checkUnknownParams(schema: z.ZodType, value: unknown, subject: string): void {
  if (!(schema instanceof z.ZodObject) || typeof value !== 'object' || value === null || Array.isArray(value)) return;
  const known = Object.keys(schema.shape);
  const unknown = Object.keys(value).filter((k) => !known.includes(k));
  if (unknown.length === 0) return;
  const hint = (k: string) => didYouMean(k, known);
  throw new KaonError({
    code: ErrorCode.invalidParams,
    what: `${subject} has unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"${hint(k)}`).join(', ')}; the schema declares ${known.join(', ') || 'none'}`,
    fix: "correct the field name; a pipeline that wants extra fields dropped can say definePipeline({ unknownParams: 'strip' })",
  });
}
